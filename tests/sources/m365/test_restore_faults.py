"""Restores while Graph misbehaves: writes committed and then cut off, connections
dropped, throttling. Whatever happens, nothing is created twice and nothing is lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from sources.m365.restore import ItemQuery
from sources.m365.restore.pacing import UploadBudget
from tests.sources.m365.support.restoring import Graph, failures, restore, totals
from tests.sources.m365.support.tenant import Setup, make_setup

pytestmark = pytest.mark.sim

HEADERS = {"Prefer": 'outlook.timezone="UTC"'}


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    for setup in make_setup(tmp_path_factory.mktemp("faults"), seed=7):
        report = setup.backup()
        assert report["status"] == "ok"
        yield setup


def _state(g: Graph, user: dict[str, Any]) -> dict[str, Any]:
    """What a user has, by content (IDs change when items are restored)."""
    uid = user["id"]
    folders = g.all(f"/users/{uid}/mailFolders/delta")
    mail: Counter[tuple[str, str]] = Counter()
    for folder in folders:
        if folder["displayName"] == "Deleted Items":
            continue
        for m in g.all(f"/users/{uid}/mailFolders/{folder['id']}/messages", **{"$top": "100"}):
            mail[(folder["displayName"], m["internetMessageId"])] += 1
    contacts = Counter(c["displayName"] for c in g.all(f"/users/{uid}/contacts"))
    events = Counter(
        (e["subject"], e["start"]["dateTime"])
        for e in g.all(f"/users/{uid}/calendar/events", headers=HEADERS)
    )
    files: Counter[tuple[str, int]] = Counter()

    def walk(item: str, prefix: str) -> None:
        for child in g.all(f"/drives/{user['drive']}/items/{item}/children"):
            if "package" in child:
                continue  # OneNote notebooks have no content to restore
            files[(prefix + child["name"], int(child.get("size") or 0))] += 1
            if "folder" in child:
                walk(child["id"], f"{prefix}{child['name']}/")

    walk("root", "")
    return {"mail": mail, "contacts": contacts, "events": events, "files": files}


def _wipe(g: Graph, user: dict[str, Any]) -> None:
    """Delete a good part of a user's data, as a careless user would."""
    uid = user["id"]
    for message in g.all(f"/users/{uid}/mailFolders/inbox/messages", **{"$top": "100"}):
        g.delete(f"/users/{uid}/messages/{message['id']}")
    for folder in g.all(f"/users/{uid}/mailFolders"):
        if folder["displayName"] == "Projects":
            g.delete(f"/users/{uid}/mailFolders/{folder['id']}")
    for contact in g.all(f"/users/{uid}/contacts")[:3]:
        g.delete(f"/users/{uid}/contacts/{contact['id']}")
    for event in g.all(f"/users/{uid}/calendar/events", headers=HEADERS):
        if event["type"] == "seriesMaster" or event["subject"].startswith("Interview"):
            g.delete(f"/users/{uid}/events/{event['id']}")
    for child in g.all(f"/drives/{user['drive']}/root/children"):
        if child["name"] in ("Documents", "Pictures"):
            g.delete(f"/drives/{user['drive']}/items/{child['id']}")


def test_writes_cut_off_after_commit_create_nothing_twice(done: Setup) -> None:
    g = Graph(done.tenant)
    admin = done.tenant.admin
    user = g.user()
    before = _state(g, user)
    _wipe(g, user)
    admin.inject_faults(
        # The write is carried out, then the connection closes without an answer.
        {"kind": "commit_drop", "rate": 0.3, "methods": ["POST", "PUT", "PATCH"]},
        # The connection closes before anything is done.
        {"kind": "drop", "rate": 0.05},
        {"kind": "503", "rate": 0.05, "retry_after": 1},
        seed=42,
    )
    try:
        report = restore(
            done.repo,
            done.cache,
            done.state,
            owner=user["userPrincipalName"],
            query=ItemQuery(services=("mail", "contacts", "calendar", "onedrive")),
        )
        fired = {rule["kind"]: rule["fired"] for rule in admin.faults()}
    finally:
        admin.clear_faults()
    assert failures(report) == []
    assert fired["commit_drop"] >= 10
    assert fired["drop"] >= 1
    assert totals(report)["created"] > 15
    after = _state(g, user)
    for key in before:
        assert after[key] == before[key], (key, after[key] - before[key], before[key] - after[key])
    again = restore(
        done.repo,
        done.cache,
        done.state,
        owner=user["userPrincipalName"],
        query=ItemQuery(services=("mail", "contacts", "calendar", "onedrive")),
    )
    assert totals(again)["created"] == 0
    assert _state(g, user) == before


def test_throttled_restore_waits_and_finishes(done: Setup) -> None:
    """Microsoft's limits scaled down 50 times (a 150 MB upload budget becomes 3 MB per
    6 seconds), and a quarter of the writes answered 429: the restore waits as told."""
    g = Graph(done.tenant)
    admin = done.tenant.admin
    user = g.user(index=1)
    before = _state(g, user)
    _wipe(g, user)
    admin.reset_stats()
    admin.throttling(enabled=True, scale=0.02)
    admin.inject_faults(
        {"kind": "429", "rate": 0.25, "retry_after": 1, "methods": ["POST", "PUT"]}, seed=3
    )
    try:
        report = restore(
            done.repo,
            done.cache,
            done.state,
            owner=user["userPrincipalName"],
            query=ItemQuery(services=("mail", "contacts", "calendar", "onedrive")),
            # The budget at the same scale: uploads are paced, not refused.
            budget=UploadBudget(limit=3_000_000, window=6.0),
        )
        stats = admin.stats()
    finally:
        admin.clear_faults()
        admin.throttling(enabled=False)
        admin.reset_throttling()
    assert failures(report) == []
    assert stats["by_status"].get("429", 0) >= 5
    assert report["totals"]["throttled_seconds"] > 0
    assert _state(g, user) == before
