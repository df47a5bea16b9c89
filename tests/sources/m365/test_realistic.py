"""Backups of a tenant that behaves like real Microsoft 365 (issue 13, items 1-6):
the real ``coffer`` command and the sources' backup against the simulator's
behaviours over HTTPS (tools/graphsim/behaviours.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from quickxorhash import quickxorhash

from sources.m365.backup.failures import RETRY_RUNS
from sources.m365.backup.mail import ITEM_ATTEMPTS
from store import SnapshotReader, latest_per_owner
from tests.cli.support.helpers import CofferEnv, init, new_env
from tests.sources.m365.support.helpers import dump, open_repo
from tests.sources.m365.support.tenant import Setup, make_setup
from tools.graphsim.behaviours import BEHAVIOURS, OFFICE_FILE, REWRITE_STAMP
from tools.graphsim.testing import RunningTenant, running_tenant

pytestmark = pytest.mark.sim

UNREADABLE_CODES = {
    "malwareDetected",
    "generalException",
    "ErrorInvalidRecipients",
    "ErrorCannotOpenFileAttachment",
}


def _only(t: RunningTenant, *names: str) -> None:
    """The realistic profile's marks, with only ``names`` switched on."""
    t.admin.behaviours(profile="realistic")
    t.admin.behaviours(disable=[b for b in BEHAVIOURS if b not in names])


def _marked(t: RunningTenant, what: str) -> dict[str, Any]:
    marks = t.admin.behaviours()["marks"]
    items = [t.admin.item(k) for k, v in marks.items() if v == what]
    return items[0]


def _upn(t: RunningTenant, user_id: str) -> str:
    return str(t.admin.item(user_id)["data"]["userPrincipalName"])


def _latest(setup: Setup, pick: Any) -> tuple[Any, SnapshotReader]:
    """The latest snapshot of the owner ``pick(snapshot)`` chooses, and its reader
    (the repository stays open for the test's duration: it is closed at exit)."""
    repo = open_repo(setup.repo, setup.cache)
    snap = next(s for s in latest_per_owner(repo.list_snapshots()) if pick(s))
    return repo, repo.reader(snap)


def _names(reader: SnapshotReader, path: str) -> list[str]:
    return [e.display_name for e in reader.listdir(path)]


def _backup(env: CofferEnv, config: str) -> tuple[int, str, dict[str, Any]]:
    """``coffer backup`` as an administrator runs it: exit code, what it printed, and
    the run report it stored (``coffer report``)."""
    run = env.run("backup", check=False, COFFER_CONFIG=config, timeout=600)
    listing = env.run("report", "--kind", "backup", "--json").json()
    stored = env.run("report", listing[-1]["name"], "--json").json()["report"]
    return run.code, run.err, stored


def _service(report: dict[str, Any], owner: str, name: str) -> dict[str, Any]:
    found = next(o for o in report["owners"] if o["name"] == owner)
    return dict(found["services"][name])


# -- the whole realistic tenant through the command line ----------------------------------


@pytest.fixture
def cli_tenant(tmp_path: Path) -> Iterator[tuple[CofferEnv, RunningTenant, str]]:
    env = new_env(tmp_path / "coffer")
    init(env)
    with running_tenant(tmp_path / "sim", seed=4, throttling=False, profile="realistic") as t:
        yield env, t, str(tmp_path / "sim" / "coffer.toml")


def test_first_run_exits_3_naming_unreadable_items_second_exits_0_still_listing_them(
    cli_tenant: tuple[CofferEnv, RunningTenant, str],
) -> None:
    env, t, config = cli_tenant
    code, printed, report = _backup(env, config)
    assert code == 3, printed
    failed = report["failed_items"]
    assert {f["code"] for f in failed} == UNREADABLE_CODES, dump(report)
    assert all(f["new"] for f in failed)
    for item in failed:
        # Named once, with its error code, where an administrator reads it.
        assert f"unreadable (new) {item['path']}: {item['code']}" in printed
    # Nothing else made the run partial: services that do not apply, the locked
    # site, the empty channel, the folder deleted meanwhile are not failures.
    assert report["problems"] == []
    partial = {o["name"] for o in report["owners"] if o["status"] == "partial"}
    assert partial == {f["owner"] for f in failed}
    assert not any(o["status"] == "failed" for o in report["owners"])
    owner = failed[0]["owner"]
    onedrive_first = _service(report, owner, "onedrive")

    t.admin.reset_stats()
    code, printed, again = _backup(env, config)
    assert code == 0, printed
    assert {(f["path"], f["code"]) for f in again["failed_items"]} == {
        (f["path"], f["code"]) for f in failed
    }
    assert not any(f["new"] for f in again["failed_items"])
    for item in failed:
        assert f"{item['path']}: {item['code']}" in printed
    assert "unreadable (new)" not in printed
    assert all(o["status"] in ("ok", "not_applicable") for o in again["owners"])
    # The delta links moved on: the second run's rounds list nothing (an enumeration
    # would have met every stored file again), and only the failed items are read.
    onedrive = _service(again, owner, "onedrive")
    assert onedrive_first["items_new"] > 5
    assert onedrive["items_unchanged"] == 0, dump(again)
    assert _service(again, owner, "mail")["items_unchanged"] == 0
    stats = t.admin.stats()["by_endpoint"]
    assert stats.get("GET /_dl/{token}", 0) == 1  # the malware file, retried once
    # The corrupt message (500 to each of its ITEM_ATTEMPTS tries) and the other one.
    assert stats.get("GET /users/{user}/messages/{message}/$value", 0) == ITEM_ATTEMPTS + 1

    # Visible in the snapshot tree: ls and find.
    listing = env.run("ls", "latest", "--owner", owner, "onedrive").out
    malware = next(f for f in failed if f["code"] == "malwareDetected")
    assert malware["name"] + ".failed.json" in listing
    found = env.run("find", "--kind", "failed", "--owner", owner).out
    for item in failed:
        assert item["path"] + ".failed.json" in found
    assert "unreadable: malwareDetected" in found


def test_defined_outcomes_for_guests_shared_mailboxes_locked_sites_and_missing_services(
    cli_tenant: tuple[CofferEnv, RunningTenant, str],
) -> None:
    env, t, config = cli_tenant
    report = env.run("backup", "--json", check=False, COFFER_CONFIG=config, timeout=600).json()
    skipped = report["owners_skipped"]
    assert [s["name"] for s in skipped if s["kind"] == "users"] == [
        f"pat_fabrikam.com#EXT#@{t.admin.info()['domain']}"
    ]
    assert "guest" in skipped[0]["reason"]
    locked = _marked(t, "locked")
    site = next(o for o in report["owners"] if o["key"] == locked["key"])
    assert site["status"] == "not_applicable"
    assert site["snapshot"] is None
    assert (
        "locked by an administrator (resourceLocked)" in site["services"]["sharepoint"]["notes"][0]
    )
    onprem = _upn(t, _marked(t, "onPremises")["key"])
    assert _service(report, onprem, "mail")["status"] == "not_applicable"
    assert "MailboxNotEnabledForRESTAPI" in _service(report, onprem, "mail")["notes"][0]
    assert _service(report, onprem, "onedrive")["status"] == "ok"
    nodrive = _upn(t, _marked(t, "noOneDrive")["key"])
    assert _service(report, nodrive, "onedrive")["status"] == "not_applicable"
    assert _service(report, nodrive, "mail")["status"] in ("ok", "partial")
    for shared in ("info@", "boardroom@"):  # a shared and a room mailbox
        name = next(o["name"] for o in report["owners"] if o["name"].startswith(shared))
        assert _service(report, name, "mail")["status"] == "ok"
        assert _service(report, name, "onedrive")["status"] == "not_applicable"


def test_mail_only_tenant_exits_0(tmp_path: Path) -> None:
    env = new_env(tmp_path / "coffer")
    init(env)
    with running_tenant(
        tmp_path / "sim", seed=4, throttling=False, behaviours=("no_spo_license",)
    ) as t:
        config = str(tmp_path / "sim" / "coffer.toml")
        for _ in range(2):
            run = env.run("backup", "--json", check=False, COFFER_CONFIG=config, timeout=600)
            assert run.code == 0, run.err
            report = run.json()
            assert report["problems"] == []
            assert {s["kind"] for s in report["owners_skipped"]} == {"sharepoint"}
            assert "SPO license" in report["owners_skipped"][0]["reason"]
            users = [o for o in report["owners"] if o["kind"] == "users"]
            assert users
            assert all(o["services"]["onedrive"]["status"] == "not_applicable" for o in users)
            assert any(o["services"]["mail"]["status"] == "ok" for o in users)
        assert t.admin.stats()["by_status"].get("400", 0) > 0


# -- one behaviour at a time, through the sources' backup -----------------------------------


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    yield from make_setup(tmp_path, seed=4)


def test_empty_channel_is_listed_instead_of_failing_the_team(setup: Setup) -> None:
    t = setup.tenant
    _only(t, "channel_delta_empty")
    for _ in range(2):
        report = setup.backup(services=["teams"])
        assert report["exit_code"] == 0, dump(report)
        teams = [o["services"]["teams"] for o in report["owners"] if o["kind"] == "teams"]
        assert [s["status"] for s in teams] == ["ok"] * len(teams)
        quiet = [s for s in teams if any("delta not supported" in d for d in s["debug"])]
        assert len(quiet) == 1
        assert not any("delta" in n for n in quiet[0]["notes"])  # debug level only
    repo = open_repo(setup.repo, setup.cache)
    try:
        snaps = [s for s in latest_per_owner(repo.list_snapshots()) if s.owner.kind == "teams"]
        names = {n for s in snaps for n in _names(repo.reader(s), "channels")}
    finally:
        repo.close()
    assert "Announcements (quiet)" in names


def test_unreadable_file_is_retried_a_bounded_number_of_runs_then_read_when_it_heals(
    setup: Setup,
) -> None:
    t = setup.tenant
    _only(t, "unreadable")
    item = _marked(t, "malwareDetected")
    owner = next(u["userPrincipalName"] for u in t.admin.users() if u["drive"] == item["scope"])
    runs: list[dict[str, Any]] = []
    reads: list[int] = []
    for _ in range(RETRY_RUNS + 2):
        t.admin.reset_stats()
        runs.append(setup.backup(services=["onedrive"], users=[owner]))
        reads.append(t.admin.stats()["by_endpoint"].get("GET /_dl/{token}", 0))
    assert [r["exit_code"] for r in runs] == [3] + [0] * (RETRY_RUNS + 1), dump(runs[0])
    # First met, then retried RETRY_RUNS times, then only listed.
    assert reads[0] >= 1
    assert reads[1 : RETRY_RUNS + 1] == [1] * RETRY_RUNS
    assert reads[RETRY_RUNS + 1] == 0
    last = runs[-1]["failed_items"]
    assert [f["code"] for f in last] == ["malwareDetected"]
    assert last[0]["retries"] == RETRY_RUNS
    # The file heals and changes: delta names it, it is read, its record goes.
    t.admin.behaviours(unmark=[item["key"]])
    t.admin.mutate(op="update", id=item["key"], changes={"content_size": 4321})
    healed = setup.backup(services=["onedrive"], users=[owner])
    assert healed["exit_code"] == 0
    assert healed["failed_items"] == [], dump(healed)
    repo, reader = _latest(setup, lambda s: s.owner.name == owner)
    try:
        path = last[0]["path"]
        assert reader.stat(path).size == 4321
        assert not any(n.endswith(".failed.json") for n in _names(reader, "onedrive"))
    finally:
        repo.close()


def test_sharepoint_office_rewrite_is_accepted_with_both_sizes_and_hashes(setup: Setup) -> None:
    t = setup.tenant
    _only(t, "office_rewrite")
    first = setup.backup(services=["sharepoint"])
    assert first["exit_code"] == 0, dump(first)
    rewritten = [
        o for o in first["owners"] if o["services"]["sharepoint"]["counts"].get("office_rewritten")
    ]
    assert len(rewritten) == 1
    t.admin.reset_stats()
    second = setup.backup(services=["sharepoint"])
    assert second["exit_code"] == 0
    assert t.admin.stats()["by_endpoint"].get("GET /_dl/{token}", 0) == 0  # link moved on
    repo, reader = _latest(setup, lambda s: s.owner.key == rewritten[0]["key"])
    try:
        path = f"libraries/Documents/{OFFICE_FILE}"
        entry = reader.stat(path)
        body = reader.open(path).read()
    finally:
        repo.close()
    assert entry.attrs["reportedSize"] == "24000"
    assert entry.size == len(body) == 24000 + len(REWRITE_STAMP)
    assert body.endswith(REWRITE_STAMP)
    assert entry.attrs["reportedQuickXorHash"] != entry.attrs["quickXorHash"]
    qx = quickxorhash()
    qx.update(body)
    assert base64.b64encode(qx.digest()).decode() == entry.attrs["quickXorHash"]


def test_folder_and_message_deleted_during_the_run_are_not_failures(setup: Setup) -> None:
    t = setup.tenant
    _only(t, "deleted_in_flight")
    vanishing = [t.admin.item(k) for k, v in t.admin.behaviours()["marks"].items() if v == "vanish"]
    kinds = sorted(i["kind"] for i in vanishing)
    assert kinds == ["contactFolder", "mailFolder", "message"]
    owner = _upn(t, vanishing[0]["owner"])
    report = setup.backup(services=["mail", "contacts"], users=[owner])
    assert report["exit_code"] == 0, dump(report)
    mail = _service(report, owner, "mail")
    assert mail["status"] == "ok"
    assert mail["skipped"] == []
    assert any("ErrorSyncFolderNotFound" in d for d in mail["debug"])
    assert any("ErrorItemNotFound" in d for d in mail["debug"])
    contacts = _service(report, owner, "contacts")
    assert contacts["status"] == "ok"
    assert any("ErrorSyncFolderNotFound" in d for d in contacts["debug"])
    again = setup.backup(services=["mail", "contacts"], users=[owner])
    assert again["exit_code"] == 0
    assert _service(again, owner, "mail")["status"] == "ok"
    assert json.dumps(again).count("ErrorSyncFolderNotFound") == 0
    # What is gone is not in the snapshot.
    repo, reader = _latest(setup, lambda s: s.owner.name == owner)
    try:
        names = {i["kind"]: i["data"].get("displayName") for i in vanishing}
        assert names["mailFolder"] not in _names(reader, "mail")
        assert names["contactFolder"] not in _names(reader, "contacts/Contacts")
    finally:
        repo.close()


def test_failed_item_records_survive_a_resync_of_their_folder(setup: Setup) -> None:
    t = setup.tenant
    _only(t, "unreadable")
    message = _marked(t, "ErrorInvalidRecipients")
    owner = _upn(t, message["owner"])
    first = setup.backup(services=["mail"], users=[owner])
    assert first["exit_code"] == 3
    codes = {f["path"]: f["code"] for f in first["failed_items"]}
    assert sorted(codes.values()) == ["ErrorInvalidRecipients", "generalException"]
    t.admin.expire_delta_tokens(["mail"])  # the next round enumerates every folder afresh
    again = setup.backup(services=["mail"], users=[owner])
    assert again["exit_code"] == 0, dump(again)
    assert _service(again, owner, "mail")["resynced"]
    assert {f["path"]: f["code"] for f in again["failed_items"]} == codes
    repo, reader = _latest(setup, lambda s: s.owner.name == owner)
    try:
        for path, code in codes.items():
            folder, _, name = path.rpartition("/")
            assert f"{name}.failed.json" in _names(reader, folder)
            record = json.loads(reader.open(f"{path}.failed.json").read())
            assert record["code"] == code
    finally:
        repo.close()


def test_soft_deleted_user_is_listed_as_absent_and_keeps_its_snapshots(setup: Setup) -> None:
    t = setup.tenant
    user = next(u for u in t.admin.users() if u["purpose"] == "user")
    first = setup.backup(services=["mail"])
    assert first["exit_code"] == 0
    assert all(s["kind"] != "users" or "#EXT#" in s["name"] for s in first["owners_skipped"])
    t.admin.behaviours(soft_delete=[user["id"]])
    again = setup.backup(services=["mail"])
    assert again["exit_code"] == 0, dump(again)
    assert user["userPrincipalName"] not in {o["name"] for o in again["owners"]}
    absent = [s for s in again["owners_skipped"] if s["name"] == user["userPrincipalName"]]
    assert len(absent) == 1
    assert "no longer listed" in absent[0]["reason"]
    repo, reader = _latest(setup, lambda s: s.owner.key == user["id"])
    try:
        assert absent[0]["last_snapshot"] == reader.snapshot.id_hex
        assert _names(reader, "mail")
    finally:
        repo.close()


def test_a_retry_that_meets_a_server_error_leaves_the_record_for_the_next_run(
    setup: Setup,
) -> None:
    t = setup.tenant
    _only(t, "unreadable")
    item = _marked(t, "malwareDetected")
    owner = next(u["userPrincipalName"] for u in t.admin.users() if u["drive"] == item["scope"])
    assert setup.backup(services=["onedrive"], users=[owner])["exit_code"] == 3
    # The retry's metadata request answers 500 every time: the service's trouble, not
    # the file's, and the drive is not failed for it.
    t.admin.inject_faults({"kind": "500", "match": f"/items/{item['key']}$", "methods": ["GET"]})
    try:
        again = setup.backup(services=["onedrive"], users=[owner])
    finally:
        t.admin.clear_faults()
    assert again["exit_code"] == 0, dump(again)
    onedrive = _service(again, owner, "onedrive")
    assert onedrive["status"] == "ok"
    assert [f["code"] for f in onedrive["failed"]] == ["malwareDetected"]
    assert onedrive["failed"][0]["retries"] == 1  # a retry spent: still bounded
