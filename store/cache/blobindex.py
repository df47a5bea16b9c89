"""The local blob index: blob ID -> where it is stored (an LMDB cache).

Built only from index objects already written to the repository, never from
packs still in flight, so a blob it knows is always durable in the repository.
Thread-safe and safe to share between processes (LMDB's own locking).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from store.cache.cachedir import MappedPages, open_lmdb, prefetch_file
from store.format.index import PackRecord
from store.ids import BlobId, IndexId, PackId

# pack id (32) | offset u32 | length u32 | raw length u32 | type u8 | epoch u32
_LOCATION = struct.Struct(">32sIIIBI")
# A backup reads the blob index ahead only up to this size: a rerun looks up
# a few hundred blobs at random (each a random read of its own when the
# cache is cold, about 1 s for a 1% rerun of 10,005 files on a loaded disk);
# past this size one sequential read of the whole index costs more than that.
PREFETCH_LIMIT = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Everything needed to read a blob: the pack, where in it, and the key epoch."""

    pack_id: PackId
    offset: int
    length: int
    raw_length: int
    type: int
    epoch: int

    def encode(self) -> bytes:
        return _LOCATION.pack(
            self.pack_id, self.offset, self.length, self.raw_length, self.type, self.epoch
        )

    @classmethod
    def decode(cls, raw: bytes) -> BlobLocation:
        pack_id, offset, length, raw_length, blob_type, epoch = _LOCATION.unpack(raw)
        return cls(PackId(pack_id), offset, length, raw_length, blob_type, epoch)


def _first(pair: tuple[bytes, bytes]) -> bytes:
    return pair[0]


class BlobIndex:
    """The ``blobs/`` LMDB environment of the cache."""

    # IDs per read transaction in lookup_many (each slice ticks the mapped pages).
    LOOKUP_SLICE = 256
    # lookup_many counts each ID towards releasing the mapped pages only in a
    # larger file: a smaller one costs at most its size mapped, and releasing
    # costs a re-fault of every page touched again (200,000 lookups: 0.52 s
    # never released, 0.93 s released every 256; docs/performance.md).
    SMALL_INDEX = 32 * 1024 * 1024
    MAP_SIZE = 1 << 38  # 256 GiB of address space, enough for ~5 billion blobs
    WRITE_BATCH = 4096

    def __init__(self, path: Path) -> None:
        # Durable: after an OS crash it must hold a state it once committed,
        # never stale pages (FORMAT.md §10); what it claims is then always
        # named by an index object that was written first, and
        # Repository._sync_index rebuilds it when one of those is gone.
        self._env = open_lmdb(path, map_size=self.MAP_SIZE, max_dbs=8, durable=True)
        self.pages = MappedPages(path / "data.mdb")
        self._data_file = path / "data.mdb"
        self._blobs = self._env.open_db(b"blobs")
        self._packs = self._env.open_db(b"packs")
        self._indexes = self._env.open_db(b"indexes")
        self.snapshots = self._env.open_db(b"snapshots")
        self._meta = self._env.open_db(b"meta")

    @property
    def env(self) -> object:
        return self._env

    def close(self) -> None:
        self._env.close()

    def prefetch(self, limit: int = PREFETCH_LIMIT) -> bool:
        """Start reading the index file ahead if it is at most ``limit`` bytes
        (cachedir.prefetch_file); True if asked."""
        return prefetch_file(self._data_file, limit=limit)

    def lookup(self, blob_id: bytes) -> BlobLocation | None:
        self.pages.tick()
        with self._env.begin(db=self._blobs, buffers=False) as txn:
            raw = txn.get(blob_id)
        return None if raw is None else BlobLocation.decode(raw)

    def lookup_many(self, blob_ids: Sequence[bytes]) -> list[BlobLocation | None]:
        """:meth:`lookup` of each, in order, in one read transaction (a
        restore's batch: a transaction per blob cost 1.5 s of 100,000).

        In an index larger than SMALL_INDEX, counts as one lookup per ID
        towards releasing the mapped pages: a restore of a million tiny items
        looks up thousands of IDs per batch, and counted as one per batch,
        the whole 170 MB index stayed mapped between releases
        (docs/performance.md, "One million items"). Looked up in slices of
        LOOKUP_SLICE, so a batch of 4,096 is released on the way too."""
        try:
            large = self._data_file.stat().st_size > self.SMALL_INDEX
        except OSError:
            large = True
        raws: list[bytes | None] = []
        for start in range(0, len(blob_ids), self.LOOKUP_SLICE):
            part = blob_ids[start : start + self.LOOKUP_SLICE]
            self.pages.tick(len(part) if large else 1)
            with self._env.begin(db=self._blobs, buffers=False) as txn:
                get = txn.get
                raws += [get(blob_id) for blob_id in part]
        return [None if raw is None else BlobLocation.decode(raw) for raw in raws]

    def contains(self, blob_id: bytes) -> bool:
        self.pages.tick()
        with self._env.begin(db=self._blobs) as txn:
            return txn.get(blob_id) is not None

    def merged_indexes(self) -> set[IndexId]:
        with self._env.begin(db=self._indexes) as txn:
            return {IndexId(bytes(key)) for key in txn.cursor().iternext(values=False)}

    def add_index(self, index_id: IndexId, packs: Iterable[PackRecord]) -> None:
        """Merge one index object (idempotent). Later copies of a blob win.

        The blobs go in in ID order (a stable sort, so a later copy still
        wins): blob IDs are random, and in arrival order each insert of a
        batch dirtied a leaf page of its own, so every durable commit wrote
        and synced about as many pages as it had entries (merging 50,000
        blobs wrote 475 MB for a 10 MB file). Sorted, a batch fills a few
        neighbouring leaves (10 MB written, a 4 MB file). Written in
        transactions of at most ``WRITE_BATCH`` entries: LMDB keeps every page
        a transaction ever dirtied in a free list it never returns, and a
        sorted batch of 4,096 dirties about 100 pages, fewer than the 512
        random inserts of the batches before. The index counts as merged
        only once its last entry is written.
        """
        pending: list[tuple[bytes, bytes, object]] = []
        blobs: list[tuple[bytes, bytes]] = []
        for record in packs:
            pending.append(
                (
                    record.pack_id,
                    bytes([record.kind]) + record.epoch.to_bytes(4, "big"),
                    self._packs,
                )
            )
            for entry in record.entries:
                location = BlobLocation(
                    record.pack_id,
                    entry.offset,
                    entry.length,
                    entry.raw_length,
                    entry.type,
                    record.epoch,
                )
                blobs.append((entry.blob_id, location.encode()))
        blobs.sort(key=_first)
        for blob_id, encoded in blobs:
            pending.append((blob_id, encoded, self._blobs))
            if len(pending) >= self.WRITE_BATCH:
                self._write(pending)
                pending = []
        pending.append((index_id, b"", self._indexes))
        self._write(pending)

    def _write(self, items: list[tuple[bytes, bytes, object]]) -> None:
        with self._env.begin(write=True) as txn:
            for key, value, db in items:
                txn.put(key, value, db=db)  # type: ignore[arg-type]
        self.pages.release()

    def clear(self) -> None:
        """Forget everything (before a rebuild), and start a new :meth:`generation`."""
        with self._env.begin(write=True) as txn:
            for db in (self._blobs, self._packs, self._indexes):
                txn.drop(db, delete=False)
            txn.put(b"generation", os.urandom(16), db=self._meta)

    def generation(self) -> bytes:
        """A token that changes whenever the index may have lost a blob it knew:
        each :meth:`clear` (an index object disappeared) draws a new random one, and
        so does a new environment when first asked (owners' catalogues record it, so
        a deleted ``blobs/`` beside kept ``owners/`` cannot match by chance; see
        OwnerStore.verified). Between two equal tokens the index only grew."""
        with self._env.begin(db=self._meta) as txn:
            raw = txn.get(b"generation")
        if raw is None:
            with self._env.begin(write=True, db=self._meta) as txn:
                raw = txn.get(b"generation")
                if raw is None:
                    raw = os.urandom(16)
                    txn.put(b"generation", raw)
        return bytes(raw)

    def iter_blobs(self) -> Iterator[tuple[BlobId, BlobLocation]]:
        with self._env.begin(db=self._blobs) as txn:
            for key, value in txn.cursor():
                yield BlobId(bytes(key)), BlobLocation.decode(bytes(value))

    def count(self) -> int:
        with self._env.begin(db=self._blobs) as txn:
            return int(txn.stat(self._blobs)["entries"])

    def known_packs(self) -> set[PackId]:
        with self._env.begin(db=self._packs) as txn:
            return {PackId(bytes(k)) for k in txn.cursor().iternext(values=False)}
