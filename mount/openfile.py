"""Open files: reading ranges from the chunk cache, and read-ahead.

restic's mount reads each chunk only when asked and caches 64 MiB; a
sequential reader then waits for every chunk in turn. Here a reader that reads
on from where it stopped gets the next ``window`` bytes of chunks loaded in
the background while it consumes the current one. Loads go through the shared
chunk cache, so a chunk is fetched once however many readers want it.

A read inside one chunk is answered with a view of the cached chunk (pyfuse3
takes any buffer), so the bytes are copied only into the kernel.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from store import BlobId, SnapshotItem

DEFAULT_READAHEAD_BYTES = 8 * 1024 * 1024
# A read this close to where the last one ended still counts as sequential:
# the kernel's read-ahead keeps several requests in flight, not always in order.
_SEQUENTIAL_SLACK = 4 * 1024 * 1024


class OpenFile:
    """One open file. Not thread-safe except :meth:`read`, which keeps no state."""

    __slots__ = ("_ids", "_scheduled", "_sizes", "_starts", "item", "next_offset", "size")

    def __init__(self, item: SnapshotItem) -> None:
        self.item = item
        self._ids = [chunk_id for chunk_id, _ in item.entry.chunks]
        self._sizes = [size for _, size in item.entry.chunks]
        self._starts: list[int] = []
        offset = 0
        for size in self._sizes:
            self._starts.append(offset)
            offset += size
        self.size = offset
        self.next_offset = 0  # where a sequential reader reads next
        self._scheduled = -1  # the last chunk read-ahead was asked for

    def _index(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset) - 1

    def chunks_for(self, offset: int, length: int) -> list[BlobId]:
        """The chunks holding bytes ``[offset, offset + length)`` (clipped to the file)."""
        end = min(offset + length, self.size)
        if offset >= end:
            return []
        return self._ids[self._index(offset) : self._index(end - 1) + 1]

    def read(self, get: Callable[[BlobId], bytes], offset: int, length: int) -> bytes | memoryview:
        """Up to ``length`` bytes at ``offset``; ``get`` returns a chunk's plaintext.

        Raises what ``get`` raises (IntegrityError, NotCached ...).
        """
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        first, last = self._index(offset), self._index(end - 1)
        parts: list[memoryview] = []
        for index in range(first, last + 1):
            start = self._starts[index]
            chunk = memoryview(get(self._ids[index]))
            parts.append(chunk[max(offset, start) - start : min(end, start + len(chunk)) - start])
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def note_read(self, offset: int, length: int) -> bool:
        """Record a read; True when it continued the previous ones (sequential)."""
        sequential = abs(offset - self.next_offset) <= _SEQUENTIAL_SLACK
        if sequential:
            self.next_offset = max(self.next_offset, offset + length)
        else:
            # A jump: what was read ahead before may be gone from the cache by now.
            self.next_offset = offset + length
            self._scheduled = self._index(min(offset, max(self.size - 1, 0))) - 1
        return sequential

    def ahead(self, offset: int, window: int) -> list[BlobId]:
        """Chunks from ``offset`` on, up to ``window`` bytes, not asked for before."""
        if offset >= self.size or window <= 0:
            return []
        index = self._index(offset)
        covered = 0
        out: list[BlobId] = []
        while index < len(self._ids) and covered < window:
            if index > self._scheduled:
                out.append(self._ids[index])
                self._scheduled = index
            covered += self._sizes[index]
            index += 1
        return out
