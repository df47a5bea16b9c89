"""``coffer restore`` and ``coffer find`` into a simulated tenant through the real command line.

One tenant and one repository for the module, backed up once by ``coffer
backup``; each test works on its own user (or puts back what it took away),
runs the real ``coffer`` executable and reads the outcome through Graph and
the simulator's counters, never through Coffer's own code.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from store import format_time
from tests.cli.support.helpers import CofferEnv, Result, init, new_env
from tests.mount.support.mounting import is_mounted
from tests.sources.m365.support.restoring import Graph
from tools.graphsim.testing import RunningTenant, running_tenant

pytestmark = pytest.mark.sim

NOTHING = "nothing matched the selection"


@dataclass
class Tenant:
    env: CofferEnv
    tenant: RunningTenant
    config: str

    @property
    def graph(self) -> Graph:
        return Graph(self.tenant)

    def coffer(self, *args: str, check: bool = False, **extra: str) -> Result:
        return self.env.run(*args, check=check, COFFER_CONFIG=self.config, **extra)

    def restore(self, *args: str) -> Result:
        return self.coffer("restore", "latest", *args)


def _backed_up_tenant(root: Path) -> Iterator[Tenant]:
    env = new_env(root / "coffer")
    init(env)
    with running_tenant(root / "sim", seed=3, throttling=False) as tenant:
        setup = Tenant(env, tenant, str(root / "sim" / "coffer.toml"))
        setup.coffer("backup", check=True)
        yield setup


@pytest.fixture(scope="module")
def m365(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenant]:
    """Shared by the tests that leave the tenant as they found it (reads, dry runs,
    restores whose every item is skipped as present)."""
    yield from _backed_up_tenant(tmp_path_factory.mktemp("cli-restore"))


@pytest.fixture
def fresh_m365(tmp_path: Path) -> Iterator[Tenant]:
    """A tenant and repository of the test's own, for tests that change the tenant
    (delete items, restore into it, remove a licence), so no test depends on another."""
    yield from _backed_up_tenant(tmp_path)


def _state(g: Graph, user: dict[str, Any]) -> dict[str, Counter[Any]]:
    """Mail by folder and internet message ID, contacts by name, files by path and size
    (IDs change when items are restored; a duplicate counts twice)."""
    uid = user["id"]
    mail: Counter[Any] = Counter()
    for folder in g.all(f"/users/{uid}/mailFolders/delta"):
        if folder["displayName"] == "Deleted Items":
            continue
        for m in g.all(f"/users/{uid}/mailFolders/{folder['id']}/messages", **{"$top": "100"}):
            mail[(folder["displayName"], m["internetMessageId"], m["isRead"])] += 1
    contacts = Counter(c["displayName"] for c in g.all(f"/users/{uid}/contacts"))
    files: Counter[Any] = Counter()

    def walk(item: str, prefix: str) -> None:
        for child in g.all(f"/drives/{user['drive']}/items/{item}/children"):
            if "package" in child:
                continue  # OneNote notebooks have no content to restore
            # Files keep their timestamps; folders made by a restore are new folders.
            stamp = None if "folder" in child else child["fileSystemInfo"]["lastModifiedDateTime"]
            files[(prefix + child["name"], int(child.get("size") or 0), stamp)] += 1
            if "folder" in child:
                walk(child["id"], f"{prefix}{child['name']}/")

    walk("root", "")
    return {"mail": mail, "contacts": contacts, "files": files}


def _wipe(g: Graph, user: dict[str, Any]) -> None:
    uid = user["id"]
    for message in g.all(f"/users/{uid}/mailFolders/inbox/messages", **{"$top": "100"}):
        g.delete(f"/users/{uid}/messages/{message['id']}")
    for folder in g.all(f"/users/{uid}/mailFolders"):
        if folder["displayName"] == "Projects":
            g.delete(f"/users/{uid}/mailFolders/{folder['id']}")
    for child in g.all(f"/drives/{user['drive']}/root/children"):
        if child["name"] in ("Documents", "Pictures"):
            g.delete(f"/drives/{user['drive']}/items/{child['id']}")


def _writes(stats: dict[str, Any]) -> int:
    return sum(n for k, n in stats["by_endpoint"].items() if not k.startswith("GET"))


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_kill_9_mid_restore_then_run_again_finishes_without_duplicates(fresh_m365: Tenant) -> None:
    g = fresh_m365.graph
    user = g.user(index=0)
    upn = user["userPrincipalName"]
    before = _state(g, user)
    _wipe(g, user)
    wiped = _state(g, user)
    assert wiped != before
    admin = fresh_m365.tenant.admin
    admin.reset_stats()
    # Writes are slowed down so the process is surely killed in the middle.
    admin.inject_faults({"kind": "slow", "delay": 0.25, "methods": ["POST", "PUT"]})
    args = ["restore", "latest", "--to", "original", "--owner", upn]
    args += ["--service", "mail", "--service", "onedrive"]
    proc = fresh_m365.env.popen(*args, COFFER_CONFIG=fresh_m365.config)
    try:
        deadline = time.monotonic() + 120
        while _writes(admin.stats()) < 6:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        admin.clear_faults()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    halfway = _state(g, user)
    assert halfway != before  # interrupted for real
    assert halfway != wiped

    again = fresh_m365.coffer(*args[0:], "--json")
    assert again.code == 0, again.err
    report = again.json()
    assert report["totals"]["failed"] == 0
    assert report["totals"]["created"] > 0
    assert report["totals"]["skipped"] > 0  # what the killed run had put back
    after = _state(g, user)
    for key in before:
        assert after[key] == before[key], (key, after[key] - before[key], before[key] - after[key])
    third = fresh_m365.coffer(*args, "--json").json()
    assert third["totals"]["created"] == 0
    assert _state(g, user) == before


def test_kill_9_of_a_restore_to_another_user_resumes_in_the_same_folder(fresh_m365: Tenant) -> None:
    g = fresh_m365.graph
    source, other = g.user(index=1), g.user(index=2)
    inbox = {
        m["internetMessageId"]
        for m in g.all(f"/users/{source['id']}/mailFolders/inbox/messages", **{"$top": "100"})
    }
    admin = fresh_m365.tenant.admin
    admin.reset_stats()
    admin.inject_faults({"kind": "slow", "delay": 0.4, "methods": ["POST", "PUT"]})
    args = ["restore", "latest", "--to", f"user:{other['userPrincipalName']}"]
    args += ["--owner", source["userPrincipalName"], "--service", "mail", "--folder", "Inbox"]
    proc = fresh_m365.env.popen(*args, COFFER_CONFIG=fresh_m365.config)
    try:
        deadline = time.monotonic() + 120
        while _writes(admin.stats()) < 4:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        admin.clear_faults()
        if proc.poll() is None:
            proc.kill()
    time.sleep(1.1)  # a new run would name a new "Restored <second>" folder
    again = fresh_m365.coffer(*args)
    assert again.code == 0, again.err
    restored = [
        f
        for f in g.all(f"/users/{other['id']}/mailFolders")
        if f["displayName"].startswith("Restored ")
    ]
    assert len(restored) == 1, [f["displayName"] for f in restored]
    folder = g.folder(other["id"], f"{restored[0]['displayName']}/Inbox")
    assert folder is not None
    copied = Counter(
        m["internetMessageId"]
        for m in g.all(
            f"/users/{other['id']}/mailFolders/{folder['id']}/messages", **{"$top": "100"}
        )
    )
    assert copied == Counter(inbox)


def test_failed_items_give_exit_3_and_a_report_naming_them(fresh_m365: Tenant) -> None:
    g = fresh_m365.graph
    gone, fine = g.user(index=1), g.user(index=2)
    contact = g.all(f"/users/{fine['id']}/contacts")[0]
    g.delete(f"/users/{fine['id']}/contacts/{contact['id']}")
    admin = fresh_m365.tenant.admin
    # One target has lost its mailbox (licence removed): it cannot take its contacts.
    admin.switches(unlicensed=[gone["userPrincipalName"]])
    try:
        result = fresh_m365.restore(
            "--to",
            "original",
            "--owner",
            gone["userPrincipalName"],
            "--owner",
            fine["userPrincipalName"],
            "--service",
            "contacts",
        )
    finally:
        admin.switches(licensed=[gone["userPrincipalName"]])
    assert result.code == 3, result.err
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert any(
        line.startswith(f"users/{gone['userPrincipalName']} ") and ": failed: " in line
        for line in lines
    ), result.err
    assert any("contacts: failed" in line and "mailbox" in line for line in lines), result.err
    assert any(
        line.startswith(f"users/{fine['userPrincipalName']}") and "1 created" in line
        for line in lines
    ), result.err
    names = {c["displayName"] for c in g.all(f"/users/{fine['id']}/contacts")}
    assert contact["displayName"] in names
    # The stored report says the same, item by item.
    listing = fresh_m365.coffer("report", "--kind", "restore", "--json", check=True).json()
    report = fresh_m365.coffer("report", listing[-1]["key"], "--json", check=True).json()["report"]
    assert report["exit_code"] == 3
    assert report["status"] == "partial"
    owners = {o["name"]: o for o in report["owners"]}
    failed = owners[gone["userPrincipalName"]]["services"]["contacts"]["failed_items"]
    assert failed
    assert all("mailbox" in f["reason"] for f in failed)
    assert owners[fine["userPrincipalName"]]["services"]["contacts"]["created"] == 1


def test_a_filter_that_matches_nothing_says_so_in_one_line(m365: Tenant, tmp_path: Path) -> None:
    for target in (["--to", "original"], ["--to-dir", str(tmp_path / "out")]):
        result = m365.restore(*target, "--subject", "no such subject anywhere 7f3a")
        assert result.code == 0, result.err
        assert _one_line(result.err) == NOTHING
        assert result.out == ""
    found = m365.coffer("find", "--subject", "no such subject anywhere 7f3a")
    assert found.code == 0
    assert _one_line(found.err) == NOTHING


def test_find_says_where_each_version_lives(m365: Tenant) -> None:
    g = m365.graph
    user = g.user(index=2)
    upn = user["userPrincipalName"]
    sent = g.all(f"/users/{user['id']}/mailFolders/sentitems/messages", **{"$top": "100"})
    message = sorted(sent, key=lambda m: m["subject"])[0]
    g.patch(f"/users/{user['id']}/messages/{message['id']}", {"isRead": not message["isRead"]})
    m365.coffer("backup", "--user", upn, check=True)
    g.patch(f"/users/{user['id']}/messages/{message['id']}", {"isRead": message["isRead"]})
    snapshots = [
        s for s in m365.coffer("snapshots", "--json", check=True).json() if s["owner"] == upn
    ]
    assert len(snapshots) >= 2
    subject = message["subject"]
    args = ["find", "--owner", upn, "--folder", "Sent Items", "--subject", subject]
    versions = m365.coffer(*args, "--json", check=True).json()
    assert len(versions) == 2  # before and after the change of read state
    # Times as `coffer snapshots` lists them and the mount names them.
    known = {s["id"]: format_time(s["time_ns"]) for s in snapshots}
    for version in versions:
        assert version["owner"]["name"] == upn
        assert version["service"] == "mail"
        assert version["title"] == subject
        assert version["path"].startswith("mail/Sent Items/")
        assert version["mount_path"].startswith(f"owners/users/{upn}/")
        assert version["mount_path"].endswith(version["path"])
        for snap in version["snapshots"]:
            assert known[snap["id"]] == snap["time"]
    assert {v["snapshots"][-1]["id"] for v in versions} <= set(known)
    assert versions[0]["snapshots"][0]["id"] != versions[1]["snapshots"][0]["id"]
    text = m365.coffer(*args, check=True)
    for version in versions:
        last = version["snapshots"][-1]
        assert f"{last['id'][:8]} ({last['time']})" in text.out
        assert f"path   {version['path']}" in text.out
        assert f"mount  {version['mount_path']}" in text.out
    assert "restore: coffer restore " in text.out
    assert "2 version(s) of 1 item(s)" in text.err


def test_teams_refused_when_asked_for_and_skipped_with_one_notice(m365: Tenant) -> None:
    for asked in (["--service", "teams"], ["--kind", "post"]):
        result = m365.restore("--to", "original", *asked)
        assert result.code == 2, result.err
        line = _one_line(result.err)
        assert "Teams channel messages cannot be restored" in line
        assert "--to-dir" in line
    g = m365.graph
    user = g.user(index=2)
    teams = [
        s
        for s in m365.coffer("snapshots", "--json", check=True).json()
        if s["owner_kind"] == "teams"
    ]
    assert teams
    m365.tenant.admin.reset_stats()
    broad = m365.restore(
        "--to", "original", "--owner", teams[0]["owner_key"], "--owner", user["userPrincipalName"]
    )
    assert broad.code == 0, broad.err
    notices = [line for line in broad.err.splitlines() if "Teams" in line]
    assert len(notices) == 1, broad.err
    assert notices[0].startswith("notice: ")
    assert "1 team(s) left out" in notices[0]
    assert _writes(m365.tenant.admin.stats()) == 0  # everything was already there


def test_dry_run_lists_and_writes_nothing(m365: Tenant) -> None:
    g = m365.graph
    user = g.user(index=2)
    upn = user["userPrincipalName"]
    victims = g.all(f"/users/{user['id']}/contacts")[:2]
    for contact in victims:
        g.delete(f"/users/{user['id']}/contacts/{contact['id']}")
    admin = m365.tenant.admin
    admin.reset_stats()
    args = ["--to", "original", "--owner", upn, "--service", "contacts"]
    dry = m365.restore(*args, "--dry-run")
    assert dry.code == 0, dry.err
    assert _writes(admin.stats()) == 0
    would = [line for line in dry.err.splitlines() if "contacts: would create:" in line]
    assert len(would) == len(victims), dry.err
    assert "2 would create" in dry.err
    assert {c["displayName"] for c in g.all(f"/users/{user['id']}/contacts")}.isdisjoint(
        c["displayName"] for c in victims
    )
    as_json = m365.restore(*args, "--dry-run", "--json").json()
    assert as_json["dry_run"] is True
    planned = as_json["owners"][0]["services"]["contacts"]["planned"]
    assert sorted(p["action"] for p in planned if p["action"] != "skipped") == ["created"] * 2
    real = m365.restore(*args)
    assert real.code == 0
    assert "2 created" in real.err
    names = {c["displayName"] for c in g.all(f"/users/{user['id']}/contacts")}
    assert {c["displayName"] for c in victims} <= names


def test_every_restore_stores_a_json_and_readable_report(m365: Tenant, tmp_path: Path) -> None:
    def keys() -> list[str]:
        rows = m365.coffer("report", "--kind", "restore", "--json", check=True).json()
        return [row["key"] for row in rows]

    upn = m365.graph.user(index=2)["userPrincipalName"]
    runs = (
        ["--to", "original", "--owner", upn, "--service", "contacts"],
        ["--to", "original", "--owner", upn, "--service", "contacts", "--dry-run"],
        ["--to", "original", "--subject", "no such subject anywhere 7f3a"],
        ["--to-dir", str(tmp_path / "out"), "--owner", upn, "--service", "contacts"],
    )
    for args in runs:
        earlier = keys()
        result = m365.restore(*args, "--json")
        assert result.code == 0, result.err
        printed = result.json()
        now = keys()
        assert len(now) == len(earlier) + 1
        key = now[-1]
        assert key.startswith("reports/restore/")
        assert printed["report"] == key
        stored = m365.coffer("report", key, "--json", check=True).json()["report"]
        assert stored["format"] == "coffer-restore-report"
        assert stored["exit_code"] == 0
        assert isinstance(stored["summary"], str)
        assert stored["summary"]
        readable = m365.coffer("report", key, check=True).out
        assert stored["summary"].splitlines()[0] in readable
        if "--to" in args and "--subject" not in args:
            owner = stored["owners"][0]
            assert owner["name"] == upn
            assert set(owner["services"]["contacts"]) >= {"created", "skipped", "failed"}
            assert stored["dry_run"] is ("--dry-run" in args)
    listing = m365.coffer("report", "--kind", "restore", check=True).out
    assert "0 created" in listing  # the listing summarises restores too


def _post(m365: Tenant, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = m365.graph.session.post(m365.tenant.url(path), json=body, timeout=60)
    assert resp.status_code == 201, resp.text
    data = resp.json()
    assert isinstance(data, dict)
    return data


def _inside(root: Path) -> list[Path]:
    """Every path under ``root``, each checked to resolve inside it."""
    found = list(root.rglob("*"))
    for path in found:
        assert path.resolve(strict=False).is_relative_to(root.resolve()), path
    return found


def test_hostile_names_never_write_outside_the_directory(m365: Tenant, tmp_path: Path) -> None:
    g = m365.graph
    user = g.user(index=0)
    uid, upn = user["id"], user["userPrincipalName"]
    hostile = ("..", "/etc", "a/../../b", "..\\..\\windows")
    for name in hostile:
        folder = _post(m365, f"/users/{uid}/mailFolders", {"displayName": name})
        _post(
            m365,
            f"/users/{uid}/mailFolders/{folder['id']}/messages",
            {"subject": "../../../../tmp/escape", "body": {"contentType": "text", "content": "x"}},
        )
    _post(m365, f"/users/{uid}/contacts", {"displayName": "../../../outside"})
    m365.coffer("backup", "--user", upn, check=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    args = ["--owner", upn, "--service", "mail", "--service", "contacts"]

    # A symlink planted in the target, where the restore will want a folder.
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "mail").symlink_to(outside)
    result = m365.restore("--to-dir", str(planted), *args)
    assert result.code == 3, result.err  # the mail could not go there: failed, not followed
    assert "mail" in result.err
    assert list(outside.iterdir()) == []
    assert (planted / "mail").is_symlink()

    clean = tmp_path / "clean"
    result = m365.restore("--to-dir", str(clean), *args)
    assert result.code == 0, result.err
    assert list(outside.iterdir()) == []
    found = _inside(clean)
    names = [p.relative_to(clean).as_posix() for p in found]
    emls = [n for n in names if n.endswith(".eml")]
    escapes = [n for n in emls if "tmp" in n and "escape" in n]
    assert len(escapes) == len(hostile), emls  # one per hostile folder, each inside
    # Each hostile folder is one directory under mail/, its name made safe.
    folders = {p.name for p in (clean / "mail").iterdir() if p.is_dir()}
    assert {"%2E%2E", "%2Fetc", "a%2F..%2F..%2Fb", "..\\..\\windows"} <= folders
    assert not (tmp_path / "etc").exists()
    assert "contacts/Contacts/..%2F..%2F..%2Foutside [" in " ".join(names)


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns // 1_000_000_000)
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


@pytest.mark.fuse
def test_to_dir_matches_the_mount_and_eml_is_the_backed_up_mime(
    m365: Tenant, tmp_path: Path
) -> None:
    g = m365.graph
    user = g.user(index=2)
    upn = user["userPrincipalName"]
    out = tmp_path / "out"
    result = m365.restore("--to-dir", str(out), "--owner", upn)
    assert result.code == 0, result.err
    restored = _files(out)
    assert any(name.startswith("onedrive/") for name in restored)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    proc = m365.env.popen("mount", str(mountpoint))
    try:
        deadline = time.monotonic() + 30
        while not is_mounted(mountpoint):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        history = mountpoint / "owners" / "users" / upn
        newest = sorted(p for p in history.iterdir() if p.name[:1].isdigit())[-1]
        mounted = _files(newest)
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert restored.keys() == mounted.keys()
    for name, (data, mtime) in restored.items():
        assert data == mounted[name][0], name
        assert mtime == mounted[name][1], name
    # The .eml files are the messages' MIME as Graph served it ($value), byte for byte.
    inbox = g.all(f"/users/{user['id']}/mailFolders/inbox/messages", **{"$top": "100"})
    assert inbox
    mime = sorted(g.raw(f"/users/{user['id']}/messages/{m['id']}/$value") for m in inbox)
    emls = sorted(
        data
        for name, (data, _) in restored.items()
        if name.startswith("mail/Inbox/") and name.count("/") == 2 and name.endswith(".eml")
    )
    assert emls == mime


def test_groups_refused_when_asked_for_and_exported_with_to_dir(
    m365: Tenant, tmp_path: Path
) -> None:
    result = m365.restore("--to", "original", "--service", "groups")
    assert result.code == 2, result.err
    line = _one_line(result.err)
    assert "group conversations and calendars cannot be restored" in line
    assert "--to-dir" in line
    snaps = m365.coffer("snapshots", "--json", check=True).json()
    group = next(
        s
        for s in snaps
        if s["owner_kind"] == "groups" and s["owner"].startswith("Marketing Announcements")
    )
    only = m365.restore("--to", "original", "--owner", group["owner_key"])
    assert only.code == 2, only.err
    m365.tenant.admin.reset_stats()
    out = tmp_path / "out"
    exported = m365.restore("--to-dir", str(out), "--owner", group["owner_key"])
    assert exported.code == 0, exported.err
    files = [p for p in out.rglob("*") if p.is_file()]
    names = [p.name for p in files]
    assert any(n.endswith(".attachment.Brief Q3.pdf") for n in names), names
    assert sum(n.endswith(".html") for n in names) == sum(
        n.endswith(".json") and p.parent.parent.name == "conversations"
        for p, n in zip(files, names, strict=True)
    )
    assert any(n.endswith(".ics") for n in names)
    assert any(n == "group.json" for n in names)
    assert _writes(m365.tenant.admin.stats()) == 0
