"""Backing up a simulated tenant: every service, exact content, incremental runs.

One tenant for the module: the first tests read the first backup; the last
one changes the tenant (churn, expired delta tokens) and backs up again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sources.m365.support.helpers import (
    backup,
    compare,
    downloads,
    dump,
    expected_counts,
    init_repo,
    open_repo,
    snapshot_counts,
)
from tests.sources.m365.support.tenant import Setup, make_setup
from tools.graphsim.generator.names import HOSTILE_NAMES

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Setup, dict[str, Any]]]:
    for setup in make_setup(tmp_path_factory.mktemp("m365")):
        setup.tenant.admin.reset_stats()
        report = setup.backup()
        yield setup, report


def test_every_service_matches_the_simulator(done: tuple[Setup, dict[str, Any]]) -> None:
    setup, report = done
    assert report["status"] == "ok", dump(report)
    assert report["exit_code"] == 0
    # The simulator enforces Outlook's 4 concurrent requests per mailbox even with rate
    # limits off: not one 429 means Coffer never sent a fifth.
    assert setup.tenant.admin.stats()["by_status"].get("429", 0) == 0
    inventory = setup.tenant.admin.inventory()
    assert compare(snapshot_counts(setup.repo, setup.cache), expected_counts(inventory)) == []
    kinds = {(o["kind"]) for o in report["owners"]}
    assert kinds == {"users", "sites", "teams", "groups"}


def _latest(setup: Setup, name: str) -> Any:
    repo = open_repo(setup.repo, setup.cache)
    snaps = [
        s
        for s in repo.list_snapshots()
        if s.owner.name == name and not s.partial and s.owner.kind != "groups"
    ]
    return repo, max(snaps, key=lambda s: s.time_ns)


def test_mail_is_the_exact_mime_with_its_graph_metadata(done: tuple[Setup, dict[str, Any]]) -> None:
    setup, _ = done
    graph = setup.tenant.graph()
    user = next(u for u in setup.tenant.admin.users() if u["purpose"] == "user" and u["mailbox"])
    repo, snap = _latest(setup, user["userPrincipalName"])
    reader = repo.reader(snap)
    seen = 0
    for path, entry in reader.walk("mail"):
        if entry.is_dir:
            folder = json.loads(entry.attrs["graph"])
            assert folder["id"] == entry.item_id
            assert entry.attrs["name"] == folder["displayName"]
            continue
        meta = json.loads(entry.attrs["graph"])
        assert meta["id"] == entry.item_id
        for key in ("changeKey", "isRead", "receivedDateTime", "internetMessageId", "flag"):
            assert key in meta, (path, key)
        assert "body" not in meta
        mime = graph.get(setup.tenant.url(f"/users/{user['id']}/messages/{meta['id']}/$value"))
        assert mime.status_code == 200
        assert reader.open(path).read() == mime.content, path
        seen += 1
    repo.close()
    assert seen >= 3


def test_files_are_exact_with_hostile_names_kept(done: tuple[Setup, dict[str, Any]]) -> None:
    setup, _ = done
    graph = setup.tenant.graph()
    user = next(u for u in setup.tenant.admin.users() if u["purpose"] == "user" and u["drive"])
    repo, snap = _latest(setup, user["userPrincipalName"])
    reader = repo.reader(snap)
    names: set[str] = set()
    for path, entry in reader.walk("onedrive"):
        for part in path.split("/"):
            assert part not in ("", ".", "..")
            assert len(part.encode("utf-8", "surrogateescape")) <= 255
        if entry.attrs.get("type") != "driveItem":
            continue
        names.add(entry.attrs["name"])
        meta = json.loads(entry.attrs["graph"])
        assert "@microsoft.graph.downloadUrl" not in meta
        assert entry.attrs["quickXorHash"] == meta["file"]["hashes"]["quickXorHash"]
        if entry.size < 2_000_000:
            content = graph.get(
                setup.tenant.url(f"/drives/{user['drive']}/items/{meta['id']}/content")
            )
            assert reader.open(path).read() == content.content, path
    repo.close()
    assert set(HOSTILE_NAMES) <= names


def test_not_applicable_and_no_stream_are_notes_not_failures(
    done: tuple[Setup, dict[str, Any]],
) -> None:
    _, report = done
    owners = {o["name"]: o for o in report["owners"]}
    contractor = next(o for n, o in owners.items() if n.startswith("contractor@"))
    assert contractor["services"]["mail"]["status"] == "not_applicable"
    assert contractor["services"]["onedrive"]["status"] == "ok"
    notes = [n for o in report["owners"] for s in o["services"].values() for n in s["notes"]]
    assert any("OneNote" in n for n in notes)
    assert report["totals"]["items_skipped"] == 0


def test_the_report_is_stored_and_self_describing(done: tuple[Setup, dict[str, Any]]) -> None:
    setup, report = done
    assert report["format"] == "coffer-backup-report"
    assert report["version"] == 1
    repo = open_repo(setup.repo, setup.cache)
    # Found by its run, not by position: other tests of this module back up
    # the same repository again, in whatever order they run.
    stored_reports = [repo.load_report(key) for key in repo.list_reports("backup")]
    repo.close()
    [stored] = [r for r in stored_reports if r.get("run") == report["run"]]
    assert stored["totals"] == report["totals"]
    assert [o["snapshot"] for o in stored["owners"]] == [o["snapshot"] for o in report["owners"]]
    service = stored["owners"][0]["services"]
    for counters in service.values():
        for key in (
            "items_new",
            "items_changed",
            "items_deleted",
            "items_unchanged",
            "items_skipped",
            "skipped",
            "bytes_read",
            "bytes_added",
            "seconds",
            "throttled_seconds",
        ):
            assert key in counters
    assert report["totals"]["bytes_read"] > 0
    assert 0 < report["repository"]["bytes_added_stored"] <= report["totals"]["bytes_read"]


def _fresh_repo(setup: Setup, name: str) -> tuple[Path, Path]:
    repo, cache = setup.root / name, setup.root / f"{name}-cache"
    init_repo(repo, cache).close()
    return repo, cache


def test_mime_aware_dedup_stores_shared_attachments_once(
    done: tuple[Setup, dict[str, Any]],
) -> None:
    setup, _ = done
    sizes = {}
    digests: dict[bool, dict[str, str]] = {}
    for dedup in (True, False):
        repo, cache = _fresh_repo(setup, f"mail-dedup-{dedup}")
        report = backup(repo, cache, setup.state, services=["mail"], mime_dedup=dedup)
        assert report["status"] == "ok"
        sizes[dedup] = report["repository"]["bytes_added_raw"]
        opened = open_repo(repo, cache)
        digests[dedup] = {}
        for snap in opened.list_snapshots():
            reader = opened.reader(snap)
            for path, entry in reader.walk("mail"):
                if entry.is_file:
                    content = reader.open(path).read()
                    digests[dedup][f"{snap.owner.name}/{path}"] = hashlib.sha256(
                        content
                    ).hexdigest()
        opened.close()
    # The same bytes either way (the .eml files stay exact), fewer of them stored.
    assert digests[True] == digests[False]
    assert len(digests[True]) > 10
    assert sizes[True] < sizes[False], sizes


def test_previous_versions_and_exclusions(done: tuple[Setup, dict[str, Any]]) -> None:
    setup, _ = done
    user = next(u for u in setup.tenant.admin.users() if u["purpose"] == "user" and u["drive"])
    upn = user["userPrincipalName"]
    repo, cache = _fresh_repo(setup, "versions")
    report = backup(
        repo,
        cache,
        setup.state,
        users=[upn],
        services=["mail", "onedrive"],
        onedrive_versions=True,
        exclude_folders=["Junk Email", "Inbox"],
        exclude_paths=["onedrive/Pictures/**"],
        max_item_size="5M",
    )
    assert report["exit_code"] == 0, dump(report)
    inventory = setup.tenant.admin.inventory()["users"][upn]
    opened = open_repo(repo, cache)
    snap = next(s for s in opened.list_snapshots() if s.owner.name == upn)
    paths = [(p, e) for p, e in opened.reader(snap).walk("")]
    opened.close()
    versions = [p for p, e in paths if e.attrs.get("type") == "driveItemVersion"]
    kept_files = [p for p, e in paths if e.attrs.get("type") == "driveItem"]
    assert not any(p.startswith(("mail/Inbox", "mail/Junk Email")) for p, _ in paths)
    assert any(p.startswith("mail/Sent Items/") for p, _ in paths)
    assert not any(p.startswith("onedrive/Pictures/") and e.is_file for p, e in paths)
    assert all(e.size <= 5 * 1024 * 1024 for p, e in paths if p in kept_files)
    excluded = report["owners"][0]["services"]["onedrive"]["items_excluded"]
    assert excluded >= 1
    assert len(versions) <= inventory["driveOlderVersions"]
    assert len(versions) > 0


def test_incremental_runs_then_a_forced_resync(done: tuple[Setup, dict[str, Any]]) -> None:
    setup, _ = done
    admin = setup.tenant.admin
    full_requests = admin.stats()["requests_total"]
    changes = admin.churn(5, seed=2)
    content_changes = sum(
        1
        for c in changes
        if c["op"] in ("create", "update") and c["kind"] in ("message", "driveItem")
    )
    admin.reset_stats()
    second = setup.backup()
    stats = admin.stats()
    assert second["status"] == "ok", dump(second)
    expected = expected_counts(admin.inventory())
    assert compare(snapshot_counts(setup.repo, setup.cache), expected) == []
    assert downloads(stats) <= content_changes
    assert stats["requests_total"] < full_requests / 2
    totals = second["totals"]
    assert totals["items_new"] + totals["items_changed"] + totals["items_deleted"] >= 1

    # Every delta token expires: a full enumeration, still skipping unchanged content.
    admin.expire_delta_tokens()
    admin.reset_stats()
    third = setup.backup()
    stats = admin.stats()
    assert third["status"] == "ok", dump(third)
    assert downloads(stats) == 0, stats["by_endpoint"]
    assert third["totals"]["items_new"] == third["totals"]["items_changed"] == 0
    assert third["totals"]["items_deleted"] == 0
    resynced = {r for o in third["owners"] for s in o["services"].values() for r in s["resynced"]}
    assert "mail folders" in resynced
    assert any(r.startswith("onedrive") or r.startswith("libraries/") for r in resynced)
    assert compare(snapshot_counts(setup.repo, setup.cache), expected) == []
