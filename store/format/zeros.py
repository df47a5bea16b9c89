"""One area of zeros for the whole process: to compare chunks with, to hand
out a sparse file's holes from and to grow a pack by.

It is calloc'd, so its pages are the kernel's shared zero page until
written (and nothing writes it: it is bytes): 8 MiB of address space, no
memory. Thread-safe (read-only).
"""

from __future__ import annotations

# The default largest chunk is 2 MiB; configured chunkers may cut up to 8 MiB.
ZEROS = bytes(8 * 1024 * 1024)
ZERO_VIEW = memoryview(ZEROS)


def is_zero(data: bytes | memoryview) -> bool:
    """True when ``data`` is non-empty and every byte of it is zero (a memcmp)."""
    if not data or data[0] or data[-1]:
        return False
    if len(data) <= len(ZEROS):
        # A memcmp; comparing a memoryview with == goes byte by byte (100x slower).
        return ZEROS.startswith(data)
    return bytes(data) == bytes(len(data))


def zeros(length: int) -> memoryview | bytes:
    """``length`` zero bytes, without allocating up to ``len(ZEROS)``."""
    return ZERO_VIEW[:length] if length <= len(ZEROS) else bytes(length)
