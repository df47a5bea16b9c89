"""The tenant generator: healthy at several seeds, deterministic, shaped as the issue asks."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tools.graphsim.config import SCALES, IdentitySettings
from tools.graphsim.content import ContentStore
from tools.graphsim.generator import generate_tenant
from tools.graphsim.inventory import inventory
from tools.graphsim.statetokens import StateTokens
from tools.graphsim.store import Store
from tools.graphsim.tenant import Tenant

pytestmark = pytest.mark.sim

ANCHOR = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def _tenant(path: Path, seed: int, scale: str = "small", users: int | None = None) -> Tenant:
    path.mkdir(parents=True, exist_ok=True)
    store = Store(path / "t.db")
    generate_tenant(
        store,
        seed=seed,
        scale=scale,
        users=users,
        domain="contoso.onmicrosoft.com",
        sharepoint_host="contoso.sharepoint.com",
        anchor=ANCHOR,
    )
    return Tenant(
        store=store,
        content=ContentStore(path / "blobs", store),
        tokens=StateTokens(b"k"),
        tenant_id="t",
        domain="contoso.onmicrosoft.com",
        sharepoint_host="contoso.sharepoint.com",
        settings=IdentitySettings(),
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 7, 12345])
def test_default_tenant_is_healthy(tmp_path: Path, seed: int) -> None:
    t = _tenant(tmp_path, seed)
    try:
        inv = inventory(t)
        purposes = Counter(u["purpose"] for u in inv["users"].values() if u["mailbox"])
        assert purposes == {"user": SCALES["small"].users, "shared": 1, "room": 1}
        no_mailbox = [u for u in inv["users"].values() if not u["mailbox"]]
        assert len(no_mailbox) == 1
        assert no_mailbox[0]["drive"]
        for upn, u in inv["users"].items():
            assert u["licensed"]
            if u["mailbox"]:
                inbox_key = u["wellKnownFolders"]["inbox"]
                inbox = t.store.children(inbox_key, ["message"])
                assert len(inbox) >= 3, upn
                with_files = [m for m in inbox if m.data["_fileAttachments"]]
                assert with_files, upn
                assert any(
                    a.data["@odata.type"] == "#microsoft.graph.fileAttachment"
                    and not a.data["isInline"]
                    for m in with_files
                    for a in t.store.children(m.key, ["attachment"])
                )
                assert u["contacts"] > 0
                assert u["events"] > 0
                assert u["seriesMasters"] >= 2
                assert u["exceptions"] >= 1
            if u["drive"]:
                assert u["driveFiles"] > 0
                assert u["drivePackages"] == 1
        ids = [m.data["internetMessageId"] for m in t.store.iter_live(["message"])]
        assert len(ids) == len(set(ids))
        for site in inv["sites"].values():
            assert site["driveFiles"] > 0
        for team in inv["teams"].values():
            assert team["channels"] >= 1
            assert team["messages"] >= 1
        assert not t.switches.unlicensed
        assert t.switches.protected_api_approved
    finally:
        t.store.close()


def test_variety_the_issue_asks_for(tmp_path: Path) -> None:
    t = _tenant(tmp_path, 3)
    try:
        messages = list(t.store.iter_live(["message"]))
        kinds = Counter(m.data["_body"].get("type") for m in messages)
        assert {"text", "html", "alternative"} <= set(kinds)
        assert any(not m.data["subject"].isascii() for m in messages)
        assert any(not str(m.data["from"]["emailAddress"]["name"]).isascii() for m in messages)
        atts = list(t.store.iter_live(["attachment"]))
        assert any(a.data["@odata.type"] == "#microsoft.graph.referenceAttachment" for a in atts)
        assert any(a.data.get("isInline") and a.data.get("contentId") for a in atts)
        # Attachments identical across mailboxes: the same content spec in two mailboxes.
        owners_by_content: dict[str, set[str]] = {}
        for a in atts:
            if a.content:
                owners_by_content.setdefault(str(sorted(a.content.items())), set()).add(a.owner)
        assert any(len(owners) >= 2 for owners in owners_by_content.values())
        assert max(a.data["size"] for a in atts) > 3 * 1024 * 1024  # a very large one
        files = [i for i in t.store.iter_live(["driveItem"]) if "file" in i.data]
        sizes = [i.data["size"] for i in files]
        assert 0 in sizes
        assert 1 in sizes
        assert max(sizes) > 6 * 1024 * 1024
        names = {i.data["name"] for i in files}
        nfc, nfd = unicodedata.normalize("NFC", "Résumé"), unicodedata.normalize("NFD", "Résumé")
        assert any(n.startswith(nfc) for n in names)
        assert any(n.startswith(nfd) for n in names)
        assert any(len(n.encode()) > 255 for n in names)  # legal on OneDrive, not on Linux
        assert any(i.data.get("_versions") for i in files)
        events = list(t.store.iter_live(["event"]))
        assert any(e.data.get("_cancelled") for e in events)
        assert any(e.data["type"] == "exception" for e in events)
        assert any(e.data.get("attendees") for e in events)
        assert any(e.data.get("isAllDay") for e in events)
        lists = list(t.store.iter_live(["listItem"]))
        assert lists
        assert all("Title" in i.data["_fields"] for i in lists)
        assert list(t.store.iter_live(["chatReply"]))
    finally:
        t.store.close()


def _snapshot(t: Tenant) -> list[tuple[str, str, Any, Any]]:
    rows = (
        t.store.conn().execute("SELECT key, kind, data, content FROM items ORDER BY pk").fetchall()
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def test_generation_is_deterministic(tmp_path: Path) -> None:
    a = _tenant(tmp_path / "a", 9)
    b = _tenant(tmp_path / "b", 9)
    c = _tenant(tmp_path / "c", 10)
    try:
        assert _snapshot(a) == _snapshot(b)
        assert _snapshot(a) != _snapshot(c)
        spec = next(
            i.content
            for i in a.store.iter_live(["driveItem"])
            if i.content and i.content.get("size", 0) > 1000
        )
        assert a.content.open(spec).read() == b.content.open(spec).read()
    finally:
        for t in (a, b, c):
            t.store.close()


def test_user_count_option(tmp_path: Path) -> None:
    t = _tenant(tmp_path, 1, users=5)
    try:
        users = inventory(t, detail=False)["users"].values()
        assert sum(1 for u in users if u["purpose"] == "user" and u["mailbox"]) == 5
    finally:
        t.store.close()


@pytest.mark.slow
def test_large_scale_meets_the_issue_numbers(tmp_path: Path) -> None:
    t = _tenant(tmp_path, 1, scale="large")
    try:
        totals = inventory(t, detail=False)["totals"]
        users = sum(1 for _ in t.store.iter_live(["user"]))
        assert users >= 50
        assert totals["items"] >= 100_000
        assert totals["content_bytes"] >= 5 * 1024**3
        assert (tmp_path / "t.db").stat().st_size < 600 * 1024**2
    finally:
        t.store.close()
