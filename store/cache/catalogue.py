"""The per-owner LMDB store: item catalogue, item-ID map and run changes.

One LMDB environment per owner (FORMAT.md §10):

- ``catalogue``: path key -> encoded entry, exactly the tree of the snapshot
  named by ``meta[snapshot]`` (directories included, with their subtree IDs);
- ``ids``: item ID -> path key, for sources that learn of removals by ID;
- ``run`` / ``runids``: the changes of the run in progress since its last
  checkpoint (an empty value is a removal).

Everything here is a cache of the repository: when ``meta[snapshot]`` is not
the owner's newest snapshot, :meth:`rebuild` reloads it from the tree.
Writes to ``run`` are buffered in memory and flushed in batches.
Thread-safe (LMDB transactions per call, a lock around the buffer).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import lmdb

from store.cache.cachedir import MappedPages, open_lmdb, prefetch_file
from store.errors import IntegrityError
from store.format.codec import decode, encode
from store.format.paths import SEPARATOR
from store.format.tree import Entry, TreeReader
from store.ids import BlobId, SnapshotId

TOMBSTONE = b""
# lmdb's database handle type is private (lmdb._Database).
Database = Any
_BATCH = 2000


class OwnerStore:
    """One owner's LMDB environment."""

    MAP_SIZE = 1 << 36  # 64 GiB of address space per owner

    def __init__(self, path: Path) -> None:
        self.env = open_lmdb(path, map_size=self.MAP_SIZE, max_dbs=8)
        self.catalogue = self.env.open_db(b"catalogue")
        self.ids = self.env.open_db(b"ids")
        self.meta = self.env.open_db(b"meta")
        self.run = self.env.open_db(b"run")
        self.runids = self.env.open_db(b"runids")
        # Catalogue items this run reported unchanged one by one, and (after a
        # checkpoint) the items it added before it: what a full enumeration saw.
        self.seen = self.env.open_db(b"seen")
        # Item IDs the merge set, by path key (merge order), written into
        # ``ids`` once the merge's read transaction has ended (CatalogueWriter).
        self.newids = self.env.open_db(b"newids")
        self.pages = MappedPages(path / "data.mdb")
        self._data_file = path / "data.mdb"
        self._buffer: dict[bytes, bytes] = {}
        self._buffer_ids: dict[bytes, bytes] = {}
        self._buffer_seen: set[bytes] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.env.close()

    def prefetch(self) -> None:
        """Ask the kernel to read the whole file ahead (cachedir.prefetch_file).

        For a caller about to read (nearly) every entry, as a folder walk
        does with :meth:`children`: LMDB maps the file with readahead off, so
        a walk after a cold start faulted it in one 4 KiB page at a time, a
        random read each (docs/performance.md, "Reruns").
        """
        prefetch_file(self._data_file)

    # -- state ----------------------------------------------------------

    def snapshot_id(self) -> SnapshotId | None:
        with self.env.begin(db=self.meta) as txn:
            raw = txn.get(b"snapshot")
        return SnapshotId(bytes(raw)) if raw else None

    def verified(self) -> bytes | None:
        """The blob index generation (BlobIndex.generation) under which every blob
        the catalogue's snapshot names (chunks, tree pages, sync state) was known
        to be indexed; None if not known (never recorded, or the catalogue was
        rebuilt since)."""
        with self.env.begin(db=self.meta) as txn:
            raw = txn.get(b"verified")
        return bytes(raw) if raw else None

    def set_verified(self, generation: bytes) -> None:
        with self.env.begin(write=True, db=self.meta) as txn:
            txn.put(b"verified", generation)

    def get_catalogue(self, key: bytes) -> bytes | None:
        with self.env.begin(db=self.catalogue) as txn:
            raw = txn.get(key)
        return None if raw is None else bytes(raw)

    def current(self, key: bytes) -> bytes | None:
        """The entry at ``key`` as of now: run changes first, then the catalogue.

        None when there is no such item (or it was removed in this run).
        """
        with self._lock:
            buffered = self._buffer.get(key)
        if buffered is not None:
            return buffered or None
        with self.env.begin() as txn:
            raw = txn.get(key, db=self.run)
            if raw is not None:
                return bytes(raw) or None
            raw = txn.get(key, db=self.catalogue)
        return None if raw is None else bytes(raw)

    def lookup_id(self, item_id: str) -> bytes | None:
        """Path key of the item with this source ID (run first), or None."""
        raw_id = item_id.encode()
        with self._lock:
            buffered = self._buffer_ids.get(raw_id)
        if buffered is not None:
            return buffered
        with self.env.begin() as txn:
            raw = txn.get(raw_id, db=self.runids)
            if raw is None:
                raw = txn.get(raw_id, db=self.ids)
        if raw is None:
            return None
        key = bytes(raw)
        # The ID map may lag behind a removal in this run.
        return key if self.current(key) is not None else None

    # -- run changes ----------------------------------------------------

    def put_run(self, key: bytes, encoded: bytes, item_id: str | None) -> None:
        with self._lock:
            self._buffer[key] = encoded
            if item_id is not None:
                self._buffer_ids[item_id.encode()] = key
            full = len(self._buffer) >= _BATCH
        if full:
            self.flush_run()

    def remove_run(self, key: bytes) -> None:
        """Record a removal of ``key`` and drop run entries under it."""
        self.flush_run()
        prefix = key + SEPARATOR
        with self.env.begin(write=True, db=self.run) as txn:
            cursor = txn.cursor()
            if cursor.set_range(prefix):
                while cursor.key().startswith(prefix):
                    if not cursor.delete():
                        break
            txn.put(key, TOMBSTONE)

    def mark_seen(self, key: bytes) -> None:
        """Record that the run saw ``key`` unchanged (buffered like the changes)."""
        with self._lock:
            self._buffer_seen.add(key)
            full = len(self._buffer_seen) >= _BATCH
        if full:
            self.flush_run()

    def mark_seen_many(self, keys: Iterable[bytes]) -> None:
        """:meth:`mark_seen` for many keys at once (one lock, one size check)."""
        with self._lock:
            self._buffer_seen.update(keys)
            full = len(self._buffer_seen) >= _BATCH
        if full:
            self.flush_run()

    def flush_run(self) -> None:
        with self._lock:
            buffer, self._buffer = self._buffer, {}
            ids, self._buffer_ids = self._buffer_ids, {}
            seen, self._buffer_seen = self._buffer_seen, set()
        if not buffer and not ids and not seen:
            return
        with self.env.begin(write=True) as txn:
            for key, value in sorted(buffer.items()):
                txn.put(key, value, db=self.run)
            for raw_id, key in ids.items():
                txn.put(raw_id, key, db=self.runids)
            for key in sorted(seen):
                txn.put(key, b"", db=self.seen)
        self.pages.tick(len(buffer) + len(seen))

    def clear_run(self) -> None:
        """Forget a run's changes (at the start of a session: a dead run's leftovers)."""
        with self._lock:
            self._buffer.clear()
            self._buffer_ids.clear()
            self._buffer_seen.clear()
        with self.env.begin(write=True) as txn:
            txn.drop(self.run, delete=False)
            txn.drop(self.runids, delete=False)
            txn.drop(self.seen, delete=False)
            txn.drop(self.newids, delete=False)

    def run_has_under(self, key: bytes) -> bool:
        """True when the run changed ``key`` itself or anything below it."""
        with self.env.begin(db=self.run) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(key):
                return False
            found = bytes(cursor.key())
            return found == key or found.startswith(key + SEPARATOR)

    # -- rebuilding -----------------------------------------------------

    def rebuild(
        self, snapshot_id: SnapshotId | None, root: BlobId | None, reader: TreeReader
    ) -> None:
        """Reload the catalogue from a snapshot's tree (or empty it if None).

        Written in batches (a million items in one transaction would hold
        every dirty page in memory); the catalogue is marked current only at
        the end, so an interrupted rebuild is simply redone.
        """
        with self.env.begin(write=True) as txn:
            txn.delete(b"snapshot", db=self.meta)
            txn.delete(b"verified", db=self.meta)
            txn.drop(self.catalogue, delete=False)
            txn.drop(self.ids, delete=False)
            txn.drop(self.run, delete=False)
            txn.drop(self.runids, delete=False)
            txn.drop(self.seen, delete=False)
        with self._lock:
            self._buffer.clear()
            self._buffer_ids.clear()
            self._buffer_seen.clear()
        if root is not None:
            batch: list[tuple[bytes, Entry]] = []
            for key, entry in _walk(reader, root, b""):
                batch.append((key, entry))
                if len(batch) >= CatalogueWriter.BATCH:
                    self._write_rebuilt(batch)
                    batch = []
            self._write_rebuilt(batch)
        if snapshot_id is not None:
            with self.env.begin(write=True) as txn:
                txn.put(b"snapshot", snapshot_id, db=self.meta)

    def forget(self, keys: Iterable[bytes]) -> None:
        """Remove these entries (and their item IDs) from the catalogue, which then
        is no snapshot's tree: ``meta[snapshot]`` is removed in the same
        transaction, so a session that ends without committing leaves it to be
        rebuilt. Directories above them keep their old subtree IDs: the caller
        must not reuse those (merge.MergeInput.reuse_dirs). Directories above them
        lose their version too: a directory's version says that what it holds is
        stored whole, and a source that keeps a folder whose version is unchanged
        (a group conversation, whose threads were all forgotten, was kept empty)
        must read it again."""
        above: set[bytes] = set()
        with self.env.begin(write=True) as txn:
            txn.delete(b"snapshot", db=self.meta)
            for key in keys:
                raw = txn.get(key, db=self.catalogue)
                if raw is None:
                    continue
                item_id = decode(bytes(raw), "catalogue entry").get("i")
                txn.delete(key, db=self.catalogue)
                if item_id is not None and txn.get(str(item_id).encode(), db=self.ids) == key:
                    txn.delete(str(item_id).encode(), db=self.ids)
                while SEPARATOR in key:
                    key = key.rpartition(SEPARATOR)[0]
                    above.add(key)
            for key in above:
                raw = txn.get(key, db=self.catalogue)
                if raw is None:
                    continue
                fields = decode(bytes(raw), "catalogue entry")
                if isinstance(fields, dict) and fields.pop("v", None) is not None:
                    txn.put(key, encode(fields), db=self.catalogue)

    def _write_rebuilt(self, batch: list[tuple[bytes, Entry]]) -> None:
        with self.env.begin(write=True) as txn:
            for key, entry in batch:
                txn.put(key, entry.encode(), db=self.catalogue)
                if entry.item_id is not None:
                    txn.put(entry.item_id.encode(), key, db=self.ids)
        self.pages.tick(len(batch))

    def iter_catalogue(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key, encoded entry) under ``prefix`` in key order (a consistent view)."""
        with self.env.begin(db=self.catalogue) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(prefix):
                return
            for key, value in cursor:
                key = bytes(key)
                if prefix and not (key == prefix or key.startswith(prefix + SEPARATOR)):
                    break
                yield key, bytes(value)

    def children(self, key: bytes) -> dict[bytes, tuple[str, str | None]]:
        """Name -> (type, version) of the catalogue items directly under ``key``.

        Raises IntegrityError for an entry that is not a msgpack map.
        """
        prefix = key + SEPARATOR if key else b""
        start = len(prefix)
        out: dict[bytes, tuple[str, str | None]] = {}
        with self.env.begin(db=self.catalogue) as txn:
            cursor = txn.cursor()
            found = cursor.set_range(prefix) if prefix else cursor.first()
            while found:
                child = cursor.key()
                if not child.startswith(prefix):
                    break
                deeper = child.find(SEPARATOR, start)
                if deeper != -1:  # a deeper item: skip to the next sibling
                    found = cursor.set_range(child[:deeper] + b"\x01")
                    continue
                data = decode(cursor.value(), "catalogue entry")
                if not isinstance(data, dict):
                    raise IntegrityError("catalogue entry: malformed (not a map)")
                out[child[start:]] = (str(data.get("t")), data.get("v"))
                found = cursor.next()
        return out

    def count(self) -> int:
        with self.env.begin(db=self.catalogue) as txn:
            return int(txn.stat(self.catalogue)["entries"])


def _walk(reader: TreeReader, root: BlobId, prefix: bytes) -> Iterator[tuple[bytes, Entry]]:
    for entry in reader.entries(root):
        key = prefix + SEPARATOR + entry.name if prefix else entry.name
        yield key, entry
        if entry.is_dir and entry.subtree is not None:
            yield from _walk(reader, entry.subtree, key)


# Item IDs moved from ``newids`` to ``ids`` between two ticks of the mapped pages.
_MOVE_SLICE = 256


class CatalogueWriter:
    """Writes a new catalogue state in batches of bounded size.

    A single write transaction for a million changes would hold every dirty
    page in memory until it commits. Instead the catalogue is first marked
    stale (``meta[snapshot]`` removed, committed at once), updated in batches,
    and marked current again by :meth:`finish` once the snapshot is stored. A
    crash in between leaves a stale catalogue, which the next session rebuilds
    from the repository. Single-threaded (the session's lock is held).

    Item IDs are set in two steps (:meth:`set_id`, then :meth:`finish`): the
    merge reads the catalogue in one read transaction while this commits, and
    LMDB reuses no page freed after that reader began. IDs are random keys,
    so every batch of 4,096 written into ``ids`` during the merge dirtied
    about 4,000 pages that could not be reused: a first backup of a million
    items grew the owner's file to 3.7 GB for 250 MB of data
    (docs/performance.md, "One million items"). The merge now records them
    by path key (its own order: a few pages a batch), and :meth:`finish`
    moves them into ``ids`` after the merge's reader has ended, when each
    batch reuses the pages the ones before it freed.
    """

    # Small transactions: LMDB keeps every page a transaction dirtied in a
    # free list it never shrinks, and item IDs are random keys (one page each).
    BATCH = 4096

    def __init__(self, store: OwnerStore) -> None:
        self._store = store
        self._txn: lmdb.Transaction | None = None
        self._ops = 0
        with store.env.begin(write=True) as txn:
            txn.delete(b"snapshot", db=store.meta)

    def _current(self) -> lmdb.Transaction:
        if self._txn is None:
            self._txn = self._store.env.begin(write=True)
        return self._txn

    def _counted(self) -> None:
        self._ops += 1
        if self._ops >= self.BATCH and self._txn is not None:
            self._txn.commit()
            self._txn = None
            self._ops = 0
            self._store.pages.release()

    def put(self, key: bytes, value: bytes, db: Database) -> None:
        self._current().put(key, value, db=db)
        self._counted()

    def delete(self, key: bytes, db: Database) -> None:
        self._current().delete(key, db=db)
        self._counted()

    def set_id(self, key: bytes, raw_id: bytes) -> None:
        """Make ``raw_id`` name ``key`` in ``ids`` at :meth:`finish` (see the class docstring)."""
        self.put(key, raw_id, self._store.newids)

    def get(self, key: bytes, db: Database) -> bytes | None:
        raw = self._current().get(key, db=db)
        return None if raw is None else bytes(raw)

    def finish(self, snapshot_id: bytes, *, final: bool) -> None:
        """Mark the catalogue as the state of ``snapshot_id`` and end the run's changes.

        At a checkpoint the run goes on: what it added so far moves into the
        catalogue and counts as seen for a full enumeration's final commit.
        """
        store = self._store
        if not final:
            with store.env.begin(db=store.run) as rtxn:
                for key in rtxn.cursor().iternext(values=False):
                    self.put(bytes(key), b"", db=store.seen)
        self._move_new_ids()
        txn = self._current()
        txn.put(b"snapshot", snapshot_id, db=store.meta)
        txn.drop(store.run, delete=False)
        txn.drop(store.runids, delete=False)
        txn.drop(store.newids, delete=False)
        if final:
            txn.drop(store.seen, delete=False)
        txn.commit()
        self._txn = None

    def _move_new_ids(self) -> None:
        """``ids[raw_id] = key`` for each ``newids`` entry, in batches. Call
        only once no read transaction older than the merge's end is open."""
        store = self._store
        start = b""
        while True:
            # Read through the write transaction: it sees the merge's last,
            # uncommitted batch. The cursor is done with before the puts,
            # which may commit it.
            cursor = self._current().cursor(db=store.newids)
            batch: list[tuple[bytes, bytes]] = []
            if cursor.set_range(start):
                for key, raw_id in cursor:
                    batch.append((bytes(key), bytes(raw_id)))
                    if len(batch) >= _MOVE_SLICE:
                        break
            cursor.close()
            if not batch:
                return
            for key, raw_id in batch:
                self.put(raw_id, key, store.ids)
            # Random keys: each put maps a page of ``ids`` and its neighbours
            # (fault-around); let them go as the merge's puts do.
            store.pages.tick(len(batch))
            start = batch[-1][0] + b"\x00"  # the smallest key after the last one moved

    def abort(self) -> None:
        """Stop; the catalogue stays marked stale and is rebuilt next time."""
        if self._txn is not None:
            self._txn.abort()
            self._txn = None
