"""The read API for mount, ls and restore: browse a snapshot, stream its items.

:class:`SnapshotReader` resolves paths in a snapshot's tree and lists
directories page by page (never a whole snapshot in memory).
:class:`ItemReader` is a seekable, read-only file object over an item's chunks;
decrypted chunks go through a shared, bounded :class:`ChunkCache`.
"""

from __future__ import annotations

import bisect
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from store.errors import IntegrityError, PathNotFound, StoreError
from store.format.crypto import verified_plaintext
from store.format.paths import split_path
from store.format.snapshot import Snapshot
from store.format.tree import Entry, TreeReader
from store.ids import BlobId

# Loads many chunks at once (in any order), for prefetching: (blob IDs, read
# threads; 0 reads in the calling thread).
LoadMany = Callable[[list[BlobId], int], Iterator[tuple[BlobId, bytes]]]


@dataclass(frozen=True, slots=True)
class ChunkPayload:
    """A chunk decrypted and authenticated, not yet decoded: its payload (codec
    byte ‖ body, FORMAT.md §2) and the plaintext length the index records."""

    data: bytes
    raw_length: int


# The same bulk load stopped after authentication (the chunks' payloads).
LoadPayloads = Callable[[list[BlobId], int], Iterator[tuple[BlobId, ChunkPayload]]]


@dataclass(frozen=True, slots=True)
class ChunkCodec:
    """Turns a :class:`ChunkPayload` into its verified plaintext (decoded
    within its recorded length, re-hashed against its ID). Thread-safe.

    ``id_key`` is the repository's blob-ID key: what a helper process that
    decodes payloads itself needs (the restore's writer process gets it
    over its socket, never in argv or the environment; docs/security.md).
    """

    id_key: bytes

    def plaintext(self, blob_id: BlobId, payload: ChunkPayload) -> bytes:
        """Raises IntegrityError when the payload does not decode to the
        recorded length or its content is not ``blob_id``'s."""
        return verified_plaintext(
            self.id_key, blob_id, payload.data, payload.raw_length, f"chunk {blob_id.hex()[:8]}"
        )


# What one cached chunk costs besides its bytes: the bytes object's header,
# the blob ID and the ordered dict's node. Counting it keeps the bound true for
# tiny chunks: a million 45-byte items once held 280 MiB in a "64 MiB" cache.
_ENTRY_OVERHEAD = 256


def _held_bytes(data: bytes | ChunkPayload) -> int:
    """What a cached chunk's bytes count against the bound (a payload: its size)."""
    return len(data.data) if isinstance(data, ChunkPayload) else len(data)


class ChunkCache:
    """LRU cache of decrypted chunks, bounded in bytes (each chunk's size plus a
    fixed per-entry overhead, so the bound holds for tiny chunks). Thread-safe.

    Concurrent misses on the same chunk load it once (the others wait).
    ``load_many``, if given, serves :meth:`prefetch` (bulk reads by pack),
    on ``read_threads`` threads (0: in the calling thread).

    With ``load_payloads`` and ``codec``, :meth:`prefetch` can also stop
    after authentication (``decoded=False``): the cache then holds those
    chunks as :class:`ChunkPayload` (counted at their payload's size),
    :meth:`payload` hands them out as they are, and :meth:`get` decodes and
    verifies one the first time it is asked for its plaintext (keeping the
    plaintext instead).
    """

    def __init__(
        self,
        load: Callable[[BlobId], bytes],
        capacity: int = 64 * 1024 * 1024,
        load_many: LoadMany | None = None,
        read_threads: int = 4,
        *,
        load_payloads: LoadPayloads | None = None,
        codec: ChunkCodec | None = None,
    ) -> None:
        self._load = load
        self._load_many = load_many
        self._load_payloads = load_payloads if codec is not None else None
        self.codec = codec
        self._read_threads = read_threads
        self._capacity = capacity
        self._size = 0
        self._items: OrderedDict[BlobId, bytes | ChunkPayload] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[BlobId, threading.Event] = {}

    def get(self, blob_id: BlobId) -> bytes:
        """A chunk's verified plaintext (loaded if not cached). Raises
        StoreError (IntegrityError, BlobMissing) when it cannot be had."""
        while True:
            with self._lock:
                data = self._items.get(blob_id)
                if data is not None:
                    self._items.move_to_end(blob_id)
                    break
                event = self._loading.get(blob_id)
                mine = event is None
                if event is None:
                    event = self._loading[blob_id] = threading.Event()
            if mine:
                return self._load_missing(blob_id, event)
            event.wait()
        return data if isinstance(data, bytes) else self._decoded(blob_id, data)

    def _load_missing(self, blob_id: BlobId, event: threading.Event) -> bytes:
        # The one thread loading it; the others wait for ``event``.
        try:
            plain = self._load(blob_id)
            self._keep(blob_id, plain)
            return plain
        finally:
            with self._lock:
                del self._loading[blob_id]
            event.set()

    def payload(self, blob_id: BlobId) -> ChunkPayload | None:
        """The chunk as :meth:`prefetch` left it when that was not decoded;
        None when the cache holds its plaintext, or nothing."""
        with self._lock:
            data = self._items.get(blob_id)
            if isinstance(data, ChunkPayload):
                self._items.move_to_end(blob_id)
                return data
            return None

    def _decoded(self, blob_id: BlobId, payload: ChunkPayload) -> bytes:
        # Outside the lock (decompressing takes a while): two threads asking
        # at once both decode, and the first to finish is kept.
        if self.codec is None:
            raise AssertionError("payloads are cached only with a codec")  # cannot happen
        plain = self.codec.plaintext(blob_id, payload)
        with self._lock:
            if self._items.get(blob_id) is payload:
                self._items[blob_id] = plain
                self._size += len(plain) - len(payload.data)
                self._evict()
        return plain

    def _keep(self, blob_id: BlobId, data: bytes | ChunkPayload) -> None:
        size = _held_bytes(data)
        with self._lock:
            if blob_id not in self._items and size + _ENTRY_OVERHEAD <= self._capacity:
                self._items[blob_id] = data
                self._size += size + _ENTRY_OVERHEAD
                self._evict()

    def _evict(self) -> None:
        # With the lock held: the least recently used go until the bound holds.
        while self._size > self._capacity and self._items:
            _, evicted = self._items.popitem(last=False)
            self._size -= _held_bytes(evicted) + _ENTRY_OVERHEAD

    def prefetch(self, blob_ids: Iterable[BlobId], *, decoded: bool = True) -> None:
        """Load the chunks not yet cached in one bulk read (blocks until done).

        Meant for a batch well below the capacity that is read right after.
        Errors are not raised here: the chunk's own read reports them.
        ``decoded=False`` keeps the chunks as payloads (see the class
        docstring), where the cache has the loaders for it.
        """
        if not decoded and self._load_payloads is not None:
            self._prefetch(blob_ids, self._load_payloads)
        elif self._load_many is not None:
            self._prefetch(blob_ids, self._load_many)

    def _prefetch(
        self,
        blob_ids: Iterable[BlobId],
        load: Callable[[list[BlobId], int], Iterator[tuple[BlobId, bytes | ChunkPayload]]],
    ) -> None:
        wanted: list[BlobId] = []
        with self._lock:
            for b in dict.fromkeys(blob_ids):
                if b in self._items:
                    # Cached already (a chunk shared with an earlier batch):
                    # it is about to be read, so it is now the most recently
                    # used. Left where it was, the loads below would evict
                    # it first, and it would be fetched again on its own.
                    self._items.move_to_end(b)
                elif b not in self._loading:
                    wanted.append(b)
        if not wanted:
            return
        try:
            for blob_id, data in load(wanted, self._read_threads):
                self._keep(blob_id, data)
        except StoreError:
            return

    def demote(self, blob_ids: Iterable[BlobId]) -> None:
        """Make these chunks the first to be evicted (they were read and are
        not wanted again soon: a large file's window once written), so
        they do not push out chunks loaded for what is still to be read.
        Idempotent; chunks not cached are ignored."""
        with self._lock:
            for blob_id in blob_ids:
                if blob_id in self._items:
                    self._items.move_to_end(blob_id, last=False)

    def contains(self, blob_id: BlobId) -> bool:
        with self._lock:
            return blob_id in self._items

    def fresh(self, capacity: int, read_threads: int | None = None) -> ChunkCache:
        """An empty cache of its own over the same loaders, bounded to ``capacity``
        (bulk reads on ``read_threads`` threads; None keeps this cache's)."""
        threads = self._read_threads if read_threads is None else read_threads
        return ChunkCache(
            self._load,
            capacity,
            self._load_many,
            threads,
            load_payloads=self._load_payloads,
            codec=self.codec,
        )

    @property
    def size(self) -> int:
        return self._size


class ItemReader(io.RawIOBase):
    """A read-only, seekable file over an item's chunks.

    ``prefetch`` (optional) is called with the next chunk's ID when a read
    reaches a chunk, so a caller can warm the cache for sequential readers.
    Not thread-safe (one reader per open file); the cache it uses is.
    """

    def __init__(
        self,
        entry: Entry,
        cache: ChunkCache,
        prefetch: Callable[[BlobId], None] | None = None,
        read_ahead: int = 0,
    ) -> None:
        super().__init__()
        self.entry = entry
        self._cache = cache
        self._prefetch = prefetch
        self._read_ahead = read_ahead
        self._ids = [chunk_id for chunk_id, _ in entry.chunks]
        self._starts: list[int] = []
        offset = 0
        for _, size in entry.chunks:
            self._starts.append(offset)
            offset += size
        self._size = offset
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError("negative seek position")
        self._pos = target
        return self._pos

    def tell(self) -> int:
        return self._pos

    @property
    def size(self) -> int:
        return self._size

    def pread(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (no change to the position).

        Raises IntegrityError when a chunk's length differs from the size the
        tree records for it (and whatever loading the chunk raises).
        """
        if offset >= self._size or length <= 0:
            return b""
        end = min(offset + length, self._size)
        index = bisect.bisect_right(self._starts, offset) - 1
        parts: list[bytes] = []
        position = offset
        while position < end:
            if self._read_ahead and not self._cache.contains(self._ids[index]):
                self._bulk_ahead(index)
            chunk = self._cache.get(self._ids[index])
            start = self._starts[index]
            if len(chunk) != self.entry.chunks[index][1]:
                # The tree records each chunk's size; believing a wrong one
                # would return bytes of the wrong place (or run off the end).
                raise IntegrityError(
                    f"{self.entry.display_name}: chunk {index} is {len(chunk)} bytes, "
                    f"the tree says {self.entry.chunks[index][1]}"
                )
            parts.append(chunk[position - start : end - start])
            position = start + len(chunk)
            index += 1
        if self._prefetch is not None and index < len(self._ids):
            self._prefetch(self._ids[index])
        return b"".join(parts)

    def _bulk_ahead(self, index: int) -> None:
        """Load this chunk and the next ones, up to ``read_ahead`` bytes, in bulk."""
        wanted: list[BlobId] = []
        total = 0
        for chunk_id, size in self.entry.chunks[index:]:
            if wanted and total + size > self._read_ahead:
                break
            wanted.append(chunk_id)
            total += size
        self._cache.prefetch(wanted)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._pos
        data = self.pread(self._pos, size)
        self._pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class SnapshotReader:
    """Paths, listings and items of one snapshot. Thread-safe.

    ``reads_locally``: the repository is a local directory, where a read is a
    system call rather than a request (a restore then works in one thread,
    sources/localdir/restore.py).
    """

    def __init__(
        self,
        snapshot: Snapshot,
        tree_reader: TreeReader,
        chunk_cache: ChunkCache,
        *,
        reads_locally: bool = False,
    ) -> None:
        self.snapshot = snapshot
        self.reads_locally = reads_locally
        self.trees = tree_reader
        self.chunks = chunk_cache

    @property
    def root_entry(self) -> Entry:
        return Entry(
            name=b"",
            type="d",
            mode=0o755,
            mtime_ns=self.snapshot.time_ns,
            subtree=self.snapshot.tree,
        )

    def stat(self, path: str) -> Entry:
        """The entry at ``path`` ("" is the root). Raises PathNotFound."""
        if not path.strip("/"):
            return self.root_entry
        try:
            names = split_path(path)
        except ValueError:
            raise PathNotFound(f"{path}: no such item") from None
        entry = self.root_entry
        for depth, name in enumerate(names):
            if not entry.is_dir or entry.subtree is None:
                where = "/".join(n.decode(errors="replace") for n in names[:depth])
                raise PathNotFound(f"{where}: not a directory")
            found = self.trees.lookup(entry.subtree, name)
            if found is None:
                raise PathNotFound(f"{path}: no such item in snapshot {self.snapshot.short_id}")
            entry = found
        return entry

    def listdir(self, path: str = "", after: bytes | None = None) -> Iterator[Entry]:
        """Entries of the directory at ``path`` in name order (streamed)."""
        entry = self.stat(path)
        if not entry.is_dir or entry.subtree is None:
            raise PathNotFound(f"{path}: not a directory")
        return self.trees.entries(entry.subtree, after)

    def walk(self, path: str = "") -> Iterator[tuple[str, Entry]]:
        """(path, entry) of everything under ``path``, depth first, parents first."""
        base = path.strip("/")
        for entry in self.listdir(base):
            child = f"{base}/{entry.display_name}" if base else entry.display_name
            yield child, entry
            if entry.is_dir:
                yield from self.walk(child)

    def with_chunk_cache(self, capacity: int, *, read_threads: int | None = None) -> SnapshotReader:
        """The same snapshot with a chunk cache of its own of ``capacity`` bytes
        (a restore keeps only what it is about to write: less memory than the
        shared cache's 64 MiB), its bulk reads on ``read_threads`` threads (0:
        in the calling thread; None: as the shared cache)."""
        return SnapshotReader(
            self.snapshot,
            self.trees,
            self.chunks.fresh(capacity, read_threads),
            reads_locally=self.reads_locally,
        )

    def prefetch(self, entries: Iterable[Entry], *, decoded: bool = True) -> None:
        """Read the chunks of these file items in bulk, ahead of opening them.

        For restores: one read per pack instead of one per chunk, which is
        what matters on an object store. Keep the batch well below the chunk
        cache's capacity (64 MiB by default). ``decoded``: as
        :meth:`ChunkCache.prefetch`.
        """
        self.chunks.prefetch(
            (chunk for e in entries if e.is_file for chunk, _size in e.chunks), decoded=decoded
        )

    def open(
        self,
        path: str | Entry,
        prefetch: Callable[[BlobId], None] | None = None,
        *,
        read_ahead: int = 0,
    ) -> ItemReader:
        """A seekable reader of a file item. Raises PathNotFound for non-files.

        ``read_ahead`` (bytes): when a read reaches a chunk not cached, that
        chunk and the following ones up to this size are read in bulk (for
        sequential readers such as restore; keep it well below the cache).
        """
        entry = path if isinstance(path, Entry) else self.stat(path)
        if not entry.is_file:
            raise PathNotFound(f"{entry.display_name}: not a file")
        return ItemReader(entry, self.chunks, prefetch, read_ahead)
