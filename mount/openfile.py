"""Open files: where each chunk starts, and read-ahead for sequential readers.

restic's mount reads each chunk only when asked and caches 64 MiB; a
sequential reader then waits for every chunk in turn. Here a reader that reads
on from where it stopped gets the next ``window`` bytes of chunks loaded in
the background while it consumes the current one. Loads go through the shared
chunk cache, so a chunk is fetched once however many readers want it.
"""

from __future__ import annotations

import bisect

from store import BlobId, ItemReader, SnapshotItem

DEFAULT_READAHEAD_BYTES = 8 * 1024 * 1024


class OpenFile:
    """One open file. Not thread-safe: used from the trio thread only
    (``reader.pread`` itself may run in worker threads; it keeps no state)."""

    __slots__ = ("_ids", "_sizes", "_starts", "item", "next_offset", "reader", "size")

    def __init__(self, item: SnapshotItem, reader: ItemReader) -> None:
        self.item = item
        self.reader = reader
        self._ids = [chunk_id for chunk_id, _ in item.entry.chunks]
        self._sizes = [size for _, size in item.entry.chunks]
        self._starts: list[int] = []
        offset = 0
        for size in self._sizes:
            self._starts.append(offset)
            offset += size
        self.size = offset
        self.next_offset = 0  # where a sequential reader reads next

    def _index(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset) - 1

    def chunks_for(self, offset: int, length: int) -> list[BlobId]:
        """The chunks holding bytes ``[offset, offset + length)`` (clipped to the file)."""
        end = min(offset + length, self.size)
        if offset >= end:
            return []
        first, last = self._index(offset), self._index(end - 1)
        return self._ids[first : last + 1]

    def note_read(self, offset: int, length: int) -> bool:
        """Record a read; True when it continued the previous one (sequential)."""
        sequential = offset == self.next_offset
        self.next_offset = offset + length
        return sequential

    def ahead(self, offset: int, window: int) -> list[BlobId]:
        """The chunks from ``offset`` on, up to ``window`` bytes of them (at least one)."""
        if offset >= self.size or window <= 0:
            return []
        index = self._index(offset)
        out: list[BlobId] = []
        covered = 0
        while index < len(self._ids) and (covered < window or not out):
            out.append(self._ids[index])
            covered += self._sizes[index]
            index += 1
        return out
