"""A restore killed with SIGKILL leaves temporary files; rerunning it removes them."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

from tests.cli.support.helpers import init, new_env


def _leftovers(root: Path) -> list[Path]:
    return sorted(root.rglob(".coffer-restore-*")) if root.exists() else []


def test_a_rerun_of_a_killed_restore_removes_its_temporary_files(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    source = tmp_path / "source"
    (source / "deep").mkdir(parents=True)
    rng = random.Random(7)
    (source / "deep" / "big.bin").write_bytes(rng.randbytes(12 * 1024 * 1024))
    (source / "small.txt").write_bytes(b"small\n")
    env.run("backup", "--path", str(source))
    out = tmp_path / "out"
    # Slowed to 2 MiB/s, so the big file is being written for seconds.
    proc = env.popen("--limit-download", "2048", "restore", "latest", "--to-dir", str(out))
    deadline = time.monotonic() + 120
    while not _leftovers(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    left = _leftovers(out)
    assert [p.parent for p in left] == [out / "deep"], "the restore was not caught mid-write"
    rerun = env.run("restore", "latest", "--to-dir", str(out), "--json").json()
    assert rerun["failed"] == 0
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
