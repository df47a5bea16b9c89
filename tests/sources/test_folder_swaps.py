"""A hostile owner of a backed-up folder swaps names under the backup's feet.

The backup runs as root over a tree someone else controls. These tests do the
swaps for real (threads renaming symlinks, FIFOs and directories over names in
a tight loop while the backup walks) and check what ended up in the snapshot:
never the content of what a symlink pointed at, never a hang, never a walk
outside the tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sources.folder import backup_folder
from sources.folder.backup import SWAPPED
from store import BackupRun, Repository, Snapshot
from tests.store.support.helpers import make_repo

SECRET = b"root-only secret content\n"
USER_DATA = b"the user's own file\n"


def _stored(repo: Repository, snapshot: Snapshot) -> dict[str, tuple[str, bytes]]:
    """path -> (type, content or link target) of everything in the snapshot."""
    reader = repo.reader(snapshot)
    out: dict[str, tuple[str, bytes]] = {}
    for path, entry in reader.walk():
        if entry.is_file:
            out[path] = ("f", reader.open(entry).read())
        elif entry.is_symlink:
            out[path] = ("l", entry.target or b"")
        else:
            out[path] = ("d", b"")
    return out


# The swapper runs in its own process (a thread would share the GIL with the
# backup and barely ever run inside its window) and swaps with one system call,
# renameat2(RENAME_EXCHANGE): each name in the tree trades places with its
# counterpart in the spare directory (a symlink, a FIFO) tens of thousands of
# times a second. It loops until told to stop and prints how many swaps it made.
_SWAPPER = """
import ctypes, os, sys
tree, spare, stop = sys.argv[1:4]
names = [n.encode() for n in sys.argv[4:]]
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
pairs = [(os.path.join(tree.encode(), n), os.path.join(spare.encode(), n)) for n in names]
i = 0
while not os.path.exists(stop):
    for a, b in pairs:
        if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
            raise OSError(ctypes.get_errno(), "renameat2")
        i += 1
print(i)
"""


@contextmanager
def _swapping(tree: Path, spare: Path, names: list[str]) -> Iterator[list[int]]:
    """Swap each of ``names`` between ``tree`` and ``spare`` (another process)
    while the body runs."""
    stop = spare.parent / "stop-swapping"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SWAPPER, str(tree), str(spare), str(stop), *names],
        stdout=subprocess.PIPE,
        text=True,
    )
    rounds = [0]
    try:
        time.sleep(0.2)
        yield rounds
    finally:
        stop.touch()
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        rounds[0] = int(out)


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    (secret / "shadow").write_bytes(SECRET)
    (secret / "shadow").chmod(0o600)
    return secret


def test_a_symlink_swapped_in_for_a_file_is_never_stored_as_its_target(tmp_path: Path) -> None:
    secret = _secret(tmp_path)
    tree, spare = tmp_path / "home", tmp_path / "spare"
    tree.mkdir()
    spare.mkdir()
    names = [f"file-{n:02d}" for n in range(40)]
    for name in names:
        (tree / name).write_bytes(USER_DATA)
        (spare / name).symlink_to(secret / "shadow")
    repo = make_repo(tmp_path / "repo")
    swaps_seen = backups = 0
    deadline = time.monotonic() + 60
    with _swapping(tree, spare, names) as rounds:
        # 25 backups, and more (within a minute) until a swap was caught
        # between an lstat and its open: on a loaded machine that can take a while.
        while backups < 25 or (swaps_seen == 0 and time.monotonic() < deadline):
            backups += 1
            with BackupRun(repo) as run:
                result = backup_folder(run, tree)
            reasons = {s.reason for s in result.skipped}
            assert reasons <= {SWAPPED}, reasons
            swaps_seen += len(result.skipped)
            for path, (kind, value) in _stored(repo, result.snapshot).items():
                assert value != SECRET, f"{path} was stored with the symlink target's content"
                if kind == "f":
                    assert value == USER_DATA
                elif kind == "l":
                    assert value == os.fsencode(secret / "shadow")
    assert rounds[0] > 1000, rounds  # the swapping really ran alongside
    assert swaps_seen > 0, backups  # and some swaps landed between the lstat and the open


def test_a_fifo_swapped_in_for_a_file_does_not_hang_the_backup(tmp_path: Path) -> None:
    tree, spare = tmp_path / "home", tmp_path / "spare"
    tree.mkdir()
    spare.mkdir()
    names = [f"file-{n:02d}" for n in range(40)]
    for name in names:
        (tree / name).write_bytes(USER_DATA)
        os.mkfifo(spare / name)
    repo = make_repo(tmp_path / "repo")
    outcome: list[object] = []

    def backups() -> None:
        try:
            for _ in range(25):
                with BackupRun(repo) as run:
                    outcome.append(backup_folder(run, tree))
        except BaseException as exc:
            outcome.append(exc)

    with _swapping(tree, spare, names) as rounds:
        worker = threading.Thread(target=backups, daemon=True)
        worker.start()
        worker.join(timeout=120)
    assert not worker.is_alive(), "the backup hung on a FIFO"
    assert len(outcome) == 25
    assert not [o for o in outcome if isinstance(o, BaseException)]
    assert rounds[0] > 1000


def test_a_directory_swapped_for_a_symlink_is_never_walked(tmp_path: Path) -> None:
    secret = _secret(tmp_path)
    tree, spare = tmp_path / "home", tmp_path / "spare"
    tree.mkdir()
    spare.mkdir()
    dirs = [f"dir-{n:02d}" for n in range(20)]
    for name in dirs:
        (tree / name).mkdir()
        (tree / name / "mine").write_bytes(USER_DATA)
        (spare / name).symlink_to(secret)

    repo = make_repo(tmp_path / "repo")
    with _swapping(tree, spare, dirs) as rounds:
        for _ in range(25):
            with BackupRun(repo) as run:
                result = backup_folder(run, tree)
            for path, (_kind, value) in _stored(repo, result.snapshot).items():
                assert not path.endswith("/shadow"), f"walked through a swapped link: {path}"
                assert value != SECRET
    assert rounds[0] > 1000


def test_a_planted_symlink_and_fifo_are_stored_as_what_they_are(tmp_path: Path) -> None:
    secret = _secret(tmp_path)
    tree = tmp_path / "home"
    tree.mkdir()
    (tree / "innocent").symlink_to(secret / "shadow")
    (tree / "dir-link").symlink_to(secret)
    os.mkfifo(tree / "pipe")
    (tree / "plain").write_bytes(USER_DATA)
    big = os.urandom(6 * 1024 * 1024)  # above the read-whole limit: streamed from its fd
    (tree / "big").write_bytes(big)
    repo = make_repo(tmp_path / "repo")
    started = time.monotonic()
    with BackupRun(repo) as run:
        result = backup_folder(run, tree)
    assert time.monotonic() - started < 30
    stored = _stored(repo, result.snapshot)
    assert stored == {
        "innocent": ("l", os.fsencode(secret / "shadow")),
        "dir-link": ("l", os.fsencode(secret)),
        "plain": ("f", USER_DATA),
        "big": ("f", big),
    }
    assert [(s.path, s.reason.split(":")[0]) for s in result.skipped] == [
        ("pipe", "special file (socket, FIFO or device)")
    ]
