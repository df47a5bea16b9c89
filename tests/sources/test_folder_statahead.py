"""The folder backup's stat-ahead helper (sources/folder/statwalker.py,
statahead.py): it stats what the walk will, in the walk's order, never
follows a symlink (not even one swapped in while it walks), stays bounded
in depth, carries no secret, and never outlives the backup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sources.folder.statahead import HELPER_MODULE, StatAhead
from sources.folder.statwalker import CHECK_EVERY, MAX_DEPTH, Stopped, walk
from tests.cli.support.helpers import (
    all_helpers,
    assert_no_secrets_reach,
    helpers_of,
    new_env,
    reaped,
    tree_state,
    wait_for,
)


def _visited(root: Path) -> list[bytes]:
    seen: list[bytes] = []
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        walk(fd, lambda path, _st: seen.append(path), lambda: None)
    finally:
        os.close(fd)
    return seen


def _tree(root: Path) -> Path:
    (root / "b" / "inner").mkdir(parents=True)
    (root / "a").mkdir()
    (root / "a" / "2.eml").write_bytes(b"two")
    (root / "a" / "10.eml").write_bytes(b"ten")
    (root / "b" / "inner" / "x").write_bytes(b"x")
    (root / "c.txt").write_bytes(b"c")
    os.mkfifo(root / "pipe")  # stat, never opened: the walk must not block on it
    return root


def test_it_stats_every_item_in_the_order_the_backup_walks(tmp_path: Path) -> None:
    root = _tree(tmp_path / "src")
    assert _visited(root) == [
        b"a",
        b"a/10.eml",
        b"a/2.eml",
        b"b",
        b"b/inner",
        b"b/inner/x",
        b"c.txt",
        b"pipe",
    ]


def test_symlinks_are_statted_not_followed(tmp_path: Path) -> None:
    root = _tree(tmp_path / "src")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not ours")
    (root / "link").symlink_to(outside)
    (root / "loop").symlink_to(root)
    visited = _visited(root)
    assert b"link" in visited
    assert b"loop" in visited
    assert not [p for p in visited if p.startswith((b"link/", b"loop/"))]


def test_a_folder_swapped_for_a_symlink_mid_walk_is_not_entered(tmp_path: Path) -> None:
    """The attack: a folder replaced by a symlink to elsewhere between its
    lstat and its opening. O_NOFOLLOW refuses it; without it, the walk went
    on into the target."""
    root = tmp_path / "src"
    (root / "victim").mkdir(parents=True)
    (root / "victim" / "inside").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "elsewhere").write_bytes(b"not ours")
    seen: list[bytes] = []

    def swap(path: bytes, _st: os.stat_result) -> None:
        seen.append(path)
        if path == b"victim":
            (root / "victim" / "inside").unlink()
            (root / "victim").rmdir()
            (root / "victim").symlink_to(outside)

    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        walk(fd, swap, lambda: None)
    finally:
        os.close(fd)
    assert seen == [b"victim"]


def test_depth_is_bounded(tmp_path: Path) -> None:
    deep = tmp_path / "src"
    path = deep
    for _ in range(MAX_DEPTH + 20):
        path = path / "d"
    path.mkdir(parents=True)
    visited = _visited(deep)
    assert max(p.count(b"/") + 1 for p in visited) == MAX_DEPTH
    assert len(visited) == MAX_DEPTH


def test_the_check_stops_the_walk(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    for i in range(CHECK_EVERY * 3):
        (root / f"{i:05d}").write_bytes(b"")
    seen: list[bytes] = []

    def stop() -> None:
        raise Stopped

    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(Stopped):
            walk(fd, lambda p, _st: seen.append(p), stop)
    finally:
        os.close(fd)
    assert len(seen) == CHECK_EVERY - 1


def test_the_helper_gets_no_secret_and_ends_with_its_socket(tmp_path: Path) -> None:
    root = _tree(tmp_path / "src")
    os.environ["COFFER_PASSWORD"] = "must not travel"
    try:
        with StatAhead([root, tmp_path / "missing"]) as ahead:
            pid = ahead.pid
            assert pid is not None
            # Until it has exec'd, the child's command line is still ours.
            wait_for(lambda: helpers_of(os.getpid(), HELPER_MODULE) == [pid], seconds=10)
            assert_no_secrets_reach(pid, HELPER_MODULE)
    finally:
        del os.environ["COFFER_PASSWORD"]
    assert not Path(f"/proc/{pid}").exists()  # reaped, not a zombie


def test_kill_9_of_its_backup_ends_the_helper(tmp_path: Path) -> None:
    root = tmp_path / "src"
    for d in range(40):
        (root / f"{d:02d}").mkdir(parents=True)
        for f in range(200):
            (root / f"{d:02d}" / f"{f}").write_bytes(b"")
    before = set(all_helpers(HELPER_MODULE))
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from pathlib import Path
                from sources.folder.statahead import StatAhead
                with StatAhead([Path({str(root)!r})]):
                    print("started", flush=True)
                    time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    with reaped(parent):
        assert parent.stdout is not None
        assert parent.stdout.readline() == "started\n"
        wait_for(lambda: bool(helpers_of(parent.pid, HELPER_MODULE)), seconds=10)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    wait_for(lambda: not (set(all_helpers(HELPER_MODULE)) - before), seconds=10)


def test_a_backup_runs_the_helper_and_leaves_nothing_behind(tmp_path: Path) -> None:
    root = _tree(tmp_path / "src")
    os.unlink(root / "pipe")  # a backup names a FIFO as skipped: not this test's subject
    env = new_env(tmp_path / "env")
    env.run("init", "--kdf-memory", "8", "--kdf-iterations", "1")
    before = set(all_helpers(HELPER_MODULE))
    backup = subprocess.Popen(
        [sys.executable, "-m", "cli", "-q", "backup", "--path", str(root)],
        env=env.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with reaped(backup):
        wait_for(lambda: bool(helpers_of(backup.pid, HELPER_MODULE)) or backup.poll() is not None)
        helper = helpers_of(backup.pid, HELPER_MODULE)
        assert helper, "the backup ended before its helper was seen"
        assert_no_secrets_reach(helper[0], HELPER_MODULE)
        assert backup.wait(timeout=120) == 0
    assert not (set(all_helpers(HELPER_MODULE)) - before)
    out = tmp_path / "out"
    env.run("restore", "latest", "--to-dir", str(out))
    assert tree_state(out) == tree_state(root)
