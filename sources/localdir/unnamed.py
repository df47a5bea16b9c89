"""Unnamed files: written first, given their name once complete (``O_TMPFILE``).

A restore writes each new file without a name (``open(dir, O_TMPFILE)``),
gives it its content, owner, mode and times, and only then links it into
its directory under its final name (``linkat`` through ``/proc/self/fd``,
which open(2) documents for exactly this use, and which needs no
privilege). Against a temporary name renamed into place this is one
directory operation instead of two (a create and a rename, each a lookup
and an update of the directory): creating 20,000 small files took about a
quarter less system time (docs/performance.md, "Restore balance"). And a
restore killed half way leaves nothing behind: the kernel frees an unnamed
file when its descriptor closes.

The link never replaces anything: a name that exists (even a planted
symlink) fails with EEXIST. So only files of directories the restore
created use it (sources/localdir/restore.py and writer.py); replacing an
existing file still goes through a temporary name and ``rename``.

Filesystems or kernels without ``O_TMPFILE`` (EOPNOTSUPP, EISDIR on kernels
before 3.11, EINVAL), or a system without ``/proc``, make
:func:`open_unnamed` answer None, and the caller uses a temporary name.
Thread-safe: the fallback flag only ever goes from True to False.
"""

from __future__ import annotations

import errno
import os

_UNSUPPORTED = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)
# One flag for the process, in a list so that it changes without a global.
_supported = [hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")]


def open_unnamed(dir_fd: int) -> int | None:
    """A new, empty, unnamed file in ``dir_fd``, open for writing (mode 0600);
    None where the system or the directory's filesystem has none. Raises
    OSError for any other failure (no space, no permission)."""
    if not _supported[0]:
        return None
    try:
        return os.open(".", os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            _supported[0] = False  # not here: every later file takes a temporary name
            return None
        raise


def link_into_place(fd: int, dir_fd: int, name: bytes) -> None:
    """Give the unnamed file ``fd`` its ``name`` in ``dir_fd``. Raises
    FileExistsError when anything of that name is there (nothing is
    replaced), OSError otherwise."""
    os.link(b"/proc/self/fd/%d" % fd, name, dst_dir_fd=dir_fd, follow_symlinks=True)
