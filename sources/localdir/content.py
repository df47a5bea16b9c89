"""Writing one restored file's content: chunks straight from the chunk cache.

Each chunk is written with ``os.pwrite`` at its offset, from the cached bytes
themselves (no copy into read-sized blocks). Zero bytes are not written: a
chunk of nothing but zeros is skipped, and in a chunk that begins or ends
with a zero byte every aligned 64 KiB block of zeros is skipped too (the
chunker cuts a sparse image's data together with the zeros around it); the
file is given its size once (``os.ftruncate``) and the skipped ranges stay
holes, as ``cp --sparse`` makes them. Reading a hole returns zeros, so the content is the
same byte for byte on any filesystem; where the filesystem has no holes it
stores the zeros itself. A VM image of 1 GiB holding 64 MiB of data is thus
restored by writing 64 MiB (docs/performance.md, issue 14).

A large file is read a window at a time, the next window loaded in the
background while this one is written (``prefetch`` is handed the window's
chunk IDs and returns when they are cached).

Chunks are checked as they were by ``ItemReader``: a chunk whose length is
not the one the tree records raises IntegrityError (loading a chunk verifies
its content against its ID, so a chunk that decrypts to other bytes raises
there).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future

from store import BlobId, ChunkCache, Entry, IntegrityError
from store.format.zeros import is_zero

# Zero runs inside a chunk are found a block at a time (a memcmp each, on a
# view of the chunk: no copy).
ZERO_BLOCK = 64 * 1024

# A large file is loaded this many bytes of chunks at a time (one bulk read
# per window: one request per pack on an object store), the next window
# while this one is written.
WINDOW = 4 * 1024 * 1024

Prefetch = Callable[[list[BlobId]], "Future[None]"]


def data_ranges(data: bytes | memoryview) -> list[tuple[int, int]]:
    """The (start, end) ranges of ``data`` to write, zero runs left out.

    An all-zero ``data`` gives none. A chunk that neither begins nor ends with
    a zero byte is one range (not scanned: text and compressed data rarely
    hold 64 KiB of zeros); otherwise every ZERO_BLOCK-aligned block of zeros
    is left out.
    """
    if not data:
        return []
    if data[0] and data[-1]:
        return [(0, len(data))]
    if is_zero(data):
        return []
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    view = memoryview(data)
    for block in range(0, len(data), ZERO_BLOCK):
        end = min(block + ZERO_BLOCK, len(data))
        zero = is_zero(view[block:end])
        if zero and start is not None:
            ranges.append((start, block))
            start = None
        elif not zero and start is None:
            start = block
    if start is not None:
        ranges.append((start, len(data)))
    return ranges


def windows(entry: Entry) -> list[tuple[int, int]]:
    """(first, end) chunk indexes of consecutive windows of about WINDOW bytes."""
    windows: list[tuple[int, int]] = []
    first, total = 0, 0
    for index, (_chunk, size) in enumerate(entry.chunks):
        if index > first and total + size > WINDOW:
            windows.append((first, index))
            first, total = index, 0
        total += size
    if first < len(entry.chunks):
        windows.append((first, len(entry.chunks)))
    return windows


def write_content(
    fd: int,
    entry: Entry,
    cache: ChunkCache,
    prefetch: Prefetch | None = None,
) -> int:
    """Write ``entry``'s content into the empty file ``fd``; its size in bytes.

    Zero runs become holes (the size counts them, as the file's content);
    the file ends up exactly the size of its chunks. ``prefetch`` (used for
    files of more than one window) loads a window's chunks in the
    background. Raises IntegrityError when a chunk's length is not the
    tree's, StoreError when a chunk cannot be loaded, OSError when writing
    fails. Not thread-safe per ``fd``.
    """
    parts = windows(entry)
    pending: Future[None] | None = None
    if prefetch is not None and len(parts) > 1:
        pending = prefetch(window_ids(entry, parts[0]))
    offset = 0
    holes = False
    for number, (first, end) in enumerate(parts):
        if pending is not None:
            pending.result()
            pending = None
            if prefetch is not None and number + 1 < len(parts):
                pending = prefetch(window_ids(entry, parts[number + 1]))
        for index in range(first, end):
            data = checked_chunk(entry, index, cache)
            size = len(data)
            ranges = data_ranges(data)
            if ranges == [(0, size)]:
                pwrite_all(fd, memoryview(data), offset)
            else:
                holes = True
                view = memoryview(data)
                for low, high in ranges:
                    pwrite_all(fd, view[low:high], offset + low)
            offset += size
        if len(parts) > 1:
            # Written: evicted first, before chunks loaded for other files
            # (a restore from an object store writes a batch of small files
            # beside a large one, and would fetch them again one by one).
            cache.demote(window_ids(entry, (first, end)))
    if holes:
        os.ftruncate(fd, offset)
    return offset


def checked_chunk(entry: Entry, index: int, cache: ChunkCache) -> bytes:
    """Chunk ``index`` of ``entry``, from the cache. Raises IntegrityError when
    its length is not the one the tree records, StoreError when it cannot be
    loaded."""
    chunk_id, size = entry.chunks[index]
    data = cache.get(chunk_id)
    if len(data) != size:
        # The tree records each chunk's size; believing a wrong one would
        # put bytes at the wrong place.
        raise IntegrityError(
            f"{entry.display_name}: chunk {index} is {len(data)} bytes, the tree says {size}"
        )
    return data


def part_data(
    entry: Entry, cache: ChunkCache, window: tuple[int, int], offset: int
) -> tuple[list[tuple[int, int]], list[memoryview], int]:
    """The data of the chunks ``window`` (first, end) of a file, the first at
    ``offset`` in it, as :func:`write_content` would write them: the (offset,
    length) ranges, zero runs left out, their bytes, and the offset after
    the last chunk. For the restore's writer process, which gets each file
    (or window of a large one) this way. Raises like :func:`checked_chunk`."""
    ranges: list[tuple[int, int]] = []
    views: list[memoryview] = []
    for index in range(*window):
        data = checked_chunk(entry, index, cache)
        view = memoryview(data)
        for low, high in data_ranges(data):
            ranges.append((offset + low, high - low))
            views.append(view[low:high])
        offset += len(data)
    return ranges, views, offset


def window_ids(entry: Entry, window: tuple[int, int]) -> list[BlobId]:
    """The chunk IDs of a window of ``entry`` (from :func:`windows`)."""
    return [chunk_id for chunk_id, _size in entry.chunks[window[0] : window[1]]]


def pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    """Write all of ``view`` at ``offset`` (``pwrite`` may write less). Raises OSError."""
    while view:
        done = os.pwrite(fd, view, offset)
        view = view[done:]
        offset += done
