"""The folder backup's stat-ahead helper: ``lstat`` every item of the trees
it is given, in the order the backup's walk will, so the walk finds the
inodes in the kernel's cache.

After a cold start, a rerun of a 100,000-file tree spent most of its time
waiting for ``lstat``, one inode read after the other (docs/performance.md,
"Reruns stat ahead"). Started by sources/folder/statahead.py as ``python -P
-m sources.folder.statwalker`` before the backup opens the repository, it
walks while the backup is still starting (imports, Argon2id) and keeps
ahead of the walk after. A separate process, not a thread: a thread waits
for the GIL after each ``lstat`` while the backup computes.

Its standard input is a socket over which it receives the descriptor of
each tree's root (``SCM_RIGHTS``, the directory the backup opened). It
reads no content and writes nothing; it never follows a symlink (``lstat``,
and ``O_NOFOLLOW | O_DIRECTORY`` to enter a folder, relative to its
parent's descriptor), and goes no deeper than MAX_DEPTH (only a hint: the
walk stats what this leaves). It has no key, an environment reduced to an
allow-list and no other descriptor of the backup's (store/pipeline/spawn.py).
It exits at the end of its socket: the backup closed it (done), or died
(``kill -9`` closes it too); it looks every CHECK_EVERY items. SIGINT is
ignored: the backup decides what a Ctrl-C does.

Imports only the standard library, and sources/folder/__init__.py loads the
backup lazily, so it starts in a few milliseconds.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import sys
from collections.abc import Callable

MAX_DEPTH = 64  # at most this many directory descriptors open
CHECK_EVERY = 256  # items between two looks at the socket
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Stopped(Exception):
    """The socket ended: stop walking."""


def walk(
    dir_fd: int, visit: Callable[[bytes, os.stat_result], None], check: Callable[[], None]
) -> None:
    """``lstat`` each item below ``dir_fd`` (names in byte order, each folder
    entered right after its own ``lstat``, as the backup walks), calling
    ``visit(path relative to dir_fd, result)``; ``check`` every CHECK_EVERY
    items may raise Stopped. Items that vanish or cannot be read are passed
    over. Does not close ``dir_fd``."""
    _walk(dir_fd, b"", visit, check, 0, [0])


def _walk(
    dir_fd: int,
    rel: bytes,
    visit: Callable[[bytes, os.stat_result], None],
    check: Callable[[], None],
    depth: int,
    count: list[int],
) -> None:
    try:
        with os.scandir(dir_fd) as scan:
            names = sorted(os.fsencode(entry.name) for entry in scan)
    except OSError:
        return
    for name in names:
        count[0] += 1
        if count[0] % CHECK_EVERY == 0:
            check()
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue
        path = rel + b"/" + name if rel else name
        visit(path, st)
        if not stat.S_ISDIR(st.st_mode) or depth + 1 >= MAX_DEPTH:
            continue
        try:
            sub_fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            continue  # swapped for a symlink or a file since: passed over
        try:
            _walk(sub_fd, path, visit, check, depth + 1, count)
        finally:
            os.close(sub_fd)


def _socket_check(sock: socket.socket) -> Callable[[], None]:
    def check() -> None:
        try:
            data = sock.recv(1, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError as exc:
            raise Stopped from exc
        # b"": the backup closed its end (done, or gone); anything else is
        # not ours to read (nothing is sent while a tree is walked).
        raise Stopped(f"socket ended ({len(data)} bytes)")

    return check


def _ignore(_path: bytes, _st: os.stat_result) -> None:
    """What the walk does with each result: nothing; the inode is now cached."""


def serve(sock: socket.socket) -> int:
    """Walk each root received on ``sock`` until it ends. Returns 0."""
    check = _socket_check(sock)
    try:
        while True:
            message, fds, _flags, _address = socket.recv_fds(sock, 1, 1)
            if not message:
                return 0
            for fd in fds:
                try:
                    walk(fd, _ignore, check)
                finally:
                    os.close(fd)
    except (Stopped, OSError):
        return 0


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sock = socket.socket(fileno=sys.stdin.fileno())
    except OSError:
        return 2  # not started by statahead.py: its standard input is no socket
    try:
        return serve(sock)
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
