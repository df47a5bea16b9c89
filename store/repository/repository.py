"""A repository: a backend, its keys, its configuration and its local cache.

This is the engine's hub. It opens or creates repositories, reads blobs
(verifying every one), writes sealed objects, loads and saves snapshots, and
keeps the local blob index in step with the repository's index objects.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from store.backend import Backend, CachingBackend, reads_locally
from store.cache.blobindex import BlobIndex, BlobLocation
from store.cache.cachedir import default_cache_root, private_dir
from store.errors import (
    AlreadyExists,
    BlobMissing,
    IntegrityError,
    ObjectNotFound,
    RepositoryNotFound,
    SnapshotNotFound,
)
from store.format.config import RepoConfig, decode_config, read_header
from store.format.crypto import keyed_hash, seal, sealed_epoch, unseal
from store.format.index import IndexObject, PackRecord
from store.format.keys import KdfParams, Keyring, PrivateKey, new_password_slot
from store.format.pack import BlobEntry, open_blob
from store.format.snapshot import Snapshot, format_time
from store.format.tree import TreeReader
from store.ids import DATA, PACK_KIND_FOR_TYPE, TREE, BlobId, IndexId, SnapshotId, from_hex
from store.names import (
    CONFIG,
    INDEX,
    KEYSET,
    SNAPSHOTS,
    index_name,
    pack_name,
    reports_of,
    snapshot_name,
)
from store.pipeline.kdf import derive_apart
from store.repository.blobread import LOCAL_MAX_RANGE, MAX_RANGE, read_blobs
from store.repository.blobwriter import BlobWriter
from store.repository.keyopen import Anchor, unlock
from store.repository.keyset import Keyset
from store.repository.marks import find_marked_blob
from store.repository.reader import ChunkCache, ChunkCodec, ChunkPayload, SnapshotReader

log = logging.getLogger(__name__)


class Repository:
    """An open repository. Thread-safe for reading and for BlobWriter use."""

    def __init__(
        self,
        backend: Backend,
        config: RepoConfig,
        keyring: Keyring,
        slot_id: str,
        cache_root: Path | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self.keyring = keyring
        self.slot_id = slot_id  # the slot that opened it
        root = cache_root if cache_root is not None else default_cache_root()
        self.cache_dir = private_dir(root / config.repo_id)
        self._blob_index: BlobIndex | None = None
        self._index_synced = False
        self._index_lock = threading.RLock()
        self._sync_lock = threading.Lock()  # one _sync_index at a time
        # Index objects that failed to load (damaged): their blobs read as
        # missing until `coffer repair index` rebuilds them from the packs.
        self.damaged_indexes: dict[IndexId, str] = {}
        self._tree_reader: TreeReader | None = None
        self._chunk_cache: ChunkCache | None = None

    # -- opening --------------------------------------------------------

    @classmethod
    def init(
        cls,
        backend: Backend,
        password: bytes,
        *,
        kdf: KdfParams | None = None,
        cache_root: Path | None = None,
        config: RepoConfig | None = None,
    ) -> Repository:
        """Create a repository with one password slot. Raises AlreadyExists."""
        if backend.exists(CONFIG):
            raise AlreadyExists(f"a repository already exists at {backend.location}")
        if any(True for _ in backend.list("")):
            raise AlreadyExists(f"{backend.location} is not empty; refusing to create a repository")
        config = config or RepoConfig.new()
        keyring = Keyring.generate()
        slot = new_password_slot(config.repo_id, keyring, password, kdf=kdf, derive=derive_apart)
        # The slot first: a config without a slot would be a locked repository.
        backend.put(KEYSET, Keyset(keyring.current, [slot]).to_json())
        backend.put(CONFIG, config.encode(keyring))
        repo = cls(backend, config, keyring, slot.slot_id, cache_root)
        Anchor(slot.slot_id, keyring.fingerprint(), keyring.current, True).save(repo.cache_dir)
        return repo

    @classmethod
    def open(
        cls,
        backend: Backend,
        password: bytes | None = None,
        *,
        private_key: PrivateKey | None = None,
        cache_root: Path | None = None,
        key_id: str | None = None,
    ) -> Repository:
        """Open with a password (or an escrow private key).

        ``key_id`` (a slot ID or its first digits) names the slot to try
        first; without it the slot this host opened last goes first
        (store/repository/keyopen.py). Raises RepositoryNotFound, FormatTooNew,
        WrongPassword, KeySlotDamaged, IntegrityError.
        """
        try:
            raw = backend.get(CONFIG)
        except ObjectNotFound:
            raise RepositoryNotFound(f"no Coffer repository at {backend.location}") from None
        header = read_header(raw)
        root = cache_root if cache_root is not None else default_cache_root()
        unlocked = unlock(
            backend,
            header.repo_id,
            private_dir(root / header.repo_id),
            password=password,
            private_key=private_key,
            key_id=key_id,
        )
        config = decode_config(header, unlocked.keyring)
        return cls(backend, config, unlocked.keyring, unlocked.slot_id, cache_root)

    def read_storage(self) -> None:
        """From now on read the storage itself, past the local metadata cache.

        For check and repair (a cached copy must not vouch for the storage):
        reads of cached objects go to the storage and a cached copy that
        differs from it is dropped (store/backend/cache.py ``direct``).
        Writes still keep the cache in step. Idempotent.
        """
        if isinstance(self.backend, CachingBackend):
            self.backend = self.backend.direct()

    def close(self) -> None:
        if self._blob_index is not None:
            self._blob_index.close()
            self._blob_index = None
            self._index_synced = False
        self.backend.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def repo_id(self) -> str:
        return self.config.repo_id

    # -- sealed objects -------------------------------------------------

    def save_object(self, kind: str, key: str, plaintext: bytes) -> None:
        self.backend.put(key, self.seal_object(kind, key, plaintext))

    def seal_object(self, kind: str, key: str, plaintext: bytes) -> bytes:
        """The sealed bytes ``save_object`` would store (for conditional writes)."""
        kr = self.keyring
        return seal(kr.current, kr.current_key, kind, key, plaintext)

    def load_object(self, kind: str, key: str) -> bytes:
        """Read and open a sealed object. Raises ObjectNotFound, IntegrityError."""
        raw = self.backend.get(key)
        epoch = sealed_epoch(raw, key)
        return unseal(raw, self.keyring.epoch_key(epoch, key), kind, key)

    def object_id(self, plaintext: bytes) -> bytes:
        return keyed_hash(self.keyring.blob_id_key, plaintext)

    # -- the blob index -------------------------------------------------

    def _index_store(self) -> BlobIndex:
        """The cache's LMDB environment, opened but not necessarily up to date."""
        if self._blob_index is None:
            with self._index_lock:
                if self._blob_index is None:
                    self._blob_index = BlobIndex(self.cache_dir / "blobs")
        return self._blob_index

    @property
    def blob_index(self) -> BlobIndex:
        """The local blob index, brought up to date on first use.

        Listing snapshots does not need it (on a new machine, merging every
        index object takes time that `coffer snapshots` should not pay).
        """
        index = self._index_store()
        if not self._index_synced:
            with self._index_lock:
                if not self._index_synced:
                    self._sync_index(index)
                    self._index_synced = True
        return index

    def refresh_index(self) -> None:
        """Merge index objects written since we last looked (other processes)."""
        self._sync_index(self.blob_index)

    def _sync_index(self, index: BlobIndex) -> None:
        """Merge the index objects not merged yet; start over if one we merged is gone.

        One sync at a time per repository handle: threads that arrive while
        another syncs wait and then find (almost) nothing left to merge,
        instead of merging the same objects side by side.

        What was merged is read *before* the listing. Read after it, an index
        object written and merged meanwhile (by a thread of this process
        finishing a pack, or another process sharing the cache) was in
        ``merged`` but not in ``listed``, looked deleted, and cleared the
        whole cache, so every job of a busy worker re-merged every index
        object of the repository (the scale-out benchmark's setup time grew
        with the repository: 80 s per owner after 800 owners).
        """
        with self._sync_lock:
            merged = index.merged_indexes()
            listed = {
                IndexId(from_hex(info.key[len(INDEX) :])) for info in self.backend.list(INDEX)
            }
            if merged - listed:
                # Something we merged is gone (prune or repair replaced it): the
                # cache may point at deleted packs, so start over.
                index.clear()
            merged = index.merged_indexes()
            for index_id in listed - merged:
                try:
                    obj = self.load_index(index_id)
                except ObjectNotFound:
                    continue  # removed by a concurrent prune after we listed it
                except IntegrityError as exc:
                    # One damaged index must not make the whole repository
                    # unreadable: its blobs read as missing, the rest works.
                    self.damaged_indexes[index_id] = str(exc)
                    log.warning("%s (run `coffer repair index`)", exc)
                    continue
                index.add_index(index_id, obj.packs)

    def load_index(self, index_id: IndexId) -> IndexObject:
        key = index_name(index_id)
        plain = self.load_object("index", key)
        if self.object_id(plain) != index_id:
            raise IntegrityError(f"{key}: content does not match its name")
        return IndexObject.decode(plain, key)

    def write_index(
        self, records: list[PackRecord], supersedes: list[IndexId] | None = None
    ) -> IndexId:
        """Write an index object for uploaded packs and merge it locally."""
        obj = IndexObject(records, supersedes or [])
        plain = obj.encode()
        index_id = IndexId(self.object_id(plain))
        self.save_object("index", index_name(index_id), plain)
        self.blob_index.add_index(index_id, records)
        return index_id

    def list_index_ids(self) -> list[IndexId]:
        return [IndexId(from_hex(info.key[len(INDEX) :])) for info in self.backend.list(INDEX)]

    # -- blobs ----------------------------------------------------------

    def blob_writer(self, **options: int) -> BlobWriter:
        return BlobWriter(self, **options)

    def locate(self, blob_id: BlobId) -> BlobLocation:
        """Where a blob is. Raises BlobMissing when no index names it."""
        location = self.blob_index.lookup(blob_id)
        if location is None:
            # Another process may have written it since we synced.
            self.refresh_index()
            location = self.blob_index.lookup(blob_id)
        if location is None:
            # A pack prune has marked (not yet deleted) may hold it: a backup
            # that overlapped the mark can name it until the next prune revives it.
            location = find_marked_blob(self, blob_id)
        if location is None:
            raise BlobMissing(f"blob {blob_id.hex()} is not in any index")
        return location

    def locate_many(self, blob_ids: Sequence[BlobId]) -> list[BlobLocation]:
        """:meth:`locate` of each, in order; those the index has are read in
        one transaction. Raises BlobMissing like :meth:`locate`."""
        found = self.blob_index.lookup_many(blob_ids)
        return [
            self.locate(blob_id) if location is None else location
            for blob_id, location in zip(blob_ids, found, strict=True)
        ]

    def load_blob(self, blob_id: BlobId, expected_type: int | None = None) -> bytes:
        """The verified plaintext of a blob.

        Raises BlobMissing (not indexed, or its pack is gone) and
        IntegrityError (authentication, decompression or hash failure).
        """
        location = self.locate(blob_id)
        if expected_type is not None and location.type != expected_type:
            raise IntegrityError(
                f"blob {blob_id.hex()[:8]} has type {location.type}, expected {expected_type}"
            )
        kind = PACK_KIND_FOR_TYPE[location.type]
        key = pack_name(location.pack_id, kind)
        try:
            sealed = self.backend.get(key, location.offset, location.length)
        except ObjectNotFound:
            raise BlobMissing(
                f"pack {location.pack_id.hex()} holding blob {blob_id.hex()[:8]} is missing"
            ) from None
        what = f"blob {blob_id.hex()[:8]} in pack {location.pack_id.hex()}"
        if len(sealed) != location.length:
            raise IntegrityError(f"{what}: pack is truncated")
        entry = BlobEntry(
            location.type, blob_id, location.offset, location.length, location.raw_length
        )
        plain = open_blob(
            sealed, self.keyring.epoch_key(location.epoch, what), location.pack_id, entry, what
        )
        if keyed_hash(self.keyring.blob_id_key, plain) != blob_id:
            raise IntegrityError(f"{what}: content does not match its ID")
        return plain

    # -- snapshots ------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> Snapshot:
        """Write a snapshot (after its blobs are indexed) and return it with its ID."""
        plain = snapshot.encode()
        snapshot_id = SnapshotId(self.object_id(plain))
        self.save_object("snapshot", snapshot_name(snapshot_id), plain)
        stored = snapshot.with_id(snapshot_id)
        self._cache_snapshot(snapshot_id, plain)
        return stored

    def _cache_snapshot(self, snapshot_id: SnapshotId, plain: bytes) -> None:
        index = self._index_store()
        with index._env.begin(write=True, db=index.snapshots) as txn:
            txn.put(snapshot_id, plain)

    def load_snapshot(self, snapshot_id: SnapshotId) -> Snapshot:
        key = snapshot_name(snapshot_id)
        index = self._index_store()
        with index._env.begin(db=index.snapshots) as txn:
            cached = txn.get(snapshot_id)
        if cached is not None:
            return Snapshot.decode(bytes(cached), snapshot_id, key)
        try:
            plain = self.load_object("snapshot", key)
        except ObjectNotFound:
            raise SnapshotNotFound(f"snapshot {snapshot_id.hex()[:8]} does not exist") from None
        if self.object_id(plain) != snapshot_id:
            raise IntegrityError(f"{key}: content does not match its name")
        self._cache_snapshot(snapshot_id, plain)
        return Snapshot.decode(plain, snapshot_id, key)

    def list_snapshot_ids(self) -> list[SnapshotId]:
        return [
            SnapshotId(from_hex(info.key[len(SNAPSHOTS) :]))
            for info in self.backend.list(SNAPSHOTS)
        ]

    def list_snapshots(self) -> list[Snapshot]:
        """Every snapshot (checkpoints included), oldest first."""
        ids = self.list_snapshot_ids()
        snapshots = []
        for snapshot_id in ids:
            try:
                snapshots.append(self.load_snapshot(snapshot_id))
            except SnapshotNotFound:
                continue  # deleted between list and get
        self._forget_cached_snapshots(set(ids))
        return sorted(snapshots, key=lambda s: (s.time_ns, s.owner.identity, s.partial))

    def _forget_cached_snapshots(self, alive: set[SnapshotId]) -> None:
        index = self._index_store()
        with index._env.begin(write=True, db=index.snapshots) as txn:
            stale = [bytes(k) for k in txn.cursor().iternext(values=False) if bytes(k) not in alive]
            for key in stale:
                txn.delete(key)

    def delete_snapshot(self, snapshot_id: SnapshotId) -> None:
        self.backend.delete(snapshot_name(snapshot_id))
        index = self._index_store()
        with index._env.begin(write=True, db=index.snapshots) as txn:
            txn.delete(snapshot_id)

    # -- reading snapshots ----------------------------------------------

    @property
    def tree_reader(self) -> TreeReader:
        """The shared page cache for reading trees."""
        if self._tree_reader is None:
            self._tree_reader = TreeReader(lambda blob_id: self.load_blob(blob_id, TREE))
        return self._tree_reader

    @property
    def chunk_cache(self) -> ChunkCache:
        """The shared, bounded cache of decrypted chunks."""
        if self._chunk_cache is None:
            self._chunk_cache = ChunkCache(
                lambda blob_id: self.load_blob(blob_id, DATA),
                load_many=self._load_chunks,
                load_payloads=self._load_chunk_payloads,
                codec=ChunkCodec(self.keyring.blob_id_key),
            )
        return self._chunk_cache

    def _load_chunks(self, blob_ids: list[BlobId], threads: int) -> Iterator[tuple[BlobId, bytes]]:
        # Small ranges where reads are local: less memory in flight, no more cost.
        max_range = LOCAL_MAX_RANGE if reads_locally(self.backend) else MAX_RANGE
        for blob in read_blobs(
            self, blob_ids, workers=threads, payloads=False, max_range=max_range
        ):
            if blob.type == DATA:
                yield blob.blob_id, blob.plaintext

    def _load_chunk_payloads(
        self, blob_ids: list[BlobId], threads: int
    ) -> Iterator[tuple[BlobId, ChunkPayload]]:
        max_range = LOCAL_MAX_RANGE if reads_locally(self.backend) else MAX_RANGE
        for blob in read_blobs(self, blob_ids, workers=threads, max_range=max_range, decode=False):
            if blob.type == DATA:
                yield blob.blob_id, ChunkPayload(blob.payload, blob.raw_length)

    def reader(self, snapshot: Snapshot) -> SnapshotReader:
        """Browse and read one snapshot."""
        return SnapshotReader(
            snapshot,
            self.tree_reader,
            self.chunk_cache,
            reads_locally=reads_locally(self.backend),
        )

    # -- reports --------------------------------------------------------

    def save_report(self, kind: str, report: Mapping[str, object]) -> str:
        """Store a JSON report (backup run, restore, check) and return its key."""
        name = f"{reports_of(kind)}{format_time(time.time_ns())}-{secrets.token_hex(4)}"
        self.save_object("report", name, json.dumps(report, sort_keys=True).encode())
        return name

    def list_reports(self, kind: str) -> list[str]:
        """Keys of the stored reports of ``kind``, oldest first."""
        return sorted(info.key for info in self.backend.list(reports_of(kind)))

    def load_report(self, key: str) -> dict[str, Any]:
        """A stored report. Raises ObjectNotFound, IntegrityError."""
        report = json.loads(self.load_object("report", key))
        if not isinstance(report, dict):
            raise IntegrityError(f"{key}: not a report")
        return report
