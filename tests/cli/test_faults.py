"""Faults: kill -9 mid-backup, concurrent writers, unreadable files, a full disk."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import LocalBackend, Repository
from tests.cli.support.helpers import (
    COFFER,
    CofferEnv,
    files_of,
    init,
    make_tree,
    new_env,
    small_disk,
    tree_state,
)


def _corpus(root: Path, files: int, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(files):
        folder = root / f"d{i % 17:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}").write_bytes(rng.randbytes(rng.randrange(1000, 12000)))
    for i in range(4):
        (root / f"large{i}.bin").write_bytes(rng.randbytes(4 * 1024 * 1024))


def _committed(env: CofferEnv) -> dict[str, tuple[bool, dict[str, bytes]]]:
    """Every snapshot (checkpoints too) read back through the engine: id -> (partial, files)."""
    repo = Repository.open(
        LocalBackend(env.repo),
        env.password_file.read_bytes().rstrip(b"\n"),
        cache_root=env.root / "verify-cache",
    )
    try:
        out = {}
        for snapshot in repo.list_snapshots():
            reader = repo.reader(snapshot)
            files = {p: reader.open(e).read() for p, e in reader.walk() if e.is_file}
            out[snapshot.id_hex] = (snapshot.partial, files)
        return out
    finally:
        repo.close()


def _check_committed(env: CofferEnv, source_files: dict[str, bytes]) -> int:
    snaps = _committed(env)
    for partial, files in snaps.values():
        if partial:
            assert set(files) <= set(source_files)
            for path, data in files.items():
                assert data == source_files[path], path
        else:
            assert files == source_files
    return sum(1 for partial, _ in snaps.values() if partial)


def _wait_for(repo: Path, trigger: tuple[str, int], proc: subprocess.Popen[str]) -> None:
    """Wait until the backup reaches the trigger point (or ends)."""
    kind, count = trigger
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if kind == "packs":
            reached = (
                sum(1 for _ in (repo / "data").rglob("*")) >= count
                if (repo / "data").exists()
                else False
            )
        elif kind == "checkpoints":
            reached = (repo / "snapshots").exists() and sum(
                1 for _ in (repo / "snapshots").iterdir()
            ) >= count
        else:
            reached = True
        if reached:
            return
        time.sleep(0.003)


def _kill_cycles(tmp: Path, source: Path, points: int, seed: int) -> None:
    """Kill a backup at a chosen point, check, resume (sometimes killing the
    resume too), and check the completed result, ``points`` times.

    Kill points are events, not times, so they land mid-backup whatever the
    machine's speed: after the k-th pack is written, after the first
    checkpoint, or at a short random delay (start-up, index loading).
    """
    source_files = files_of(source)
    total = sum(len(v) for v in source_files.values())
    rng = random.Random(seed)
    triggers: list[tuple[str, int]] = [("time", 0), ("checkpoints", 1)]
    triggers += [("packs", k) for k in (1, 3, 6, 10, 15, 20)]
    kills = resumed_from_checkpoint = 0
    for cycle in range(points):
        env = new_env(tmp / f"env-{cycle}")
        env.run("init", "--kdf-memory", "8", "--kdf-iterations", "1", "--pack-size", "1")
        for attempt in range(1 + cycle % 2):
            trigger = triggers[(cycle + attempt) % len(triggers)]
            proc = env.popen("backup", "--path", str(source), "--checkpoint-interval", "0.2")
            if trigger[0] == "time":
                time.sleep(rng.uniform(0.05, 0.6))
            _wait_for(env.repo, trigger, proc)
            time.sleep(rng.uniform(0, 0.02))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.communicate(timeout=120)
            _check_committed(env, source_files)
        had_checkpoint = _check_committed(env, source_files) > 0
        final = env.run("backup", "--path", str(source), "--json").json()
        stats = final["owners"][0]["stats"]
        snaps = _committed(env)
        complete = [files for partial, files in snaps.values() if not partial]
        assert complete
        assert all(files == source_files for files in complete)
        # Checkpoints are gone once a complete snapshot supersedes them.
        assert all(not partial for partial, _ in snaps.values())
        if had_checkpoint:
            resumed_from_checkpoint += 1
            assert stats["bytes_read"] < total  # committed content was not read again
    assert kills >= points, "the backups finished too fast to be killed"
    # The "checkpoints" trigger alone guarantees some; pack triggers add more.
    assert resumed_from_checkpoint >= 2


def test_kill_nine_at_ten_points_then_resume(tmp_path: Path) -> None:
    source = tmp_path / "source"
    _corpus(source, 1200, seed=3)
    _kill_cycles(tmp_path, source, points=10, seed=11)
    # And the command line restores the last one exactly.
    env = CofferEnv(tmp_path / "env-9")
    target = tmp_path / "restored"
    env.run("restore", "latest", "--to-dir", str(target))
    assert files_of(target) == files_of(source)


@pytest.mark.slow
def test_kill_nine_at_forty_points(tmp_path: Path) -> None:
    source = tmp_path / "source"
    _corpus(source, 4000, seed=5)
    _kill_cycles(tmp_path, source, points=40, seed=13)


def test_two_owners_backed_up_concurrently_by_two_processes(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    first, second = tmp_path / "first", tmp_path / "second"
    _corpus(first, 400, seed=1)
    _corpus(second, 400, seed=2)
    # The same large file in both: both processes may store it; either copy is good.
    shutil.copy(first / "large0.bin", second / "shared.bin")
    procs = [env.popen("backup", "--path", str(p)) for p in (first, second)]
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    snaps = env.run("snapshots", "--json").json()
    assert len(snaps) == 2
    for source in (first, second):
        target = tmp_path / f"restored-{source.name}"
        env.run("restore", "latest", "--owner", f"*{source}", "--to-dir", str(target))
        assert files_of(target) == files_of(source)
    # A third backup (a new process) sees both processes' blobs: nothing new to store.
    third = env.run("backup", "--path", str(second), "--json").json()
    assert third["owners"][0]["stats"]["bytes_read"] == 0


_HOLDER = """
import sys, time
from pathlib import Path
from store import BackupRun, LocalBackend, Repository
from sources.folder import folder_owner
backend = LocalBackend(sys.argv[1])
repo = Repository.open(backend, sys.argv[2].encode(), cache_root=Path(sys.argv[3]))
with BackupRun(repo) as run, run.owner(folder_owner(Path(sys.argv[4]))):
    print("holding", flush=True)
    time.sleep(float(sys.argv[5]))
"""


def test_same_owner_twice_at_once_waits_or_is_refused(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    source = tmp_path / "source"
    make_tree(source)
    password = env.password_file.read_text().rstrip("\n")
    cache = tmp_path / "env" / "cache" / "coffer"

    def hold(seconds: float) -> subprocess.Popen[str]:
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _HOLDER,
                str(env.repo),
                password,
                str(cache),
                str(source),
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        holder.stdout.close()
        return holder

    holder = hold(30)
    refused = env.run("backup", "--path", str(source), check=False)
    holder.kill()
    holder.wait()
    assert refused.code == 12
    assert "another backup of" in refused.err
    assert env.run("snapshots", "--json").json() == []
    holder = hold(1.5)
    waited = env.run("backup", "--path", str(source), "--wait", "30", check=False)
    holder.wait()
    assert waited.code == 0, waited.err
    assert len(env.run("snapshots", "--json").json()) == 1


def test_unreadable_file_is_skipped_and_reported(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    source = tmp_path / "source"
    make_tree(source)
    secret = source / "secret.txt"
    secret.write_text("nobody may read this\n")
    secret.chmod(0o000)
    # Tests run as root, who reads anything: drop the capabilities that let
    # root ignore file permissions, as an ordinary backup operator would be.
    unprivileged = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    backup = subprocess.run(
        [*unprivileged, COFFER, "backup", "--path", str(source), "--json"],
        env=env.env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert backup.returncode == 3, backup.stderr
    summary = json.loads(backup.stdout)
    skipped = summary["owners"][0]["skipped"]
    assert skipped == [{"path": "secret.txt", "reason": "cannot read: Permission denied"}]
    target = tmp_path / "restored"
    env.run("restore", "latest", "--to-dir", str(target))
    expected = tree_state(source)
    del expected["secret.txt"]
    assert tree_state(target) == expected


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "tiny", "3m") as mount_point:
        yield mount_point


def test_full_disk_fails_cleanly_and_keeps_what_was_stored(tmp_path: Path, tiny_disk: Path) -> None:
    env = new_env(tmp_path / "env")
    repo = tiny_disk / "repo"
    small = tmp_path / "small"
    make_tree(small, files=10)
    env.run("init", "--kdf-memory", "8", "--kdf-iterations", "1", COFFER_REPO=str(repo))
    env.run("backup", "--path", str(small), COFFER_REPO=str(repo))
    large = tmp_path / "large"
    large.mkdir()
    (large / "random.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    full = env.run("backup", "--path", str(large), check=False, COFFER_REPO=str(repo))
    assert full.code == 1
    assert "no space left" in full.err
    assert "Traceback" not in full.err
    # What was stored before is intact and still restores.
    target = tmp_path / "restored"
    env.run(
        "restore", "latest", "--owner", f"*{small}", "--to-dir", str(target), COFFER_REPO=str(repo)
    )
    assert tree_state(target) == tree_state(small)
    assert [
        s["owner"].endswith("small")
        for s in env.run("snapshots", "--json", COFFER_REPO=str(repo)).json()
    ] == [True]
