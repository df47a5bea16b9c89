"""Copying snapshots between repositories with different keys (``coffer copy``).

Every ID in a repository is keyed by that repository's secret, so a copy is a
translation: each source blob is read, verified, and saved in the destination
under the destination's ID for the same plaintext (deduplicated against what
the destination holds, encrypted with its keys), and each directory of the
snapshot is written again with the translated IDs. The source is never
written to.

**Chunks are copied as they are, not cut again** (docs/copy.md): a file keeps
the chunk boundaries the source's secret chunker seed gave it. Re-chunking
would need every copied file reassembled and cut again, and would still lose
to this in the common case (a destination fed only by copies from one source
deduplicates perfectly). The cost: a large file stored in the destination
both by its own backup and by a copy is stored twice, in different chunks;
items up to the chunker's minimum (128 KiB: almost every mail) are one chunk
whatever the seed, and deduplicate across all sources. Directory pages are
cut again with the destination's tree-split key, so a copied tree is exactly
the tree the destination would have written itself.

How little is read (store/cache/copymap.py): source -> destination blob IDs and
directory IDs are remembered per pair of repositories; a remembered blob the
destination still holds is not read again, and a remembered directory is not
even walked. Blobs to read are collected over the whole snapshot first and
read in bulk, grouped by pack (store/repository/blobread.py), so a copy from an object
store makes few large requests.

Write ordering is the backup's: packs, then index objects, then the
snapshot; the copy runs with a session marker like a backup, so prune treats
it as a live writer. A copy killed at any point leaves only unreferenced
packs; running it again skips the snapshots already copied and the blobs
already stored. A snapshot is "already at the destination" when one there has
the same owner, run, time and checkpoint flag (a snapshot's identity across
repositories; its ID differs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

from store.backup.session import BackupRun
from store.cache.copymap import CopyMap
from store.errors import IntegrityError, SnapshotNotFound, StoreError
from store.format.snapshot import Snapshot
from store.format.tree import Entry, PageWriter
from store.ids import BlobId, SnapshotId
from store.repository.blobread import read_blobs
from store.repository.repository import Repository

SnapshotIdentity = tuple[str, str, int, bool]

# Blobs to read are collected up to these bounds, then read in one bulk pass.
BATCH_BLOBS = 20_000
BATCH_BYTES = 256 * 1024 * 1024


def snapshot_identity(snapshot: Snapshot) -> SnapshotIdentity:
    """A snapshot's identity in any repository: owner, run, time, checkpoint flag."""
    return (snapshot.owner.identity, snapshot.run, snapshot.time_ns, snapshot.partial)


def missing_snapshots(wanted: Iterable[Snapshot], present: Iterable[Snapshot]) -> list[Snapshot]:
    """The snapshots of ``wanted`` with no counterpart in ``present``, oldest first."""
    have = {snapshot_identity(s) for s in present}
    return sorted(
        (s for s in wanted if snapshot_identity(s) not in have),
        key=lambda s: (s.time_ns, s.owner.identity, s.partial),
    )


class CopyProgress(Protocol):
    """What a copy reports while it runs (called from the copying thread)."""

    def starting(self, snapshot: Snapshot) -> None:
        """Copying ``snapshot`` begins."""

    def blob(self, size: int) -> None:
        """A blob of ``size`` plaintext bytes was read from the source."""

    def snapshot(self, source: Snapshot, copied: Snapshot | None) -> None:
        """A snapshot is done: copied (``copied`` is the new one) or failed (None)."""


@dataclass
class CopyStats:
    """Counters of one copy run."""

    snapshots_copied: int = 0
    blobs_read: int = 0  # blobs read and verified from the source
    bytes_read: int = 0  # their plaintext bytes
    blobs_added: int = 0  # blobs new at the destination (tree pages included)
    bytes_added: int = 0  # bytes they take there (compressed)
    dirs_rewritten: int = 0  # directories read and written again
    dirs_reused: int = 0  # directories found already copied, not read

    def to_map(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class CopyResult:
    """What :func:`copy_snapshots` did, snapshot by snapshot."""

    copied: list[tuple[Snapshot, Snapshot]] = field(default_factory=list)  # (source, new)
    present: list[tuple[Snapshot, Snapshot]] = field(default_factory=list)  # (source, there)
    failed: list[tuple[Snapshot, str]] = field(default_factory=list)  # (source, reason)
    stats: CopyStats = field(default_factory=CopyStats)


@dataclass
class _Frame:
    """One directory being written again (the copy walks trees without recursion)."""

    source_root: BlobId
    entries: Iterator[Entry]
    pages: PageWriter
    waiting: Entry | None = None  # the subdirectory entry being copied below


class SnapshotCopier:
    """Copies snapshots from ``source`` into ``dest``. Use as a context manager.

    Not thread-safe (one copying thread; reads and uploads use their own
    threads). Raises StoreError when both are the same repository,
    RepositoryLocked when another copy of the same pair runs on this machine.
    On leaving the context normally everything is flushed and the copy map
    committed; on an exception nothing more is written (what was copied so
    far is not referenced, and a new run reuses it).
    """

    def __init__(
        self,
        source: Repository,
        dest: Repository,
        *,
        progress: CopyProgress | None = None,
        workers: int = 4,
        batch_blobs: int = BATCH_BLOBS,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        if source.repo_id == dest.repo_id:
            raise StoreError(
                f"{source.backend.location} and {dest.backend.location} are the same repository"
            )
        self.source = source
        self.dest = dest
        self.stats = CopyStats()
        self._progress = progress
        self._workers = workers
        self._batch_blobs = batch_blobs
        self._batch_bytes = batch_bytes
        # The session marker first, then the index: prune treats the copy as
        # a live writer, and we never deduplicate against an older index.
        self._run = BackupRun(dest)
        try:
            dest.refresh_index()
            self._map = CopyMap(
                dest.cache_dir / "copy" / source.repo_id,
                f"from {source.backend.location} to {dest.backend.location}",
            )
        except BaseException:
            self._run.abort()
            raise
        try:
            self._map.begin(dest.list_index_ids())
            self._there = {snapshot_identity(s): s for s in dest.list_snapshots()}
        except BaseException:
            self._map.close()
            self._run.abort()
            raise
        self._writer = self._run.writer
        self._closed = False

    def __enter__(self) -> SnapshotCopier:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- snapshots ------------------------------------------------------

    def present(self, snapshot: Snapshot) -> Snapshot | None:
        """The destination's counterpart of ``snapshot``, if it has one."""
        return self._there.get(snapshot_identity(snapshot))

    def copy(self, snapshot: Snapshot) -> Snapshot:
        """Copy one snapshot (or return its counterpart if already there).

        Raises IntegrityError (including BlobMissing) when the source is
        damaged; BackendError when either side fails.
        """
        existing = self.present(snapshot)
        if existing is not None:
            return existing
        root = self._copy_tree(snapshot.tree)
        sync = tuple(self._translate(snapshot.sync))
        self._writer.flush()  # packs, then index ...
        stored = self.dest.save_snapshot(  # ... then the snapshot
            Snapshot(
                owner=snapshot.owner,
                run=snapshot.run,
                time_ns=snapshot.time_ns,
                tree=root,
                partial=snapshot.partial,
                parent=self._parent(snapshot.parent),
                sync=sync,
                host=snapshot.host,
                source=snapshot.source,
                stats=snapshot.stats,
                tags=snapshot.tags,
            )
        )
        key = snapshot_identity(snapshot)
        self._there[key] = stored
        if not snapshot.partial:
            # A checkpoint of the same run copied earlier is superseded, as
            # the engine deletes it when the owner's run completes.
            checkpoint = self._there.pop((*key[:3], True), None)
            if checkpoint is not None and checkpoint.snapshot_id is not None:
                self.dest.delete_snapshot(checkpoint.snapshot_id)
        self.stats.snapshots_copied += 1
        return stored

    def _parent(self, parent: SnapshotId | None) -> SnapshotId | None:
        """The destination's counterpart of the source's parent snapshot, if any."""
        if parent is None:
            return None
        try:
            counterpart = self.present(self.source.load_snapshot(parent))
        except SnapshotNotFound:
            return None
        return counterpart.snapshot_id if counterpart is not None else None

    # -- blobs ------------------------------------------------------------

    def _known_blob(self, source_id: BlobId) -> BlobId | None:
        dest_id = self._map.blob(source_id)
        if dest_id is not None and self._writer.contains(dest_id):
            return dest_id
        return None

    def _transfer(self, source_ids: Iterable[BlobId]) -> None:
        """Read blobs from the source in bulk and save them at the destination."""
        for blob in read_blobs(self.source, source_ids, workers=self._workers):
            dest_id = self._writer.save(blob.type, blob.plaintext, payload=blob.payload)
            self._map.put_blob(blob.blob_id, dest_id)
            self.stats.blobs_read += 1
            self.stats.bytes_read += len(blob.plaintext)
            if self._progress is not None:
                self._progress.blob(len(blob.plaintext))

    def _translate(self, source_ids: Iterable[BlobId]) -> Iterator[BlobId]:
        """Destination IDs of source blobs, copying those the destination lacks."""
        ids = list(source_ids)
        self._transfer(i for i in ids if self._known_blob(i) is None)
        for source_id in ids:
            dest_id = self._map.blob(source_id)
            assert dest_id is not None
            yield dest_id

    def _chunks(self, chunks: tuple[tuple[BlobId, int], ...]) -> tuple[tuple[BlobId, int], ...]:
        out = []
        for source_id, size in chunks:
            dest_id = self._map.blob(source_id)
            if dest_id is None:  # not collected by the first pass (cannot happen; be safe)
                self._transfer([source_id])
                dest_id = self._map.blob(source_id)
                if dest_id is None:
                    raise IntegrityError(f"chunk {source_id.hex()[:8]} could not be copied")
            out.append((dest_id, size))
        return tuple(out)

    # -- trees ------------------------------------------------------------

    def _known_dir(self, source_root: BlobId) -> BlobId | None:
        dest_root = self._map.directory(source_root)
        if dest_root is not None and self._writer.contains(dest_root):
            return dest_root
        return None

    def _copy_tree(self, source_root: BlobId) -> BlobId:
        known = self._known_dir(source_root)
        if known is not None:
            self.stats.dirs_reused += 1
            return known
        self._collect_chunks(source_root)
        return self._rewrite(source_root)

    def _collect_chunks(self, source_root: BlobId) -> None:
        """First pass: read every chunk the destination lacks, in bulk."""
        reader = self.source.tree_reader
        stack = [source_root]
        visited: set[BlobId] = set()
        needed: dict[BlobId, None] = {}
        needed_bytes = 0
        while stack:
            directory = stack.pop()
            if directory in visited or self._known_dir(directory) is not None:
                continue
            visited.add(directory)
            for entry in reader.entries(directory):
                if entry.subtree is not None:
                    stack.append(entry.subtree)
                for chunk_id, size in entry.chunks:
                    if chunk_id in needed or self._known_blob(chunk_id) is not None:
                        continue
                    needed[chunk_id] = None
                    needed_bytes += size
                    if len(needed) >= self._batch_blobs or needed_bytes >= self._batch_bytes:
                        self._transfer(needed)
                        needed, needed_bytes = {}, 0
        self._transfer(needed)

    def _frame(self, source_root: BlobId) -> _Frame:
        dest = self.dest
        pages = PageWriter(
            self._writer.save_tree, dest.config.tree_split, dest.keyring.tree_split_key
        )
        return _Frame(source_root, self.source.tree_reader.entries(source_root), pages)

    def _rewrite(self, source_root: BlobId) -> BlobId:
        """Second pass: write the directories again with destination IDs (post-order)."""
        stack = [self._frame(source_root)]
        finished: BlobId | None = None
        while True:
            frame = stack[-1]
            if finished is not None:
                assert frame.waiting is not None
                entry = replace(frame.waiting, subtree=finished)
                frame.pages.add(entry.name, entry.encode())
                frame.waiting = None
                finished = None
            descended = False
            for entry in frame.entries:
                if entry.subtree is not None:
                    known = self._known_dir(entry.subtree)
                    if known is None:
                        frame.waiting = entry
                        stack.append(self._frame(entry.subtree))
                        descended = True
                        break
                    self.stats.dirs_reused += 1
                    entry = replace(entry, subtree=known)
                elif entry.chunks:
                    entry = replace(entry, chunks=self._chunks(entry.chunks))
                frame.pages.add(entry.name, entry.encode())
            if descended:
                continue
            stack.pop()
            finished = frame.pages.finish()
            self._map.put_directory(frame.source_root, finished)
            self.stats.dirs_rewritten += 1
            if not stack:
                return finished

    # -- ending -----------------------------------------------------------

    def close(self) -> None:
        """Flush everything, trust the directories copied, remove the session marker."""
        if self._closed:
            return
        self._closed = True
        try:
            self._run.close()  # flushes the writer
            self.stats.blobs_added = self._writer.stats.blobs_new
            self.stats.bytes_added = self._writer.stats.bytes_new_stored
            self._map.commit(self.dest.list_index_ids())
        finally:
            self._map.close()

    def abort(self) -> None:
        """Stop without flushing: nothing written so far is referenced."""
        if self._closed:
            return
        self._closed = True
        try:
            self._run.abort()
        finally:
            self._map.close()


def copy_snapshots(
    source: Repository,
    dest: Repository,
    snapshots: Iterable[Snapshot],
    *,
    progress: CopyProgress | None = None,
) -> CopyResult:
    """Copy ``snapshots`` of ``source`` that ``dest`` lacks, oldest first.

    Idempotent: snapshots already at the destination are listed in
    ``present`` and cost nothing. A snapshot the source cannot read whole
    (IntegrityError, BlobMissing) is listed in ``failed`` and the others go
    on; any other error (a backend failing, a lock) stops the copy and is
    raised, leaving what was copied before it in place.
    """
    result = CopyResult()
    with SnapshotCopier(source, dest, progress=progress) as copier:
        for snapshot in sorted(snapshots, key=lambda s: (s.time_ns, s.owner.identity, s.partial)):
            there = copier.present(snapshot)
            if there is not None:
                result.present.append((snapshot, there))
                continue
            if progress is not None:
                progress.starting(snapshot)
            try:
                copied = copier.copy(snapshot)
            except IntegrityError as exc:
                result.failed.append((snapshot, str(exc)))
                if progress is not None:
                    progress.snapshot(snapshot, None)
                continue
            result.copied.append((snapshot, copied))
            if progress is not None:
                progress.snapshot(snapshot, copied)
    result.stats = copier.stats
    return result


__all__ = [
    "CopyProgress",
    "CopyResult",
    "CopyStats",
    "SnapshotCopier",
    "SnapshotIdentity",
    "copy_snapshots",
    "missing_snapshots",
    "snapshot_identity",
]
