"""A large restore from a local repository writes through a writer process
(sources/localdir/offload.py, writer.py): the same tree, owners, set-ID
rules, holes and times as the restore's own thread, and nothing left behind
when either process dies."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sources.errors import RestoreWriterFailed
from sources.folder import backup_folder
from sources.localdir import restore_to_dir
from sources.localdir.content import window_ids, windows
from sources.localdir.offload import RING_BYTES
from sources.localdir.prefetch import LARGE
from sources.localdir.restore import TEMP_PREFIX, _Offload
from store import BackupRun, Repository, Snapshot
from store.ids import PACK_KIND_FOR_TYPE
from store.names import pack_name
from tests.cli.support.helpers import (
    all_helpers,
    assert_no_secrets_reach,
    helpers_of,
    new_env,
    reaped,
    small_disk,
    tree_state,
    wait_for,
)
from tests.store.support.helpers import make_repo

USER, GROUP = 1234, 2345  # ids no account on this machine has
WRITER = "sources.localdir.writer"
MANY = _Offload.START_AFTER + 400  # enough that the writer starts


def _writers_of(pid: int) -> list[int]:
    return helpers_of(pid, WRITER)


def _all_writers() -> list[int]:
    return all_helpers(WRITER)


def _home(root: Path, files: int = MANY, *, large: bool = True, largest: int = 6000) -> Path:
    """Mail-like files in nested folders, with what a restore must keep:
    owners, set-ID bits, a read-only folder, holes, empty and zero files,
    links, a large file, and times on everything."""
    rng = random.Random(7)
    home = root / "home"
    for number in range(files):
        folder = home / f"box{number % 7}" / f"sub{number % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{number:05d}.eml").write_bytes(rng.randbytes(rng.randrange(0, largest)))
    special = home / "box0" / "special"
    special.mkdir()
    (special / "empty").write_bytes(b"")
    (special / "zeros").write_bytes(bytes(300_000))
    (special / "sparse").write_bytes(bytes(200_000) + b"data" + bytes(300_000))
    if large:  # written by the restore's thread
        (special / "large.bin").write_bytes(rng.randbytes(LARGE + 100_000))
    (special / "link").symlink_to("empty")
    for name, mode in (("suid", 0o4755), ("sgid", 0o2750), ("private", 0o600)):
        path = special / name
        path.write_bytes(name.encode() * 100)
        os.chown(path, USER, GROUP)
        path.chmod(mode)  # after chown, which clears set-ID bits
    os.chown(special, USER, GROUP)
    special.chmod(0o2775)
    # After the first START_AFTER files: written by the writer, in parts.
    late = home / "box6"
    (late / "zz-large.bin").write_bytes(rng.randbytes(2 * LARGE + 12_345))
    (late / "zz-sparse.img").write_bytes(bytes(3 * LARGE) + rng.randbytes(70_000) + bytes(LARGE))
    (home / "box1" / "readonly").mkdir()
    (home / "box1" / "readonly" / "note").write_bytes(b"kept")
    (home / "box1" / "readonly").chmod(0o555)
    stamp = 1_600_000_000_000_000_000
    for index, path in enumerate(sorted(home.rglob("*"), reverse=True)):
        os.utime(path, ns=(stamp + index, stamp + index), follow_symlinks=False)
    os.utime(home, ns=(stamp, stamp))
    return home


def _owned(root: Path) -> dict[str, tuple[int, int, int]]:
    return {
        str(p.relative_to(root)): (
            p.lstat().st_uid,
            p.lstat().st_gid,
            stat.S_IMODE(p.lstat().st_mode),
        )
        for p in root.rglob("*")
    }


def _backup(tmp_path: Path, home: Path) -> tuple[Repository, Snapshot]:
    repo = make_repo(tmp_path / "repo")
    with BackupRun(repo) as run:
        result = backup_folder(run, home)
    assert not result.skipped
    return repo, result.snapshot


def _restore_watching(
    repo: Repository, snapshot: Snapshot, out: Path, **options: Any
) -> tuple[Any, set[int]]:
    writers: set[int] = set()

    def progress(_rel: str, _size: int) -> None:
        writers.update(_writers_of(os.getpid()))

    result = restore_to_dir(repo.reader(snapshot), out, progress=progress, **options)
    return result, writers


def test_a_large_restore_writes_through_a_writer_process(tmp_path: Path) -> None:
    home = _home(tmp_path)
    repo, snapshot = _backup(tmp_path, home)
    out = tmp_path / "out"
    result, writers = _restore_watching(repo, snapshot, out)
    assert not result.failures
    assert len(writers) == 1  # one writer, seen while the restore ran
    assert _writers_of(os.getpid()) == []  # and gone after it
    assert tree_state(out) == tree_state(home)
    assert _owned(out) == _owned(home)  # owners and set-ID bits, as root
    assert result.created == sum(1 for p in home.rglob("*") if not p.is_dir())
    assert result.bytes_written == sum(
        p.lstat().st_size for p in home.rglob("*") if p.is_file() and not p.is_symlink()
    )
    # Holes stay holes: the sparse and zero files take less than their size.
    for name in ("box0/special/zeros", "box0/special/sparse", "box6/zz-sparse.img"):
        restored = (out / name).stat()
        assert restored.st_blocks * 512 < restored.st_size / 4, name
    assert not list(out.rglob(TEMP_PREFIX.decode() + "*"))


def test_more_than_the_ring_holds_goes_round_it(tmp_path: Path) -> None:
    # About twice RING_BYTES of files: the restore waits for the writer to
    # free the ring and writes over what it has written, several times.
    home = _home(tmp_path, files=1400, largest=2 * RING_BYTES // 700)
    assert sum(p.stat().st_size for p in home.rglob("*.eml")) > 1.5 * RING_BYTES
    repo, snapshot = _backup(tmp_path, home)
    out = tmp_path / "out"
    result, writers = _restore_watching(repo, snapshot, out)
    assert writers
    assert not result.failures
    assert tree_state(out) == tree_state(home)


def test_a_small_restore_starts_no_writer(tmp_path: Path) -> None:
    home = _home(tmp_path, files=50)
    repo, snapshot = _backup(tmp_path, home)
    result, writers = _restore_watching(repo, snapshot, tmp_path / "out")
    assert not result.failures
    assert writers == set()
    assert tree_state(tmp_path / "out") == tree_state(home)


def test_without_owners_the_writer_strips_set_id_bits(tmp_path: Path) -> None:
    home = _home(tmp_path)
    repo, snapshot = _backup(tmp_path, home)
    out = tmp_path / "out"
    result, writers = _restore_watching(repo, snapshot, out, owners="none")
    assert writers
    assert not result.failures
    owned = _owned(out)
    assert owned["box0/special/suid"] == (0, 0, 0o755)
    assert owned["box0/special/sgid"] == (0, 0, 0o750)
    assert owned["box0/special"] == (0, 0, 0o775)


def test_a_rerun_over_a_writers_restore_writes_nothing(tmp_path: Path) -> None:
    home = _home(tmp_path)
    repo, snapshot = _backup(tmp_path, home)
    out = tmp_path / "out"
    restore_to_dir(repo.reader(snapshot), out)
    again, writers = _restore_watching(repo, snapshot, out)
    assert writers == set()  # no directory is new: nothing for a writer
    assert again.created == 0
    assert again.unchanged == sum(1 for p in home.rglob("*") if not p.is_dir())
    assert tree_state(out) == tree_state(home)


def test_a_killed_writer_stops_the_restore_in_one_line_and_a_rerun_finishes(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path, files=4000)
    repo, snapshot = _backup(tmp_path, home)
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_the_writer(_rel: str, _size: int) -> None:
        for pid in _writers_of(os.getpid()):
            if not killed:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    with pytest.raises(RestoreWriterFailed, match=r"writer process \d+ was killed by signal 9"):
        restore_to_dir(repo.reader(snapshot), out, progress=kill_the_writer)
    assert killed
    restore_to_dir(repo.reader(snapshot), out)
    assert tree_state(out) == tree_state(home)
    assert not list(out.rglob(TEMP_PREFIX.decode() + "*"))


def test_kill_9_of_a_restore_ends_its_writer_and_a_rerun_finishes(tmp_path: Path) -> None:
    home = _home(tmp_path, files=20_000)
    env = new_env(tmp_path / "env")
    env.run("init", "--kdf-memory", "8", "--kdf-iterations", "1")
    env.run("backup", "--path", str(home))
    out = tmp_path / "out"
    before = set(_all_writers())
    restore = subprocess.Popen(
        [sys.executable, "-m", "cli", "-q", "restore", "latest", "--to-dir", str(out)],
        env=env.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with reaped(restore):
        wait_for(lambda: bool(_writers_of(restore.pid)) or restore.poll() is not None)
        writer = _writers_of(restore.pid)
        assert writer, "the restore finished before a writer was seen"
        # Nothing secret reaches it: not in its environment, not in its arguments.
        assert_no_secrets_reach(writer[0], WRITER)
        wait_for(lambda: sum(1 for _ in out.rglob("*.eml")) > 2000)
        restore.send_signal(signal.SIGKILL)
        restore.wait()
    # The writer ends with the socket of the restore that died.
    wait_for(lambda: not (set(_all_writers()) - before), seconds=10)
    assert sum(1 for _ in out.rglob("*.eml")) < 20_000  # it was stopped midway
    env.run("restore", "latest", "--to-dir", str(out))
    assert tree_state(out) == tree_state(home)
    assert not list(out.rglob(TEMP_PREFIX.decode() + "*"))


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "tiny", "2m") as mount_point:
        yield mount_point


def test_a_full_target_stops_the_restore_in_one_line(tmp_path: Path, tiny_disk: Path) -> None:
    # 2 MiB hold the files written before the writer starts, not the rest:
    # the writer process is the one that finds the target full.
    home = _home(tmp_path, files=2000, large=False)
    env = new_env(tmp_path / "env")
    env.run("init", "--kdf-memory", "8", "--kdf-iterations", "1")
    env.run("backup", "--path", str(home))
    full = env.run("restore", "latest", "--to-dir", str(tiny_disk / "out"), check=False)
    assert full.code == 1, full.err
    assert "no space left" in full.err
    assert "Traceback" not in full.err
    assert len(full.err.strip().splitlines()) == 1
    assert not list((tiny_disk / "out").rglob(TEMP_PREFIX.decode() + "*"))


def test_a_large_file_that_cannot_be_read_is_abandoned_by_the_writer(tmp_path: Path) -> None:
    home = _home(tmp_path)
    repo, snapshot = _backup(tmp_path, home)
    entry = repo.reader(snapshot).stat("box6/zz-large.bin")
    assert len(windows(entry)) > 1
    # Damage a chunk of its last window: the first parts are already with
    # the writer when the restore finds out.
    damaged = window_ids(entry, windows(entry)[-1])[-1]
    location = repo.locate(damaged)
    pack = tmp_path / "repo" / pack_name(location.pack_id, PACK_KIND_FOR_TYPE[location.type])
    data = bytearray(pack.read_bytes())
    data[location.offset + 20] ^= 0xFF
    pack.write_bytes(bytes(data))
    out = tmp_path / "out"
    result, writers = _restore_watching(repo, snapshot, out)
    assert writers
    assert [(f.path, "authentication failed" in f.reason) for f in result.failures] == [
        ("box6/zz-large.bin", True)
    ]
    assert not (out / "box6" / "zz-large.bin").exists()
    assert not list(out.rglob(TEMP_PREFIX.decode() + "*"))
    expected = tree_state(home)
    del expected["box6/zz-large.bin"]
    # The abandoned file was never named (sources/localdir/unnamed.py), so
    # even its folder's time is as it was.
    assert tree_state(out) == expected
