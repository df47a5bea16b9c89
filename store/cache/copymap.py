"""What a copy already knows: source IDs mapped to destination IDs (an LMDB cache).

Blob IDs are keyed per repository, so the same plaintext has different IDs in
the source and the destination of ``coffer copy``, and learning the
destination's ID takes reading and decrypting the blob. This store remembers
the answers, per (destination, source) pair, so copying the next snapshot
reads only what changed (FORMAT.md §10):

- ``blobs``: source blob ID -> destination blob ID. Always true (it is a
  function of the plaintext), so it is written as soon as it is learnt.
  Whether the destination still *holds* that blob is a separate question the
  copier asks the destination's index every time.
- ``dirs``: source directory (root page ID) -> destination directory, with
  the generation of the run that wrote it. A hit means the whole subtree is
  at the destination, so it is skipped without being read. That is only true
  while nothing has been removed from the destination since, so:

  * an entry is trusted only once the run that wrote it has *committed*
    (flushed everything, written its snapshots; a killed run's entries are
    purged by the next run);
  * if any index object of the destination that this map has seen is gone
    (prune, repair, ``check`` dropping damaged blobs all replace index
    objects), every directory entry is dropped.

- ``indexes``: the destination index objects seen; ``meta``: generations.

One copier per pair at a time on a machine: the map is ``flock``ed while in
use (a second copier raises RepositoryLocked). Not thread-safe: one copier
thread uses it.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from store.cache.cachedir import open_lmdb, private_dir
from store.errors import RepositoryLocked
from store.ids import BlobId, IndexId

_GEN = struct.Struct(">Q")
_FLUSH_EVERY = 4096
# lmdb's database handle type is private.
Database = Any


class CopyMap:
    """The ``copy/<source id>/`` LMDB environment in the destination's cache."""

    MAP_SIZE = 1 << 36  # address space, not disk

    def __init__(self, path: Path, label: str) -> None:
        private_dir(path.parent)
        self._lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise RepositoryLocked(f"another copy {label} is running on this machine") from None
        self._env = open_lmdb(path, map_size=self.MAP_SIZE, max_dbs=4)
        self._blobs: Database = self._env.open_db(b"blobs")
        self._dirs: Database = self._env.open_db(b"dirs")
        self._indexes: Database = self._env.open_db(b"indexes")
        self._meta: Database = self._env.open_db(b"meta")
        self._pending_blobs: dict[bytes, bytes] = {}
        self._pending_dirs: dict[bytes, bytes] = {}
        self._committed = 0
        self.generation = 0
        self.invalidated = False

    # -- generations ----------------------------------------------------

    def _get_meta(self, txn: Any, name: bytes) -> int:
        raw = txn.get(name, db=self._meta)
        return int(_GEN.unpack(bytes(raw))[0]) if raw is not None else 0

    def begin(self, dest_indexes: Iterable[IndexId]) -> None:
        """Start a run. ``dest_indexes`` are the destination's index objects now.

        Drops every directory entry if an index object seen before is gone,
        and the entries of runs that never committed.
        """
        listed = {bytes(index_id) for index_id in dest_indexes}
        with self._env.begin(write=True) as txn:
            known = {bytes(k) for k in txn.cursor(db=self._indexes).iternext(values=False)}
            committed = self._get_meta(txn, b"committed")
            started = self._get_meta(txn, b"started")
            if known - listed:
                # Something was removed from the destination: a remembered
                # subtree may have lost blobs. Forget all of them.
                txn.drop(self._dirs, delete=False)
                txn.drop(self._indexes, delete=False)
                committed = started
                txn.put(b"committed", _GEN.pack(committed), db=self._meta)
                self.invalidated = True
            elif started > committed:
                # A run was killed: its entries may name unflushed blobs.
                cursor = txn.cursor(db=self._dirs)
                stale = [
                    bytes(key)
                    for key, value in cursor
                    if _GEN.unpack(bytes(value)[32:])[0] > committed
                ]
                for key in stale:
                    txn.delete(key, db=self._dirs)
            for index_id in listed - known:
                txn.put(index_id, b"", db=self._indexes)
            self.generation = max(started, committed) + 1
            txn.put(b"started", _GEN.pack(self.generation), db=self._meta)
        self._committed = committed

    def commit(self, dest_indexes: Iterable[IndexId]) -> None:
        """Trust this run's directory entries (call after the run's last flush).

        ``dest_indexes`` are the destination's index objects now, so that a
        later removal of one written during this run is noticed too.
        """
        self.flush()
        with self._env.begin(write=True) as txn:
            for index_id in dest_indexes:
                txn.put(bytes(index_id), b"", db=self._indexes)
            txn.put(b"committed", _GEN.pack(self.generation), db=self._meta)
        self._committed = self.generation

    # -- lookups and updates --------------------------------------------

    def blob(self, source_id: BlobId) -> BlobId | None:
        """The destination ID of a source blob, if known."""
        hit = self._pending_blobs.get(source_id)
        if hit is None:
            with self._env.begin(db=self._blobs) as txn:
                raw = txn.get(source_id)
            if raw is None:
                return None
            hit = bytes(raw)
        return BlobId(hit)

    def put_blob(self, source_id: BlobId, dest_id: BlobId) -> None:
        self._pending_blobs[source_id] = dest_id
        if len(self._pending_blobs) >= _FLUSH_EVERY:
            self.flush()

    def directory(self, source_root: BlobId) -> BlobId | None:
        """The destination root of a source directory whose whole subtree is
        at the destination (trusted entries only), or None."""
        raw: bytes | None = self._pending_dirs.get(source_root)
        if raw is None:
            with self._env.begin(db=self._dirs) as txn:
                found = txn.get(source_root)
            if found is None:
                return None
            raw = bytes(found)
        (generation,) = _GEN.unpack(raw[32:])
        if generation <= self._committed or generation == self.generation:
            return BlobId(raw[:32])
        return None

    def put_directory(self, source_root: BlobId, dest_root: BlobId) -> None:
        self._pending_dirs[source_root] = dest_root + _GEN.pack(self.generation)
        if len(self._pending_dirs) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write buffered entries (directory entries stay untrusted until commit)."""
        if not self._pending_blobs and not self._pending_dirs:
            return
        with self._env.begin(write=True) as txn:
            for key, value in self._pending_blobs.items():
                txn.put(key, value, db=self._blobs)
            for key, value in self._pending_dirs.items():
                txn.put(key, value, db=self._dirs)
        self._pending_blobs.clear()
        self._pending_dirs.clear()

    def close(self) -> None:
        """Write what is buffered and release the lock (without committing)."""
        try:
            self.flush()
            self._env.close()
        finally:
            if self._lock_fd >= 0:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = -1


__all__ = ["CopyMap"]
