"""Owners and set-ID bits through a folder backup and a restore (as root and not).

The tests run as root, like a system backup of home directories: the root
path is exercised directly, the unprivileged one in a child process that runs
as ``nobody``.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sources.folder import backup_folder
from sources.localdir import restore_to_dir
from store import BackupRun, LocalBackend, Repository, Snapshot
from tests.cli.support.helpers import init, new_env
from tests.store.support.helpers import OWNER, PASSWORD, make_repo

USER, GROUP = 1234, 2345  # ids no account on this machine has
NOBODY = pwd.getpwnam("nobody")


def _home(root: Path) -> Path:
    """A user's folder: a setuid and a setgid program, a setgid directory, a link."""
    home = root / "home"
    home.mkdir()
    (home / "bin").mkdir()
    (home / "bin" / "suid").write_bytes(b"#!/bin/sh\necho owned\n")
    (home / "bin" / "sgid").write_bytes(b"#!/bin/sh\necho grouped\n")
    (home / "link").symlink_to("bin/suid")
    for path in (home / "bin" / "suid", home / "bin" / "sgid", home / "bin", home / "link", home):
        os.chown(path, USER, GROUP, follow_symlinks=False)
    # chown clears set-ID bits: set them after.
    (home / "bin" / "suid").chmod(0o4755)
    (home / "bin" / "sgid").chmod(0o2755)
    (home / "bin").chmod(0o2775)
    return home


def _backup(tmp_path: Path) -> tuple[Repository, Snapshot]:
    home = _home(tmp_path)
    repo = make_repo(tmp_path / "repo")
    with BackupRun(repo) as run:
        result = backup_folder(run, home)
    assert not result.skipped
    return repo, result.snapshot


def _owner(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_backup_records_owners(tmp_path: Path) -> None:
    repo, snapshot = _backup(tmp_path)
    entries = dict(repo.reader(snapshot).walk())
    for path in ("bin", "bin/suid", "bin/sgid", "link"):
        assert entries[path].attrs["uid"] == str(USER), path
        assert entries[path].attrs["gid"] == str(GROUP), path
        assert "user" not in entries[path].attrs  # no such account here
    assert entries["bin/suid"].mode == 0o4755


def test_root_restores_owners_and_their_set_id_bits(tmp_path: Path) -> None:
    repo, snapshot = _backup(tmp_path)
    out = tmp_path / "out"
    result = restore_to_dir(repo.reader(snapshot), out)
    assert not result.failures
    assert _owner(out / "bin" / "suid") == (USER, GROUP, 0o4755)
    assert _owner(out / "bin" / "sgid") == (USER, GROUP, 0o2755)
    assert _owner(out / "bin") == (USER, GROUP, 0o2775)
    assert _owner(out / "link")[:2] == (USER, GROUP)


def test_root_without_owners_never_leaves_a_root_owned_setuid_file(tmp_path: Path) -> None:
    repo, snapshot = _backup(tmp_path)
    out = tmp_path / "out"
    restore_to_dir(repo.reader(snapshot), out, owners="none")
    assert _owner(out / "bin" / "suid") == (0, 0, 0o755)
    assert _owner(out / "bin" / "sgid") == (0, 0, 0o755)
    assert _owner(out / "bin") == (0, 0, 0o775)


def test_a_snapshot_without_owners_restores_without_set_id_bits(tmp_path: Path) -> None:
    # Snapshots written before owners were recorded (or by other sources).
    repo = make_repo(tmp_path / "repo")
    with BackupRun(repo) as run, run.owner(OWNER) as session:
        session.full_scope()
        session.add_item("suid", b"x", mode=0o4755, version="1")
        session.add_item("root-suid", b"y", mode=0o4755, version="2", attrs={"uid": "0"})
        snapshot = session.commit()
    out = tmp_path / "out"
    restore_to_dir(repo.reader(snapshot), out)
    assert _owner(out / "suid") == (0, 0, 0o755)
    # A file recorded as root's own setuid program stays one (with no group
    # recorded, its set-group-ID bit would go).
    assert _owner(out / "root-suid") == (0, 0, 0o4755)


def test_names_map_to_this_machines_ids(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    attrs = {"uid": str(USER), "gid": str(GROUP), "user": "nobody", "group": "no-such-group-x"}
    with BackupRun(repo) as run, run.owner(OWNER) as session:
        session.full_scope()
        session.add_item("f", b"x", mode=0o6755, version="1", attrs=attrs)
        snapshot = session.commit()
    by_name, by_number = tmp_path / "names", tmp_path / "numbers"
    restore_to_dir(repo.reader(snapshot), by_name, owners="names")
    restore_to_dir(repo.reader(snapshot), by_number)
    # The user name is known here, the group name is not (its number is used).
    assert _owner(by_name / "f") == (NOBODY.pw_uid, GROUP, 0o6755)
    assert _owner(by_number / "f") == (USER, GROUP, 0o6755)


def _restore_as(
    uid: int, gid: int, repo_path: Path, snapshot: Snapshot, out: Path
) -> dict[str, Any]:
    """Restore in a forked child that has dropped root for ``uid``/``gid``
    (the interpreter under /root is not executable for them, so no exec)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            with Repository.open(
                LocalBackend(repo_path),
                PASSWORD,
                cache_root=repo_path.parent / "repo-cache",
            ) as repo:
                snap = next(s for s in repo.list_snapshots() if s.id_hex == snapshot.id_hex)
                result = restore_to_dir(repo.reader(snap), out)
            os.write(write_end, json.dumps(result.to_map()).encode())
            code = 0
        except BaseException as exc:
            os.write(write_end, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        data = answer.read()
    _, status = os.waitpid(pid, 0)
    outcome: dict[str, Any] = json.loads(data)
    assert os.waitstatus_to_exitcode(status) == 0, outcome
    return outcome


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, gid)
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory outside pytest's (root-only) temporary tree, owned by nobody."""
    path = Path(tempfile.mkdtemp(prefix="coffer-owners-"))
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_a_user_restoring_strips_set_id_bits_of_files_that_are_not_theirs(
    shared_dir: Path,
) -> None:
    tmp_path = shared_dir
    repo = make_repo(tmp_path / "repo")
    theirs = {"uid": str(USER), "gid": str(GROUP)}
    mine = {"uid": str(NOBODY.pw_uid), "gid": str(NOBODY.pw_gid)}
    with BackupRun(repo) as run, run.owner(OWNER) as session:
        session.full_scope()
        session.add_item("theirs", b"x", mode=0o6755, version="1", attrs=theirs)
        session.add_item("mine", b"y", mode=0o6755, version="2", attrs=mine)
        snapshot = session.commit()
    repo.close()
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out"
    for path in (tmp_path / "repo", tmp_path / "repo-cache", work):
        _chown_tree(path, NOBODY.pw_uid, NOBODY.pw_gid)
    outcome = _restore_as(NOBODY.pw_uid, NOBODY.pw_gid, tmp_path / "repo", snapshot, out)
    assert outcome["created"] == 2
    assert _owner(out / "theirs") == (NOBODY.pw_uid, NOBODY.pw_gid, 0o755)
    # The user's own program keeps its bits: nothing was gained by them.
    assert _owner(out / "mine") == (NOBODY.pw_uid, NOBODY.pw_gid, 0o6755)


@pytest.mark.parametrize("owners", ["numeric", "names", "none"])
def test_restore_owner_option_reaches_the_restore(tmp_path: Path, owners: str) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    home = _home(tmp_path)
    env.run("backup", "--path", str(home))
    out = tmp_path / "out"
    report = env.run(
        "restore", "latest", "--to-dir", str(out), "--restore-owner", owners, "--json"
    ).json()
    assert report["restore_owner"] == owners
    expected = (0, 0, 0o755) if owners == "none" else (USER, GROUP, 0o4755)
    assert _owner(out / "bin" / "suid") == expected


def test_a_changed_owner_is_seen_by_the_next_backup(tmp_path: Path) -> None:
    home = _home(tmp_path)
    repo = make_repo(tmp_path / "repo")
    with BackupRun(repo) as run:
        backup_folder(run, home)
    os.chown(home / "bin", NOBODY.pw_uid, NOBODY.pw_gid)  # no mtime change
    os.chown(home / "bin" / "sgid", NOBODY.pw_uid, NOBODY.pw_gid)
    with BackupRun(repo) as run:
        second = backup_folder(run, home).snapshot
    entries = dict(repo.reader(second).walk())
    assert entries["bin"].attrs["uid"] == str(NOBODY.pw_uid)
    assert entries["bin"].attrs["user"] == "nobody"
    assert entries["bin/sgid"].attrs["uid"] == str(NOBODY.pw_uid)
    assert entries["bin/suid"].attrs["uid"] == str(USER)
