"""Reading a sparse file without reading its holes.

A hole reads as zeros; the kernel produces them by zero-filling a page-cache
page for every 4 KiB of it, so reading a 1 GiB disk image holding 64 MiB of
data cost as much as reading 1 GiB. :class:`SparseReader` finds the data
(``lseek`` with ``SEEK_DATA`` and ``SEEK_HOLE``) and hands out the holes as
zeros from one shared buffer. The chunker sees exactly the bytes a plain
read gives, so chunk boundaries and blob IDs are the same (tested).
"""

from __future__ import annotations

import errno
import io
import os
import stat

from store.format.zeros import ZERO_VIEW

# Holes are handed out in pieces of at most this size (the chunker reads
# into a buffer of a few MiB and takes short reads).
HOLE_PIECE = 1 << 20


def is_sparse(st: os.stat_result) -> bool:
    """Whether a regular file has fewer blocks allocated than its size needs."""
    return stat.S_ISREG(st.st_mode) and st.st_blocks * 512 < st.st_size


class SparseReader(io.RawIOBase):
    """A readable stream over an open file descriptor, up to ``size`` bytes,
    that reads only the file's data extents. Does not close ``fd``.

    Holes and data are found from the position on; a file system without
    ``SEEK_DATA`` (EINVAL) is read as data throughout. The file is read up to
    the size it had when the caller looked (the caller checks afterwards
    whether it changed, as for any file). Not thread-safe.
    """

    def __init__(self, fd: int, size: int) -> None:
        super().__init__()
        self._fd = fd
        self._size = size
        self._pos = 0
        self._end = 0  # where the current extent (hole or data) ends
        self._hole = False
        self._seekable_holes = True

    def readable(self) -> bool:
        return True

    def _locate(self) -> None:
        pos = self._pos
        if not self._seekable_holes:
            self._hole, self._end = False, self._size
            return
        try:
            data = os.lseek(self._fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after pos: a hole to the end
                self._hole, self._end = True, self._size
                return
            if exc.errno == errno.EINVAL:  # no SEEK_DATA here: all data
                self._seekable_holes = False
                self._hole, self._end = False, self._size
                return
            raise
        if data > pos:
            self._hole, self._end = True, min(data, self._size)
        else:
            hole = os.lseek(self._fd, pos, os.SEEK_HOLE)
            self._hole, self._end = False, min(hole, self._size)

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if not len(view) or self._pos >= self._size:
            return 0
        if self._pos >= self._end:
            self._locate()
        count = min(len(view), self._end - self._pos)
        if self._hole:
            count = min(count, HOLE_PIECE)
            view[:count] = ZERO_VIEW[:count]
        else:
            count = os.preadv(self._fd, [view[:count]], self._pos)
            if count == 0:  # the file shrank under us: stop here
                self._size = self._pos
                return 0
        self._pos += count
        return count
