"""A restore killed with SIGKILL: a new file it was writing leaves nothing
behind (it was unnamed, sources/localdir/unnamed.py); a file it was
replacing leaves a temporary file, which rerunning the restore removes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

from tests.cli.support.helpers import CofferEnv, init, new_env


def _leftovers(root: Path) -> list[Path]:
    return sorted(root.rglob(".coffer-restore-*")) if root.exists() else []


def _unnamed_open_in(pid: int, folder: Path) -> bool:
    # An unnamed file shows in /proc as "<its directory>/#<inode> (deleted)".
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(link.startswith(f"{folder}/#") for link in links)


def _slow_restore(env: CofferEnv, out: Path, *extra: str) -> subprocess.Popen[str]:
    # Slowed to 2 MiB/s, so the big file is being written for seconds.
    return env.popen("--limit-download", "2048", "restore", "latest", "--to-dir", str(out), *extra)


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    (source / "deep").mkdir(parents=True)
    rng = random.Random(7)
    (source / "deep" / "big.bin").write_bytes(rng.randbytes(12 * 1024 * 1024))
    (source / "small.txt").write_bytes(b"small\n")
    return source


def test_a_killed_restore_leaves_no_part_of_a_new_file(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    source = _source(tmp_path)
    env.run("backup", "--path", str(source))
    out = tmp_path / "out"
    proc = _slow_restore(env, out)
    deadline = time.monotonic() + 120
    caught = False
    while proc.poll() is None and time.monotonic() < deadline:
        if _unnamed_open_in(proc.pid, out / "deep"):
            caught = True
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert caught, "the restore was not caught writing the big file"
    assert _leftovers(out) == []
    assert sorted(p.name for p in (out / "deep").iterdir()) == []
    rerun = env.run("restore", "latest", "--to-dir", str(out), "--json").json()
    assert rerun["failed"] == 0
    assert (out / "deep" / "big.bin").read_bytes() == (source / "deep" / "big.bin").read_bytes()
    assert (out / "small.txt").read_bytes() == b"small\n"


def test_a_rerun_of_a_killed_replacing_restore_removes_its_temporary_files(
    tmp_path: Path,
) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    source = _source(tmp_path)
    env.run("backup", "--path", str(source))
    out = tmp_path / "out"
    (out / "deep").mkdir(parents=True)
    (out / "deep" / "big.bin").write_bytes(b"an older version\n")
    proc = _slow_restore(env, out, "--on-conflict", "replace")
    deadline = time.monotonic() + 120
    while not _leftovers(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    left = _leftovers(out)
    assert [p.parent for p in left] == [out / "deep"], "the restore was not caught mid-write"
    assert (out / "deep" / "big.bin").read_bytes() == b"an older version\n"
    rerun = env.run("restore", "latest", "--to-dir", str(out), "--on-conflict", "replace")
    assert rerun.code == 0
    assert _leftovers(out) == []
    assert (out / "deep" / "big.bin").read_bytes() == (source / "deep" / "big.bin").read_bytes()
    assert (out / "small.txt").read_bytes() == b"small\n"


def test_leftovers_of_other_names_are_not_touched(tmp_path: Path) -> None:
    # Only temporaries tagged for what this restore writes are its own.
    env = new_env(tmp_path / "env")
    init(env)
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.txt").write_bytes(b"a\n")
    env.run("backup", "--path", str(source))
    out = tmp_path / "out"
    out.mkdir()
    foreign = out / ".coffer-restore-000000000000-abcdef"
    foreign.write_bytes(b"another restore's file")
    env.run("restore", "latest", "--to-dir", str(out))
    assert foreign.exists()
    assert (out / "a.txt").read_bytes() == b"a\n"
