"""The streaming write API for sources: runs, owner sessions, checkpoints.

A :class:`BackupRun` is one ``coffer backup``: it owns the blob writer shared
by every owner, the run ID and time, and the session marker that tells prune
a writer is alive. :meth:`BackupRun.owner` opens an :class:`OwnerSession`, the
only way sources write: add, skip (unchanged) or remove items by path, keep
sync state, and commit. Each owner's snapshot commits on its own, so one
failing owner never voids the others.

An item that becomes several files (a Teams thread's ``.json`` and its
``.html``, an event and its ``.ics`` and attachments) is written inside
:meth:`OwnerSession.group`: its additions, removals and "unchanged" marks are
applied together when the block ends, so a checkpoint (which a crash may make
the base of the next run) holds all of them or none.

Thread-safety: a session may be fed from several threads at once (content is
chunked, hashed and compressed outside its lock, by at most the run's
``store_slots`` threads at once); commit and checkpoints serialise with the
adders.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from store.backup.audit import BaseAudit, audit_base
from store.backup.merge import MergeCounts, MergeInput, merge
from store.backup.sink import ContentSink
from store.cache.catalogue import CatalogueWriter, OwnerStore
from store.cache.locks import OwnerLock
from store.errors import BlobMissing, SnapshotNotFound, StoreError
from store.format.chunker import Chunker
from store.format.codec import encode
from store.format.paths import SEPARATOR, path_key
from store.format.snapshot import Owner, Snapshot
from store.format.tree import DIRECTORY, FILE, SYMLINK, Entry, TreeReader
from store.ids import DATA, TREE, BlobId, SnapshotId
from store.names import SESSIONS
from store.pipeline.pool import WorkerPool
from store.repository.blobwriter import BlobWriter
from store.repository.repository import Repository

Content = bytes | BinaryIO | Path | Iterable[bytes] | ContentSink

log = logging.getLogger(__name__)

# Sync state is stored as tree blobs of at most this size each.
_SYNC_PIECE = 1 << 20
DEFAULT_CHECKPOINT_SECONDS = 300.0
_SESSION_REFRESH_SECONDS = 120.0
# Items whose content is cut, hashed and compressed at once, whatever the number
# of threads adding items (a tenant backup has dozens): each holds a chunker
# window and a few chunk copies (up to 10 MiB), so this bounds the run's memory,
# and the work is bound by the GIL and the cores anyway (docs/performance.md,
# "Microsoft 365 backup").
STORE_SLOTS = max(2, os.cpu_count() or 2)


@dataclass
class SessionStats:
    """Counters of one owner's run (stored in the snapshot's ``stats``)."""

    items_new: int = 0
    items_changed: int = 0
    items_unchanged: int = 0
    items_removed: int = 0
    bytes_read: int = 0
    checkpoints: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_map(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "items_new": self.items_new,
            "items_changed": self.items_changed,
            "items_unchanged": self.items_unchanged,
            "items_removed": self.items_removed,
            "bytes_read": self.bytes_read,
        }
        out.update(self.extra)
        return out


def symlink_version(target: bytes, mtime_ns: int) -> str:
    """The version key Coffer gives a symlink (its target and time)."""
    return f"l:{target.hex()}:{mtime_ns}"


def owner_dir_name(owner: Owner) -> str:
    from blake3 import blake3

    return blake3(owner.identity.encode()).hexdigest(length=8)


class BackupRun:
    """One backup run over one or more owners. Use as a context manager."""

    def __init__(
        self,
        repo: Repository,
        *,
        run_id: str | None = None,
        time_ns: int | None = None,
        checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS,
        writer: BlobWriter | None = None,
        store_slots: int = STORE_SLOTS,
        owner_snapshots: Callable[[Owner], list[Snapshot]] | None = None,
    ) -> None:
        """``store_slots``: how many items' content may be stored at once
        (threads beyond it wait their turn; see STORE_SLOTS). ``owner_snapshots``:
        where an owner's snapshots come from instead of a listing of the whole
        repository (``snapshots_of``): a cluster job is told its owner's by the
        run that enqueued it, so a job costs the same at 10 owners or 10,000."""
        self.repo = repo
        self._pool: WorkerPool[Any] | None = None
        self._pool_lock = threading.Lock()
        self.run_id = run_id or os.urandom(16).hex()
        self.time_ns = time_ns or time.time_ns()
        self.host = socket.gethostname()
        self.checkpoint_seconds = checkpoint_seconds
        self.writer = writer or repo.blob_writer()
        self.chunker = Chunker(repo.config.chunker, repo.keyring.chunker_seed)
        self.store_slots = threading.BoundedSemaphore(store_slots)
        # Downloads cut as they arrive, each holding a 4 MiB chunker window; more
        # large downloads at once spill to temporary files (store/backup/sink.py).
        self.sink_windows = threading.BoundedSemaphore(2 * store_slots)
        self.tree_reader = TreeReader(lambda blob_id: repo.load_blob(blob_id, TREE))
        self._session_key = f"{SESSIONS}{os.urandom(16).hex()}"
        self._stop = threading.Event()
        self._snapshots: list[Snapshot] | None = None
        self._snapshots_lock = threading.Lock()
        self._owner_snapshots = owner_snapshots
        self._write_marker()
        # Deduplicate only against the index as it is now that the marker exists:
        # prune may have swept packs an older view still names (store/maintenance/prune/pruning.py).
        repo.refresh_index()
        self._refresher = threading.Thread(target=self._refresh_marker, daemon=True)
        self._refresher.start()

    def _write_marker(self) -> None:
        now = time.time_ns()
        self.repo.save_object(
            "session",
            self._session_key,
            encode(
                {
                    "v": 1,
                    "host": self.host,
                    "pid": os.getpid(),
                    "started": self.time_ns,
                    "refreshed": now,
                    "run": self.run_id,
                }
            ),
        )

    def _refresh_marker(self) -> None:
        while not self._stop.wait(_SESSION_REFRESH_SECONDS):
            try:
                self._write_marker()
            except StoreError:
                continue  # the next refresh tries again; prune's grace period covers gaps

    def snapshots(self, *, refresh: bool = False) -> list[Snapshot]:
        """The repository's snapshots, listed once per run (refreshed on demand)."""
        with self._snapshots_lock:
            if self._snapshots is None or refresh:
                self._snapshots = self.repo.list_snapshots()
            return self._snapshots

    def snapshots_of(self, owner: Owner, *, refresh: bool = False) -> list[Snapshot]:
        """The owner's snapshots, checkpoints included: from ``owner_snapshots``
        when the run has it and ``refresh`` is false, else from the run's
        listing of the repository (refreshed when ``refresh``)."""
        if self._owner_snapshots is not None and not refresh:
            found = self._owner_snapshots(owner)
        else:
            found = self.snapshots(refresh=refresh)
        return [s for s in found if s.owner.identity == owner.identity]

    def owner(
        self,
        owner: Owner,
        *,
        source: dict[str, Any] | None = None,
        wait: float = 0.0,
        auto_checkpoint: bool = True,
    ) -> OwnerSession:
        """Open the session of one owner. Raises OwnerBusy if it is being backed up."""
        return OwnerSession(self, owner, source or {}, wait=wait, auto_checkpoint=auto_checkpoint)

    def content_sink(self, tmpdir: str | None = None) -> ContentSink:
        """A sink that stores content as a download writes it (store/backup/sink.py);
        pass it to :meth:`OwnerSession.add_item` as the content. Close it.
        ``tmpdir``: where content spills when no window is free."""
        return ContentSink(
            self.chunker, self.writer, self.store_slots, self.sink_windows, tmpdir=tmpdir
        )

    def worker_pool(self, workers: int) -> WorkerPool[Any]:
        """The run's worker processes (store/pipeline), started on first use.

        They read, chunk, hash and compress files; this process stores the
        chunks through the run's writer (deduplication stays here). The same
        pool serves every owner of the run and stops with it; ``workers`` counts
        only when it starts. Raises WorkerFailed if a worker cannot start.
        """
        with self._pool_lock:
            if self._pool is None:
                writer = self.writer
                self._pool = WorkerPool(
                    workers,
                    params=self.repo.config.chunker,
                    seed=self.repo.keyring.chunker_seed,
                    id_key=self.repo.keyring.blob_id_key,
                    level=self.repo.config.zstd_level,
                    store_chunk=lambda blob_id, raw, payload: writer.save_encoded(
                        DATA, blob_id, raw, payload
                    ),
                )
            return self._pool

    def worker_pids(self) -> list[int]:
        """The process IDs of the run's workers; empty if none were started."""
        with self._pool_lock:
            return self._pool.pids() if self._pool is not None else []

    def _close_pool(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def close(self) -> None:
        """Flush the writer, stop the marker and remove it."""
        self._stop.set()
        try:
            self._close_pool()
            self.writer.close(flush=True)
        finally:
            self._refresher.join(timeout=5)
            self.repo.backend.delete(self._session_key)

    def abort(self) -> None:
        """Stop without flushing (what is not committed is simply not referenced)."""
        self._stop.set()
        try:
            self._close_pool()
            self.writer.close(flush=False)
        finally:
            self.repo.backend.delete(self._session_key)

    def __enter__(self) -> BackupRun:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


@dataclass
class _Group:
    """The changes of one open item group: applied in order at its end."""

    ops: list[tuple[str, bytes, Entry | None, bool]] = field(default_factory=list)
    depth: int = 0


class OwnerSession:
    """Writes one owner's snapshot of this run. See the module docstring."""

    def __init__(
        self,
        run: BackupRun,
        owner: Owner,
        source: dict[str, Any],
        *,
        wait: float,
        auto_checkpoint: bool,
    ) -> None:
        self.run = run
        self.owner = owner
        self.source = source
        self.repo = run.repo
        self.stats = SessionStats()
        self._older_checkpoints: list[Snapshot] = []
        self._auto_checkpoint = auto_checkpoint
        # Set when the base names blobs in no index (see _check_base): a one-line
        # warning, also in the snapshot's stats ("base_reread") and the run report.
        self.base_warning: str | None = None
        self._base_lost = False
        self._rebuilt = False
        self._reuse_dirs = True
        owners_dir = self.repo.cache_dir / "owners"
        owners_dir.mkdir(mode=0o700, exist_ok=True)
        name = owner_dir_name(owner)
        self._lock_file = OwnerLock(owners_dir / f"{name}.lock", owner.name or owner.key, wait)
        try:
            self.store = OwnerStore(owners_dir / name)
            self.parent = self._find_parent()
            self._generation = self.repo.blob_index.generation()
            self._sync_catalogue()
            self.sync_state: bytes | None = self._check_base()
        except BaseException:
            self._lock_file.release()
            raise
        self._lock = threading.RLock()
        self._full_scopes: list[bytes] = []
        self._kept: list[bytes] = []
        self._checkpoints: list[Snapshot] = []
        self._last_checkpoint = time.monotonic()
        self._closed = False
        self._failed = False
        self._groups = threading.local()

    # -- setup ----------------------------------------------------------

    def _find_parent(self) -> Snapshot | None:
        mine = self.run.snapshots_of(self.owner)
        cached = self.store.snapshot_id()
        if cached is not None and self._newer_than(cached, mine):
            # Another process committed this owner after the run listed the
            # repository: look again so we build on the newest state.
            mine = self.run.snapshots_of(self.owner, refresh=True)
        self._older_checkpoints = [s for s in mine if s.partial]
        if not mine:
            return None
        # Newest first; at equal times a complete snapshot beats a checkpoint.
        return max(mine, key=lambda s: (s.time_ns, not s.partial))

    def _newer_than(self, cached: SnapshotId, mine: list[Snapshot]) -> bool:
        """Whether the snapshot the local catalogue holds is missing from ``mine``
        and may be newer than all of it (or is gone: then a fresh listing says
        what is there). An older one that is not in ``mine`` (a run that was told
        only its owner's latest snapshots) needs no listing."""
        if any(s.snapshot_id == cached for s in mine):
            return False
        try:
            held = self.repo.load_snapshot(cached)
        except SnapshotNotFound:
            return True
        return held.time_ns >= max((s.time_ns for s in mine), default=-1)

    def _sync_catalogue(self) -> None:
        wanted = self.parent.snapshot_id if self.parent else None
        if self.store.snapshot_id() != wanted or wanted is None:
            try:
                self.store.rebuild(
                    wanted, self.parent.tree if self.parent else None, self.run.tree_reader
                )
                self._rebuilt = True  # every page was just read: all are indexed
            except BlobMissing:
                # A tree page of the base is in no index: its items cannot even be
                # listed, so none is reused (_check_base says so).
                self.store.rebuild(None, None, self.run.tree_reader)
                self._base_lost = True
        else:
            self.store.clear_run()

    def _check_base(self) -> bytes | None:
        """Make sure the run reuses no blob of its base that no index has, and
        return the base's sync state (None when the source must enumerate all).

        The resume rules (FORMAT.md §10, "Resuming from a base"): files whose
        content names such a blob leave the catalogue (the source finds them
        missing and reads them again), no directory's old pages are reused until
        this session's first commit (writing them again stores the missing ones),
        and the sync state is dropped when items left or it names such a blob
        itself. The pages are written again also when the base is a checkpoint
        or the blob index lost entries since the catalogue was last verified
        (its generation changed): the audit sees no leaf page of a large
        directory. A complete base whose catalogue was verified in the index's
        current generation needs no audit: between equal generations the index
        only grew, and a commit names only verified or newly indexed blobs.
        Nothing here raises for missing blobs; what is missing is read again.
        """
        parent = self.parent
        if parent is None:
            return None
        verified = self.store.verified() == self._generation
        if parent.partial:
            self._reuse_dirs = False
        if self._base_lost:
            self.stats.extra["base_reread"] = "all"
            self._warn_base(
                parent,
                "has tree pages in no index: nothing of it is reused,"
                " every item is read again from the source",
            )
            return None
        if verified and not parent.partial:
            audit = BaseAudit()  # nothing it names can have left the index
        else:
            generation = self._generation
            audit = audit_base(self.repo, self.store, parent.sync)
            # The audit sees each directory's root page, not the leaves of a large
            # one: those are known indexed only if the pages were just read
            # (rebuilt) or verified, in the generation the index still has.
            self._generation = self.repo.blob_index.generation()
            if not (self._rebuilt or verified) or self._generation != generation:
                self._reuse_dirs = False
        sync_usable = not audit.sync
        if audit.items or audit.directories:
            self.store.forget(audit.items)
            self._reuse_dirs = False
            sync_usable = sync_usable and not audit.items
        if not audit.clean:
            self.stats.extra["base_reread"] = len(audit.items)
            self._warn_base(
                parent,
                f"names {len(audit.missing)} blobs in no index: they are not reused,"
                f" {len(audit.items)} items are read again from the source",
            )
        if not parent.sync or not sync_usable:
            return None
        try:
            return b"".join(self.repo.load_blob(blob_id, TREE) for blob_id in parent.sync)
        except BlobMissing:
            # Indexed, but its pack is gone: start the enumeration afresh.
            self._warn_base(parent, "has its sync state in a lost pack: every item is listed again")
            return None

    def _warn_base(self, parent: Snapshot, what: str) -> None:
        kind = "checkpoint" if parent.partial else "snapshot"
        self.base_warning = (
            f"{self.owner.path}: the {kind} {parent.short_id} this backup builds on {what}"
        )
        log.warning("%s", self.base_warning)

    # -- queries --------------------------------------------------------

    def entry(self, path: str) -> Entry | None:
        """The item at ``path`` as of now (this run's changes included)."""
        raw = self.store.current(path_key(path))
        return Entry.decode(raw) if raw else None

    def lookup_id(self, item_id: str) -> str | None:
        """The path of the item with this source ID, or None."""
        key = self.store.lookup_id(item_id)
        if key is None:
            return None
        return "/".join(os.fsdecode(n) for n in key.split(b"\x00"))

    # -- writing --------------------------------------------------------

    def full_scope(self, path: str = "") -> None:
        """Declare that everything under ``path`` is enumerated in this run.

        At commit, items under it that were neither added nor reported
        unchanged are removed (they are gone from the source).
        """
        key = path_key(path) if path.strip("/") else b""
        with self._lock:
            self._full_scopes.append(key)

    def children(self, path: str = "") -> dict[bytes, tuple[str, str | None]]:
        """Name -> (type, version) of the items directly in ``path``, as of the
        parent snapshot (this run's changes not included).

        Lets a source that enumerates whole folders compare a folder at once.
        """
        key = path_key(path) if path.strip("/") else b""
        return self.store.children(key)

    def prefetch(self) -> None:
        """Read ahead the caches a full walk uses: the parent snapshot's
        catalogue (:meth:`children` of every folder) and, when not too large,
        the blob index (what changed is looked up there). Only a hint to the
        kernel: after a cold start each would otherwise be read one random
        page at a time. Thread-safe."""
        self.store.prefetch()
        self.repo.blob_index.prefetch()

    def keep_subtree(self, path: str = "", *, items: int = 0) -> None:
        """Keep everything under ``path`` as the parent snapshot has it.

        For a source that checked the whole folder (names and versions) and
        found nothing changed: nothing below it is read, compared or rewritten,
        and a full scope does not remove it. ``items`` counts as unchanged.
        """
        key = path_key(path) if path.strip("/") else b""
        with self._lock:
            self._kept.append(key)
            self.stats.items_unchanged += items

    def keep_children(self, path: str, names: Sequence[bytes]) -> None:
        """Keep these items directly in ``path`` as the parent snapshot has them.

        For a source that compared each name with :meth:`children` of this
        session (the same type and version) and did not add, remove or keep
        it otherwise in this run: the items count as unchanged and a full
        scope keeps them. Unlike :meth:`unchanged` nothing is looked up or
        decoded again (a partly changed folder of a 10,000-file tree spent
        most of its rerun re-reading entries it had just compared). Names are
        those :meth:`children` returned; a name that is not there is ignored
        by the merge (nothing to keep). Thread-safe; joins an open
        :meth:`group`.
        """
        if not names:
            return
        base = path_key(path) + SEPARATOR if path.strip("/") else b""
        keys = [base + name for name in names]
        with self._lock:
            group = self._open_group()
            if group is not None:
                group.ops.extend(("seen", key, None, False) for key in keys)
            else:
                self.store.mark_seen_many(keys)
            self.stats.items_unchanged += len(keys)

    def unchanged(self, path: str, version: str) -> bool:
        """True (and the item is kept) if the item at ``path`` has ``version``.

        The item's content is not read again. False (nothing is kept) when there
        is no item at ``path`` (a crash may have left it out of the checkpoint
        this run resumes from) or it has another version: the caller must add
        it, else a full scope drops what is there and nothing comes back.
        """
        return self.unchanged_all((path,), version)

    def unchanged_all(self, paths: Sequence[str], version: str) -> bool:
        """True (and every one kept) if every item of ``paths`` has ``version``.

        For an item and its companion files (renderings, attachments): when one
        is missing or differs, none is marked and False asks the caller to add
        the whole item again. Checked and marked under the session lock.
        """
        keys = [path_key(path) for path in paths]
        with self._lock:
            for key in keys:
                raw = self.store.current(key)
                if raw is None or Entry.decode(raw).version != version:
                    return False
            group = self._open_group()
            for key in keys:
                if group is not None:
                    group.ops.append(("seen", key, None, False))
                else:
                    self.store.mark_seen(key)
                self.stats.items_unchanged += 1
        return True

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """Write one item and everything derived from it as a unit.

        Every add, removal and :meth:`unchanged` mark this thread makes inside
        the block is held back and applied at its end at once, under the
        session lock: a checkpoint (from any thread) holds all of them or none,
        so a run killed at any moment never leaves a base in which the item's
        ``.json`` is present and its rendering is not. If the block raises,
        nothing of it is applied (the content already stored is unreferenced,
        for prune). Nested groups join the outermost. Queries inside the block
        (:meth:`entry`, :meth:`unchanged`) do not see its pending changes.
        """
        group = self._open_group()
        if group is None:
            group = _Group()
            self._groups.current = group
        group.depth += 1
        try:
            yield
        except BaseException:
            group.depth -= 1
            if group.depth == 0:
                self._groups.current = None
            raise
        group.depth -= 1
        if group.depth:
            return
        self._groups.current = None
        with self._lock:
            for op, key, entry, count in group.ops:
                if op == "put":
                    assert entry is not None
                    self._apply(key, entry, count=count)
                elif op == "remove":
                    self.store.remove_run(key)
                else:
                    self.store.mark_seen(key)
        if self._auto_checkpoint and group.ops:
            self.maybe_checkpoint()

    def _open_group(self) -> _Group | None:
        group: _Group | None = getattr(self._groups, "current", None)
        return group

    def add_item(
        self,
        path: str,
        content: Content | None = None,
        *,
        mode: int = 0o644,
        mtime_ns: int = 0,
        version: str | None = None,
        item_id: str | None = None,
        attrs: dict[str, str] | None = None,
        reuse_content_of: str | None = None,
        stored: tuple[Sequence[tuple[BlobId, int]], int] | None = None,
    ) -> Entry:
        """Store a file item. ``content`` may be bytes, a binary stream, a Path,
        an iterable of byte segments (each cut on its own: a source can put
        attachment boundaries between segments so shared attachments dedupe),
        or a :meth:`BackupRun.content_sink` a download wrote to.

        ``reuse_content_of`` takes the content of an existing item instead
        (a metadata-only change): nothing is read or stored again.
        ``stored`` is content already stored (its chunks and size), as the
        worker processes of :meth:`BackupRun.worker_pool` deliver it.
        Raises ValueError for an invalid path; storage errors propagate.
        """
        key = path_key(path)
        if stored is not None:
            chunks, size = list(stored[0]), stored[1]
            with self._lock:
                self.stats.bytes_read += size
        elif reuse_content_of is not None:
            previous = self.entry(reuse_content_of)
            if previous is None or not previous.is_file:
                raise StoreError(f"no stored content at {reuse_content_of} to reuse")
            chunks, size = list(previous.chunks), previous.size
        else:
            chunks, size = self._store_content(content if content is not None else b"")
        entry = Entry(
            name=key.rpartition(b"\x00")[2],
            type=FILE,
            mode=mode & 0o7777,
            mtime_ns=mtime_ns,
            size=size,
            chunks=tuple(chunks),
            version=version,
            item_id=item_id,
            attrs=attrs or {},
        )
        self._record(key, entry)
        return entry

    def add_directory(
        self,
        path: str,
        *,
        mode: int = 0o755,
        mtime_ns: int = 0,
        version: str | None = None,
        item_id: str | None = None,
        attrs: dict[str, str] | None = None,
    ) -> None:
        """Record a directory's own metadata (its items are added separately)."""
        key = path_key(path)
        entry = Entry(
            name=key.rpartition(b"\x00")[2],
            type=DIRECTORY,
            mode=mode & 0o7777,
            mtime_ns=mtime_ns,
            version=version,
            item_id=item_id,
            attrs=attrs or {},
        )
        self._record(key, entry, count=False)

    def add_symlink(
        self,
        path: str,
        target: bytes,
        *,
        mode: int = 0o777,
        mtime_ns: int = 0,
        attrs: dict[str, str] | None = None,
    ) -> None:
        key = path_key(path)
        entry = Entry(
            name=key.rpartition(b"\x00")[2],
            type=SYMLINK,
            mode=mode & 0o7777,
            mtime_ns=mtime_ns,
            target=target,
            version=symlink_version(target, mtime_ns),
            attrs=attrs or {},
        )
        self._record(key, entry)

    def remove(self, path: str) -> None:
        """Remove the item (and, for a directory, everything in it)."""
        key = path_key(path)
        group = self._open_group()
        if group is not None:
            group.ops.append(("remove", key, None, False))
            return
        with self._lock:
            self.store.remove_run(key)

    def _record(self, key: bytes, entry: Entry, *, count: bool = True) -> None:
        group = self._open_group()
        if group is not None:
            group.ops.append(("put", key, entry, count))
            return
        with self._lock:
            self._apply(key, entry, count=count)
        if self._auto_checkpoint:
            self.maybe_checkpoint()

    def _apply(self, key: bytes, entry: Entry, *, count: bool) -> None:
        # The caller holds the session lock.
        encoded = entry.encode()
        if count:
            previous = self.store.current(key)
            if previous is None:
                self.stats.items_new += 1
            elif previous != encoded:
                self.stats.items_changed += 1
            else:
                self.stats.items_unchanged += 1
        self.store.put_run(key, encoded, entry.item_id)

    def _store_content(self, content: Content) -> tuple[list[tuple[BlobId, int]], int]:
        chunker = self.run.chunker
        writer = self.run.writer
        if isinstance(content, ContentSink):
            stored, stored_size = content.finish()  # in the store slots, like the rest
            with self._lock:
                self.stats.bytes_read += stored_size
            return stored, stored_size
        if isinstance(content, bytes | bytearray | memoryview):
            pieces: Iterable[bytes] = chunker.cut_bytes(bytes(content))
        elif isinstance(content, Path):
            pieces = chunker.cut_file(content)
        elif isinstance(content, io.IOBase) or hasattr(content, "read"):
            pieces = chunker.cut_stream(content)  # type: ignore[arg-type]
        else:
            pieces = (chunk for segment in content for chunk in chunker.cut_bytes(segment))
        chunks: list[tuple[BlobId, int]] = []
        size = 0
        with self.run.store_slots:
            for piece in pieces:
                chunks.append((writer.save(DATA, piece), len(piece)))
                size += len(piece)
        with self._lock:
            self.stats.bytes_read += size
        return chunks, size

    def set_sync_state(self, state: bytes | None) -> None:
        """The source's opaque state for next time (stored with each snapshot).

        Set it only to positions whose items were all added: a checkpoint
        stores the last state set together with the items added so far.
        """
        with self._lock:
            self.sync_state = state

    # -- committing -----------------------------------------------------

    def maybe_checkpoint(self) -> Snapshot | None:
        """Commit a partial snapshot if the checkpoint interval has passed."""
        if time.monotonic() - self._last_checkpoint < self.run.checkpoint_seconds:
            return None
        return self.checkpoint()

    def checkpoint(self) -> Snapshot:
        """Commit progress so far as a partial snapshot (resumable)."""
        with self._lock:
            snapshot = self._commit(final=False)
            for older in self._checkpoints:
                assert older.snapshot_id is not None
                self.repo.delete_snapshot(older.snapshot_id)
            self._checkpoints = [snapshot]
            self.stats.checkpoints += 1
            self._last_checkpoint = time.monotonic()
            return snapshot

    def commit(self, *, stats: dict[str, Any] | None = None) -> Snapshot:
        """Commit the owner's complete snapshot and end the session.

        Older checkpoints of this owner are deleted: they are superseded.
        """
        with self._lock:
            if stats:
                self.stats.extra.update(stats)
            snapshot = self._commit(final=True)
            self._delete_superseded_checkpoints(snapshot)
            self.close()
            return snapshot

    def _delete_superseded_checkpoints(self, snapshot: Snapshot) -> None:
        for other in [*self._older_checkpoints, *self._checkpoints]:
            if other.time_ns <= snapshot.time_ns and other.snapshot_id is not None:
                self.repo.delete_snapshot(other.snapshot_id)
        self._older_checkpoints = []
        self._checkpoints = []

    def _commit(self, *, final: bool) -> Snapshot:
        if self._closed:
            raise StoreError("the session is closed")
        if self._failed:
            raise StoreError("an earlier commit of this session failed; start a new run")
        writer = self.run.writer
        self.store.flush_run()
        spec = MergeInput(
            save_tree=writer.save_tree,
            split=self.repo.config.tree_split,
            split_key=self.repo.keyring.tree_split_key,
            full_scopes=list(self._full_scopes),
            kept=list(self._kept),
            final=final,
            reuse_dirs=self._reuse_dirs,
        )
        env = self.store.env
        rtxn = env.begin()
        out = CatalogueWriter(self.store)
        try:
            try:
                root, counts = merge(self.store, spec, rtxn, out)
            finally:
                rtxn.abort()
            sync = self._save_sync_state()
            writer.flush()  # packs, then index ...
            parent = self._checkpoints[-1] if self._checkpoints else self.parent
            snapshot = self.repo.save_snapshot(  # ... then the snapshot
                Snapshot(
                    owner=self.owner,
                    run=self.run.run_id,
                    time_ns=self.run.time_ns,
                    tree=root,
                    partial=not final,
                    parent=parent.snapshot_id if parent else None,
                    sync=sync,
                    host=self.run.host,
                    source=self.source,
                    stats=self._stats_map(counts),
                )
            )
            assert snapshot.snapshot_id is not None
            out.finish(snapshot.snapshot_id, final=final)
            # What the snapshot names was verified or written (and indexed) by this
            # run: the next session in this generation needs no audit.
            self.store.set_verified(self._generation)
            self._reuse_dirs = True
        except BaseException:
            out.abort()
            self._failed = True
            raise
        return snapshot

    def _stats_map(self, counts: MergeCounts) -> dict[str, Any]:
        # Removals are counted where they happen: in the merge (explicit
        # removals and items a full enumeration did not see).
        self.stats.items_removed += counts.dropped
        return self.stats.to_map()

    def _save_sync_state(self) -> tuple[BlobId, ...]:
        state = self.sync_state
        if not state:
            return ()
        writer = self.run.writer
        return tuple(
            writer.save(TREE, state[i : i + _SYNC_PIECE]) for i in range(0, len(state), _SYNC_PIECE)
        )

    def close(self) -> None:
        """End the session without committing (what was not committed is dropped)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.store.close()
        finally:
            self._lock_file.release()

    def __enter__(self) -> OwnerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["BackupRun", "Content", "OwnerSession", "SessionStats", "SnapshotId"]
