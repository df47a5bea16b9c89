"""Process-wide memory settings of the command line."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from typing import cast


def limit_malloc_arenas() -> None:
    """Keep glibc from giving each of the process's threads its own malloc arena.

    Called once by ``main``, for every command. A tenant backup runs dozens of
    threads passing megabyte buffers around, and a local restore writes with a
    few threads; with glibc's default (8 arenas per core) freed memory stays
    scattered over the arenas and the resident size grows (measured: 246 MB
    instead of 116 MB for one OneDrive with a 200 MB file). Must run before
    the threads start; does nothing on other C libraries.

    ``mallopt`` is taken from the symbols the interpreter already has loaded
    (``dlopen(NULL)``): ``ctypes.util.find_library`` would run ``ldconfig -p``
    in a child process on every start (0.1 to 0.4 s of a no-change backup).
    """
    mallopt = _mallopt()
    if mallopt is None:
        return
    mallopt(_M_ARENA_MAX, max(2, os.cpu_count() or 2))
    mallopt(_M_TRIM_THRESHOLD, 128 * 1024)


def keep_freed_memory() -> None:
    """Let glibc reuse freed buffers of up to a few MiB instead of handing
    them back to the kernel. Called by ``restore --to-dir``; does nothing on
    other C libraries.

    A restore allocates and frees a 1 MiB read buffer per range of a pack and
    a buffer per decoded chunk, all the time. With the trim threshold of
    :func:`limit_malloc_arenas` (128 KiB, which also freezes the mmap
    threshold at 128 KiB), each of them was a fresh mapping: a page fault per
    4 KiB on every reuse, 12% of a restore's CPU. With these settings a
    restore of 100,000 mails into a new ext4 took 18.6 to 19.2 s instead of
    21.8 to 22.5 s (system time 7.1 to 7.5 s instead of 10.2), its peak RSS
    118 MiB instead of 104 MiB (docs/performance.md, "Restore in one thread").
    """
    mallopt = _mallopt()
    if mallopt is None:
        return
    mallopt(_M_MMAP_THRESHOLD, 4 * 1024 * 1024)
    mallopt(_M_TRIM_THRESHOLD, 16 * 1024 * 1024)


# From <malloc.h>.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def _mallopt() -> Callable[[int, int], int] | None:
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    return cast("Callable[[int, int], int]", mallopt)
