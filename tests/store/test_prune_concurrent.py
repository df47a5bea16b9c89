"""prune against other processes: a backup that overlaps a mark (revival), a
backup loop running while prune runs again and again, and kill -9 at every
write or delete prune makes, each followed by check and restore."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store import (
    LocalBackend,
    PruneOptions,
    Repository,
    RetentionPolicy,
    Snapshot,
    execute_forget,
    forget_snapshots,
    plan_forget,
    prune,
)
from tests.store.support.ops_helpers import (
    ALICE,
    BOB,
    DAY,
    HOUR,
    PASSWORD,
    T0,
    backup,
    check,
    copy_tree,
    make_repo,
    restore_all,
)

ROOT = Path(__file__).resolve().parents[2]
BIG_A = random.Random(1).randbytes(16384)
BIG_B = random.Random(2).randbytes(16384)


def child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store.support.prune_child", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def open_repo(root: Path, cache: str) -> Repository:
    return Repository.open(
        LocalBackend(root / "repo", durable=False), PASSWORD, cache_root=root / cache
    )


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {path}")
        time.sleep(0.02)


def real(**more: object) -> PruneOptions:
    return PruneOptions(clock=time.time_ns, clock_margin_ns=0, **more)  # type: ignore[arg-type]


def later(offset_ns: int, **more: object) -> PruneOptions:
    return PruneOptions(
        clock=lambda: time.time_ns() + offset_ns,
        clock_margin_ns=0,
        session_stale_ns=30 * DAY,
        **more,  # type: ignore[arg-type]
    )


def test_a_backup_in_another_process_revives_a_marked_pack(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    old = backup(repo, ALICE, {"a": BIG_A})
    backup(repo, ALICE, {"b": BIG_B})
    forget_snapshots(repo, [old])
    (tmp_path / "content").write_bytes(BIG_A)
    sync = tmp_path / "sync"
    sync.mkdir()
    proc = child(
        "pausedbackup",
        str(tmp_path / "repo"),
        str(tmp_path / "child-cache"),
        str(sync),
        str(tmp_path / "content"),
    )
    try:
        wait_for(sync / "ready", proc)
        marked = prune(repo, real())
        assert marked.marked
        before = {info.key for info in repo.backend.list("data/")}
        # Two days later the child is still running: its session postpones the sweep.
        postponed = prune(repo, later(2 * DAY))
        assert postponed.postponed
        assert not postponed.deleted
        assert {info.key for info in repo.backend.list("data/")} == before
        (sync / "go").write_text("go")
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    snapshot_id = (sync / "snapshot").read_text()
    # The child deduplicated against the marked pack; the sweep revives it.
    swept = prune(repo, later(2 * DAY))
    assert swept.revived
    result = check(repo)
    assert not result.problems, [p.message for p in result.problems]
    fresh = open_repo(tmp_path, "fresh-cache")
    bob = next(s for s in fresh.list_snapshots() if s.id_hex == snapshot_id)
    assert restore_all(fresh, bob)["copy"] == BIG_A


def _verify_log(repo: Repository, log: Path) -> int:
    """Every logged snapshot still in the repository restores to what was logged."""
    logged = {}
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        logged[entry["snapshot"]] = entry["files"]
    present = {s.id_hex: s for s in repo.list_snapshots()}
    checked = 0
    for snapshot_id, files in logged.items():
        if snapshot_id not in present:
            continue  # forgotten meanwhile
        restored = restore_all(repo, present[snapshot_id])
        assert {k: hashlib.sha256(v).hexdigest() for k, v in restored.items()} == files
        checked += 1
    return checked


def _prune_while_backing_up(tmp_path: Path, rounds: int) -> None:
    repo = make_repo(tmp_path, pack_size=64 * 1024)  # small packs: many of them
    log = tmp_path / "log.jsonl"
    log.touch()
    stop = tmp_path / "stop"
    proc = child("backuploop", str(tmp_path / "repo"), str(tmp_path / "child-cache"), str(log),
                 str(rounds), "7", str(stop))  # fmt: skip
    prunes = sweeps = 0
    # The child backs up until told to stop, and is told once prune has run
    # often enough and swept something: how fast either side goes on a
    # loaded machine changes the time taken, not what is tested.
    deadline = time.monotonic() + 600
    try:
        while proc.poll() is None:
            plan = plan_forget(repo, lambda _o: RetentionPolicy(last=2))
            execute_forget(repo, plan)
            # Grace 0: sweeps are held back by live sessions alone.
            result = prune(repo, real(grace_ns=0, max_unused_percent=0.0))
            prunes += 1
            sweeps += len(result.deleted)
            if (prunes >= 3 and sweeps >= 1) or time.monotonic() > deadline:
                stop.touch()
        _out, err = proc.communicate()
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    prune(repo, real(grace_ns=0, max_unused_percent=0.0))
    result = check(repo)
    assert not result.errors, [p.message for p in result.errors]
    assert _verify_log(open_repo(tmp_path, "verify-cache"), log) >= 2
    assert prunes >= 2
    assert sweeps >= 1
    print(f"{prunes} prunes swept {sweeps} packs while {rounds} rounds of backups ran")


def test_prune_again_and_again_while_another_process_backs_up(tmp_path: Path) -> None:
    _prune_while_backing_up(tmp_path, rounds=30)


@pytest.mark.slow
def test_prune_while_backing_up_long(tmp_path: Path) -> None:
    _prune_while_backing_up(tmp_path, rounds=400)


def _template(root: Path) -> tuple[Repository, dict[str, dict[str, bytes]]]:
    """A repository with work for prune: unused packs, partly used ones, an orphan."""
    repo = make_repo(root, pack_size=40 * 1024)
    rng = random.Random(3)
    pool = [rng.randbytes(9000) for _ in range(10)]
    expected: dict[str, dict[str, bytes]] = {}
    for day in range(4):
        for owner in (ALICE, BOB):
            files = {f"f{i}": pool[(i + day) % 10] + bytes([day]) * day for i in range(4)}
            snap = backup(repo, owner, files, time_ns=T0 + day * DAY + (owner == BOB))
            expected[snap.id_hex] = files
    removed = execute_forget(
        repo, plan_forget(repo, lambda _o: RetentionPolicy(last=1), now_ns=T0 + 5 * DAY)
    )
    assert removed
    for snap_id in list(expected):
        if snap_id not in {s.id_hex for s in repo.list_snapshots()}:
            del expected[snap_id]
    return repo, expected


def _assert_intact(root: Path, expected: dict[str, dict[str, bytes]], cache: str) -> None:
    repo = open_repo(root, cache)
    result = check(repo)
    assert not result.errors, [p.message for p in result.errors]
    snapshots: dict[str, Snapshot] = {s.id_hex: s for s in repo.list_snapshots()}
    assert set(snapshots) == set(expected)
    for snap_id, files in expected.items():
        assert restore_all(repo, snapshots[snap_id]) == files


def _crash_loop(tmp_path: Path, template: Path, now_ns: int, expected: dict) -> int:  # type: ignore[type-arg]
    work = tmp_path / "work"
    copy_tree(template, work)
    proc = child("crashprune", str(work / "repo"), str(work / "child-cache"), str(now_ns), "0")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    total = int(out.strip())
    assert total >= 3
    for crash_at in range(1, total + 1):
        copy_tree(template, work)
        proc = child(
            "crashprune", str(work / "repo"), str(work / "child-cache"), str(now_ns), str(crash_at)
        )
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, (crash_at, err)
        _assert_intact(work, expected, f"check-{crash_at}")
        # The next prunes finish the job (the dead prune's lock is taken over).
        repo = open_repo(work, f"after-{crash_at}")
        prune(repo, PruneOptions(clock=lambda: now_ns + HOUR, max_unused_percent=0.0))
        prune(repo, PruneOptions(clock=lambda: now_ns + 3 * DAY, max_unused_percent=0.0))
        _assert_intact(work, expected, f"final-{crash_at}")
    return total


def test_kill_9_at_every_step_of_prune_then_check(tmp_path: Path) -> None:
    template = tmp_path / "template"
    template.mkdir()
    repo, expected = _template(template)
    # Phase one: marking and repacking.
    marks = _crash_loop(tmp_path, template, T0 + 5 * DAY, expected)
    # Phase two: sweeping (the template now holds marks older than the grace period).
    prune(repo, PruneOptions(clock=lambda: T0 + 5 * DAY, max_unused_percent=0.0))
    sweeps = _crash_loop(tmp_path, template, T0 + 8 * DAY, expected)
    assert marks + sweeps >= 8
    print(f"killed prune at each of {marks} + {sweeps} writes and deletes")


def test_check_while_another_process_backs_up(tmp_path: Path) -> None:
    """A backup writing meanwhile is no damage (snapshots are listed before indexes)."""
    repo = make_repo(tmp_path, pack_size=64 * 1024)
    log = tmp_path / "log.jsonl"
    proc = child("backuploop", str(tmp_path / "repo"), str(tmp_path / "child-cache"), str(log),
                 "10", "8")  # fmt: skip
    checks = 0
    try:
        while proc.poll() is None:
            result = check(repo)
            assert not result.errors, [p.message for p in result.errors]
            checks += 1
        _out, err = proc.communicate()
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert checks >= 2
    assert not check(repo).errors
