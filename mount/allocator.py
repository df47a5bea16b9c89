"""Keep the C allocator from returning chunk-sized buffers to the kernel.

Every chunk a mount reads passes through a few fresh buffers of its size (the
bytes read from the pack, the decrypted payload, the plaintext, the reply
joined from two chunks), 0.25 to 2 MiB each, allocated and freed by several
threads. With the thresholds every command sets (``cli.malloc``: a trim
threshold of 128 KiB, which also fixes glibc's mmap threshold at 128 KiB)
such sizes come from ``mmap`` or are trimmed off the top of a heap as soon as
they are freed, so every one of them comes back as fresh pages that the
kernel faults in and zeroes: a 512 MiB sequential read took 400,000 to
660,000 page faults, and the mount spent twice as much CPU in the kernel as in
Python (docs/performance.md, "Mount"). With a fixed mmap threshold above the
largest chunk and a trim threshold of 2 MiB, freed buffers are mostly reused
in place: the same read takes 90,000 to 100,000 faults and half the kernel
time (a trim threshold of 8 MiB cut faults to 50,000 but kept 4 MiB more
through a ``find`` of 100,000 items, which the 150 MiB bound could not spare).

The memory kept this way is bounded: what is free at the top of each heap,
below ``trim_bytes``, and at most ``arenas`` heaps (each thread otherwise gets
an arena of its own, up to eight per core).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("mount")

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

# Above the largest chunk (2 MiB, store.format.config) with its sealing overhead,
# and above the 1 MiB replies joined from two chunks.
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 2 * 1024 * 1024
ARENAS = 2


def keep_freed_buffers(
    mmap_threshold: int = MMAP_THRESHOLD_BYTES,
    trim_threshold: int = TRIM_THRESHOLD_BYTES,
    arenas: int = ARENAS,
) -> bool:
    """Tune the process's malloc (see the module docstring); True if it took.

    Process-wide and idempotent; call it once, early, in the process that
    serves the mount. False (and nothing changed) where the C library has no
    ``mallopt`` or refuses a value (not glibc): the mount works the same, only
    with more CPU per byte read. Never raises.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        log.debug("no mallopt in this C library; allocator left as it is")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = (
        (_M_ARENA_MAX, arenas),
        (_M_MMAP_THRESHOLD, mmap_threshold),
        (_M_TRIM_THRESHOLD, trim_threshold),
    )
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
