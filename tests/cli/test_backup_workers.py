"""A real ``coffer backup --path`` with worker processes: killed with
``kill -9``, its workers exit and the next run is not blocked; a worker that
dies fails the backup with one line and exit code 1, and no snapshot."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

from store import ExitCode
from tests.cli.support.helpers import CofferEnv, files_of, helpers_of, init, new_env


def _corpus(root: Path, files: int = 600, size: int = 160_000) -> None:
    """Enough to start the workers and keep them busy for a while: the
    walk (in name order) first meets 132 MiB of large files, past the
    128 MiB at which the workers take over (PIPELINE_START_BYTES), then
    ``files`` random files of up to ``size`` bytes for them."""
    rng = random.Random(11)
    (root / "a-large").mkdir(parents=True)
    for i in range(4):
        (root / "a-large" / f"{i}.bin").write_bytes(os.urandom(33 << 20))
    for i in range(files):
        folder = root / f"d{i % 9}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:04d}.bin").write_bytes(rng.randbytes(rng.randrange(size // 2, size)))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for_workers(proc: subprocess.Popen[str], count: int, timeout: float = 120) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"backup ended before its workers were seen: {proc.stderr}"
        workers = helpers_of(proc.pid, "store.pipeline.worker")
        if len(workers) >= count:
            return workers
        time.sleep(0.005)
    raise AssertionError("the backup started no worker processes")


def _snapshots(env: CofferEnv) -> list[dict[str, object]]:
    result = env.run("snapshots", "--partial", "--json")
    snapshots: list[dict[str, object]] = json.loads(result.out)
    return snapshots


def test_kill_9_of_the_backup_ends_its_workers_and_the_next_run_succeeds(tmp_path: Path) -> None:
    source = tmp_path / "src"
    _corpus(source)
    env = new_env(tmp_path / "env")
    init(env)
    proc = env.popen("backup", "--path", str(source), "--workers", "2")
    try:
        workers = _wait_for_workers(proc, 2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout and proc.stdout.close()
        proc.stderr and proc.stderr.close()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # do not leave them behind for the other tests
        os.kill(pid, signal.SIGKILL)
    assert left == [], "worker processes outlived the killed backup"
    # The next run is not blocked (no lock held by a leftover) and completes.
    result = env.run("backup", "--path", str(source), "--workers", "2", timeout=600)
    assert result.code == ExitCode.OK
    restored = tmp_path / "restored"
    env.run("restore", "latest", "--to-dir", str(restored), timeout=600)
    assert files_of(restored) == files_of(source)


def test_a_dead_worker_fails_the_backup_in_one_line_with_no_snapshot(tmp_path: Path) -> None:
    source = tmp_path / "src"
    _corpus(source)
    env = new_env(tmp_path / "env")
    init(env)
    proc = env.popen("backup", "--path", str(source), "--workers", "2")
    try:
        workers = _wait_for_workers(proc, 2)
        os.kill(workers[0], signal.SIGKILL)
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == ExitCode.ERROR, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "worker process" in lines[0]
    assert "killed by signal 9" in lines[0]
    assert "Traceback" not in err
    assert _snapshots(env) == []
    # The other worker was stopped with the backup, not left running.
    deadline = time.monotonic() + 20
    while _alive(workers[1]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(workers[1])


def test_workers_without_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    result = env.run("backup", "--workers", "1", check=False)
    assert result.code == ExitCode.USAGE
    assert "--workers applies to folder backups" in result.err
    assert "Traceback" not in result.err
    bad = env.run("backup", "--path", str(tmp_path), "--workers", "-1", check=False)
    assert bad.code == ExitCode.USAGE
