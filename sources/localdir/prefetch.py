"""Loading a restore's chunks ahead of the threads that write them.

Items are restored in batches whose chunks are read in bulk first (one read
per pack, not per chunk: what matters on an object store). The bulk reads run
in background threads, one batch ahead: while the writers write a batch, the
next one is read, decrypted and decompressed (AES-GCM, zstd and BLAKE3 are C
code; zstd and BLAKE3 release the GIL). The restore reads through a chunk
cache of its own (CACHE_BYTES): two batches and the windows of the large
file being written stay below it (the restore's threads write one large
file at a time, and each window once written is evicted first), so nothing
is evicted before it is written, and the process holds no more than it is
about to write.

From a local repository every load runs in the calling thread instead
(``Prefetcher(reader, threads=0)``, chosen by sources/localdir/restore.py):
a read there is a system call, not a request to wait for, and the threads
cost more than they overlapped (docs/performance.md, "Restore in one thread").
Then nothing is loaded ahead, since nothing could overlap the load: a
batch is loaded when it is about to be written, and the cache holds one
batch and a large file's two windows (SERIAL_CACHE_BYTES), 16 MiB less at
the restore's peak (docs/performance.md, "A restore's memory").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from store import BlobId, Entry, SnapshotReader

BATCH_BYTES = 8 * 1024 * 1024
BATCH_ITEMS = 4096
# The restore's own chunk cache: a batch being written, the next one loaded,
# and large files' windows (content.WINDOW, two per file being written).
CACHE_BYTES = 32 * 1024 * 1024
# The same when loads run in the calling thread: one batch, two windows.
SERIAL_CACHE_BYTES = 16 * 1024 * 1024
# A file larger than this goes alone and loads itself a window at a time
# (sources/localdir/content.py), so it never evicts chunks loaded for others.
LARGE = BATCH_BYTES // 2

T = TypeVar("T")
U = TypeVar("U")


def run_now(fn: Callable[..., U], *args: object) -> Future[U]:
    """Call ``fn`` in this thread and hand back a finished future, holding its
    result or what it raised: the in-thread stand-in for ``executor.submit``."""
    done: Future[U] = Future()
    try:
        done.set_result(fn(*args))
    except BaseException as exc:  # delivered by result(), as a thread's would be
        done.set_exception(exc)
    return done


class Prefetcher:
    """Bulk chunk loads in background threads, or in the calling thread
    (``threads=0``: each load is done when it is asked for). Thread-safe.

    Errors of a load are not raised by its future (ChunkCache.prefetch drops
    them): the chunk's own read reports them when it is written.
    """

    THREADS = 2  # a batch ahead, and a large file's next window beside it

    def __init__(self, reader: SnapshotReader, threads: int = THREADS) -> None:
        self._reader = reader
        # Asked before each batch is loaded: True loads it undecoded
        # (ChunkCache.prefetch with decoded=False), for the restore's writer
        # process to decode (sources/localdir/restore.py, _Offload).
        self.undecoded: Callable[[], bool] = lambda: False
        self._pool = (
            ThreadPoolExecutor(threads, thread_name_prefix="coffer-prefetch") if threads else None
        )

    @property
    def background(self) -> bool:
        """True when loads run in threads of their own (they can run ahead)."""
        return self._pool is not None

    def chunks(self, blob_ids: list[BlobId]) -> Future[None]:
        """Start loading these chunks; the future is done when they are cached."""
        return self._run(self._reader.chunks.prefetch, blob_ids)

    def entries(self, entries: list[Entry]) -> Future[None]:
        """Start loading the chunks of these file entries (undecoded when
        :attr:`undecoded` says so)."""
        decoded = not self.undecoded()
        return self._run(lambda batch: self._reader.prefetch(batch, decoded=decoded), entries)

    def _run(self, load: Callable[[list[T]], None], items: list[T]) -> Future[None]:
        if self._pool is not None:
            return self._pool.submit(load, items)
        return run_now(load, items)

    def close(self) -> None:
        """Drop loads not started, wait for the running ones. Idempotent."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def batched(items: Iterator[tuple[T, Entry]], prefetcher: Prefetcher) -> Iterator[T]:
    """The items (each paired with its entry) in the same order, each batch's
    chunks loaded before it is yielded, the next batch loading meanwhile
    when the prefetcher loads in the background (in the calling thread a
    load ahead would only hold a second batch in the cache).

    A file larger than LARGE ends the batch before it and goes alone, with no
    load of its own here (it loads itself by windows).
    """
    ahead = 1 if prefetcher.background else 0
    ready: deque[tuple[list[T], Future[None] | None]] = deque()
    batch: list[T] = []
    entries: list[Entry] = []
    size = 0

    def close_batch() -> None:
        nonlocal batch, entries, size
        if batch:
            ready.append((batch, prefetcher.entries(entries)))
        batch, entries, size = [], [], 0

    def release(keep: int) -> Iterator[T]:
        # Yield the oldest batches while more than ``keep`` are loading.
        while len(ready) > keep:
            done, future = ready.popleft()
            if future is not None:
                future.result()
            yield from done

    for item, entry in items:
        if entry.is_file and entry.size > LARGE:
            close_batch()
            ready.append(([item], None))
            yield from release(ahead)
            continue
        batch.append(item)
        if entry.is_file:
            entries.append(entry)
            size += entry.size
        if size >= BATCH_BYTES or len(batch) >= BATCH_ITEMS:
            close_batch()
            yield from release(ahead)
    close_batch()
    yield from release(0)
