"""``prune``: free space without stopping backups (two-phase, lock-free GC).

Phase one (mark): packs no snapshot references are written into a mark
(store/repository/marks.py) and left out of the rewritten index, so new backups stop
deduplicating against them; partly used packs are repacked until unused
space is at most ``max_unused`` percent of the repository, and the packs
they emptied are marked too. Phase two (sweep), in a later prune: a mark
older than the grace period is swept unless a live backup session started
before it (it may still write a snapshot that names a marked blob). Before
deleting, every marked pack that is needed again is revived (indexed anew):
one named by an index a backup wrote since, or one holding a blob a snapshot
references and no indexed pack holds.

Why backups are never harmed: a backup deduplicates only against the index
it loaded. One that loaded it before the rewrite started before the mark, so
its live session marker postpones the sweep, and once it has finished its
snapshot is visible and revives what it used. One that loaded it after the
rewrite cannot reference a marked blob except through a snapshot that does,
and such a snapshot revives the pack. The mark's time is taken after the new
index is written, and sessions are listed before snapshots.

Crash safety, in write order: new packs; new index objects; deletion of the
index objects they supersede; the new mark; the report naming everything
about to be deleted; then deletions. Killed anywhere, the repository is
intact: at worst packs are both indexed and marked (revived next time) or
neither (marked next time as unindexed).

Temporary objects that killed writes left (``.tmp-*`` on local disks, SFTP
and rclone; store/maintenance/temporaries.py) are deleted once older than the grace
period, by the storage's own modification times against the wall clock
(``temp_clock``).

Before anything is deleted, prune checks that it still holds the maintenance
lock (``MaintenanceLock.ensure_held``): a prune that stalled long enough to
be taken over stops there.

Time comes from ``clock`` (tests pass a fake one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

from store.errors import IntegrityError, ObjectNotFound, StoreError
from store.format.codec import decode
from store.format.crypto import keyed_hash
from store.format.index import IndexObject, PackRecord
from store.format.pack import BlobEntry, open_blob, read_header, read_trailer
from store.format.tree import TreeReader
from store.ids import BlobId, IndexId, PackId
from store.maintenance.inventory import Inventory, take_inventory
from store.maintenance.maintlock import MaintenanceLock
from store.maintenance.prune.repack import Repacker
from store.maintenance.references import walk_all
from store.maintenance.temporaries import find_temporaries
from store.names import SESSIONS, index_name, pack_name
from store.repository.marks import Mark, MarkedPack, list_marks, save_mark
from store.repository.repository import Repository

HOUR_NS = 3600 * 10**9
DEFAULT_GRACE_NS = 24 * HOUR_NS
SESSION_STALE_NS = HOUR_NS // 2
INDEX_ENTRIES_PER_OBJECT = 100_000


@dataclass
class PruneOptions:
    grace_ns: int = DEFAULT_GRACE_NS
    max_unused_percent: float = 5.0  # None-like: float("inf") never repacks
    session_stale_ns: int = SESSION_STALE_NS
    # Sessions that started up to this long after a mark still postpone it
    # (clocks of different hosts disagree).
    clock_margin_ns: int = 5 * 60 * 10**9
    dry_run: bool = False
    clock: Callable[[], int] = time.time_ns
    # Temporary objects are dated by the storage: compare with the wall clock.
    temp_clock: Callable[[], int] = time.time_ns


class PruneReport(TypedDict):
    """What ``coffer prune --json`` prints: every field of :class:`PruneResult`."""

    dry_run: bool
    snapshots: int
    packs: int
    pack_bytes: int
    used_blobs: int
    marked: list[str]
    marked_bytes: int
    repacked: list[str]
    repacked_bytes: int
    new_packs: list[str]
    deleted: list[str]
    deleted_bytes: int
    revived: list[str]
    postponed: list[str]
    index_written: int
    index_deleted: int
    sessions_removed: list[str]
    temporaries_removed: list[str]
    temporaries_bytes: int
    unused_bytes_after: int
    report: str | None


@dataclass
class PruneResult:
    dry_run: bool
    snapshots: int = 0
    packs: int = 0
    pack_bytes: int = 0
    used_blobs: int = 0
    marked: list[str] = field(default_factory=list)
    marked_bytes: int = 0
    repacked: list[str] = field(default_factory=list)
    repacked_bytes: int = 0
    new_packs: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # pack keys
    deleted_bytes: int = 0
    revived: list[str] = field(default_factory=list)
    postponed: list[str] = field(default_factory=list)  # why marks were not swept
    index_written: int = 0
    index_deleted: int = 0
    sessions_removed: list[str] = field(default_factory=list)
    temporaries_removed: list[str] = field(default_factory=list)  # stale .tmp-* objects
    temporaries_bytes: int = 0
    unused_bytes_after: int = 0
    report: str | None = None

    def to_json(self) -> PruneReport:
        return {
            "dry_run": self.dry_run,
            "snapshots": self.snapshots,
            "packs": self.packs,
            "pack_bytes": self.pack_bytes,
            "used_blobs": self.used_blobs,
            "marked": self.marked,
            "marked_bytes": self.marked_bytes,
            "repacked": self.repacked,
            "repacked_bytes": self.repacked_bytes,
            "new_packs": self.new_packs,
            "deleted": self.deleted,
            "deleted_bytes": self.deleted_bytes,
            "revived": self.revived,
            "postponed": self.postponed,
            "index_written": self.index_written,
            "index_deleted": self.index_deleted,
            "sessions_removed": self.sessions_removed,
            "temporaries_removed": self.temporaries_removed,
            "temporaries_bytes": self.temporaries_bytes,
            "unused_bytes_after": self.unused_bytes_after,
            "report": self.report,
        }


@dataclass
class _Session:
    key: str
    started: int
    refreshed: int
    host: str


class _Pruner:
    def __init__(
        self, repo: Repository, options: PruneOptions, lock: MaintenanceLock | None = None
    ) -> None:
        self.lock = lock
        self.repo = repo
        self.opt = options
        self.result = PruneResult(options.dry_run)
        self.records: dict[PackId, PackRecord] = {}
        self.index_ids: list[IndexId] = []
        self.marks: list[Mark] = []
        self.inv = Inventory()
        self.used: set[BlobId] = set()
        self.marked_entries: dict[BlobId, tuple[MarkedPack, BlobEntry]] = {}
        self.deletions: list[str] = []  # journaled before they happen
        self.locations: dict[BlobId, tuple[PackRecord, BlobEntry]] = {}

    # -- loading ----------------------------------------------------------

    def _sessions(self) -> list[_Session]:
        out = []
        for info in self.repo.backend.list(SESSIONS):
            try:
                data = decode(self.repo.load_object("session", info.key), info.key)
                out.append(
                    _Session(
                        info.key, int(data["started"]), int(data["refreshed"]), str(data["host"])
                    )
                )
            except ObjectNotFound:
                continue
            except (StoreError, KeyError, TypeError, ValueError, OverflowError):
                # Unreadable (int(Infinity) overflows: found by fuzzing): assume
                # a live writer (never delete on doubt).
                out.append(_Session(info.key, 0, self.opt.clock(), "?"))
        return out

    def _load(self) -> None:
        snapshots = self.repo.list_snapshots()  # snapshots before the index (FORMAT §1)
        for index_id in self.repo.list_index_ids():
            try:
                obj = self.repo.load_index(index_id)
            except ObjectNotFound:
                continue
            self.index_ids.append(index_id)
            for record in obj.packs:
                self.records.setdefault(record.pack_id, record)
        self.marks = list_marks(self.repo)
        self.inv = take_inventory(self.repo.backend)
        for mark in self.marks:
            for marked in mark.packs:
                if marked.entries is not None and marked.pack_id in self.inv.packs:
                    for entry in marked.entries:
                        self.marked_entries.setdefault(entry.blob_id, (marked, entry))
        self.result.snapshots = len(snapshots)
        self.result.packs = len(self.inv.packs)
        self.result.pack_bytes = self.inv.pack_bytes()
        locations = self.locations
        for record in self.records.values():
            if record.pack_id in self.inv.packs:
                for entry in record.entries:
                    locations.setdefault(entry.blob_id, (record, entry))
        reader = TreeReader(self._load_tree_blob)
        reach = walk_all(snapshots, reader.page)
        if reach.unreadable:
            page_id, reason = next(iter(reach.unreadable.items()))
            raise IntegrityError(
                f"tree page {page_id.hex()[:8]} cannot be read ({reason}); prune stops: "
                "run 'coffer check' and 'coffer repair'"
            )
        self.used = reach.all_blobs
        lost = [b for b in self.used if b not in locations and b not in self.marked_entries]
        if lost:
            raise IntegrityError(
                f"{len(lost)} blob(s) referenced by snapshots are lost (first "
                f"{lost[0].hex()[:8]}); prune stops: run 'coffer check' and 'coffer repair'"
            )
        self.result.used_blobs = len(self.used)

    def _load_tree_blob(self, blob_id: BlobId) -> bytes:
        found = self.locations.get(blob_id)
        if found is not None:
            record, entry = found
            pack_id, kind, epoch = record.pack_id, record.kind, record.epoch
        elif blob_id in self.marked_entries:
            marked, entry = self.marked_entries[blob_id]
            assert marked.epoch is not None
            pack_id, kind, epoch = marked.pack_id, marked.kind, marked.epoch
        else:
            raise IntegrityError(f"tree blob {blob_id.hex()[:8]} is not indexed")
        what = f"blob {blob_id.hex()[:8]}"
        sealed = self.repo.backend.get(pack_name(pack_id, kind), entry.offset, entry.length)
        plain = open_blob(sealed, self.repo.keyring.epoch_key(epoch, what), pack_id, entry, what)
        if keyed_hash(self.repo.keyring.blob_id_key, plain) != blob_id:
            raise IntegrityError(f"{what}: content does not match its ID")
        return plain

    # -- phase two: existing marks --------------------------------------

    def _entries_of(self, marked: MarkedPack) -> tuple[int | None, list[BlobEntry] | None]:
        if marked.entries is not None:
            return marked.epoch, list(marked.entries)
        key = pack_name(marked.pack_id, marked.kind)
        try:
            data = self.repo.backend.get(key)
            _kind, epoch = read_header(data, key)
            entries = read_trailer(
                data, self.repo.keyring.epoch_key(epoch, key), marked.pack_id, key
            )
        except StoreError:
            return None, None  # unreadable orphan: nothing can need it
        return epoch, entries

    def _needed(self, entries: list[BlobEntry]) -> bool:
        return any(e.blob_id in self.used and e.blob_id not in self.locations for e in entries)

    def _sweep_plan(
        self, sessions: list[_Session], now: int
    ) -> tuple[list[PackRecord], list[tuple[Mark, list[MarkedPack]]], list[str]]:
        """(records to revive, (mark, packs still marked) to rewrite, pack keys to delete)."""
        revive: list[PackRecord] = []
        rewrite: list[tuple[Mark, list[MarkedPack]]] = []
        delete: list[str] = []
        live = [s for s in sessions if now - s.refreshed < self.opt.session_stale_ns]
        for mark in self.marks:
            blocker = next(
                (s for s in live if s.started < mark.time_ns + self.opt.clock_margin_ns), None
            )
            due = mark.time_ns + self.opt.grace_ns <= now
            if due and blocker is not None:
                self.result.postponed.append(
                    f"{mark.key}: backup session {blocker.key} on {blocker.host} is still running"
                )
            sweep = due and blocker is None
            remaining: list[MarkedPack] = []
            changed = False
            for marked in mark.packs:
                present = marked.pack_id in self.inv.packs
                if not present or marked.pack_id in self.records:
                    changed = True  # gone already, or revived by an index a backup wrote
                    if present:
                        self.result.revived.append(marked.pack_id.hex())
                    continue
                epoch, entries = self._entries_of(marked)
                if entries is not None and epoch is not None and self._needed(entries):
                    revive.append(PackRecord(marked.pack_id, marked.kind, epoch, entries))
                    self.result.revived.append(marked.pack_id.hex())
                    for entry in entries:
                        self.locations.setdefault(entry.blob_id, (revive[-1], entry))
                    changed = True
                    continue
                if sweep:
                    delete.append(pack_name(marked.pack_id, marked.kind))
                    self.result.deleted_bytes += self.inv.packs[marked.pack_id].size
                    changed = True
                    continue
                remaining.append(marked)
            if changed:
                rewrite.append((mark, remaining))
        return revive, rewrite, delete

    # -- phase one: what to mark and repack -----------------------------

    def _classify(
        self, revived: list[PackRecord]
    ) -> tuple[list[PackRecord], list[PackRecord], list[PackRecord], dict[PackId, set[BlobId]]]:
        """(packs to keep, to repack, to mark) and the used blobs assigned to each pack."""
        present = {pid: rec for pid, rec in self.records.items() if pid in self.inv.packs}
        for record in revived:
            present[record.pack_id] = record
        counts: dict[PackId, int] = {}
        holders: dict[BlobId, list[PackId]] = {}
        for pid, record in present.items():
            for entry in record.entries:
                if entry.blob_id in self.used:
                    holders.setdefault(entry.blob_id, []).append(pid)
                    counts[pid] = counts.get(pid, 0) + 1
        assigned: dict[PackId, set[BlobId]] = {}
        for blob_id, pids in holders.items():
            best = max(pids, key=lambda p: (counts[p], p))
            assigned.setdefault(best, set()).add(blob_id)
        keep: list[PackRecord] = []
        mark: list[PackRecord] = []
        partly: list[tuple[int, PackRecord]] = []
        total = 0
        unused_total = 0
        for pid, record in present.items():
            mine = assigned.get(pid, set())
            if not mine:
                mark.append(record)
                continue
            unused = sum(e.length for e in record.entries if e.blob_id not in mine)
            total += self.inv.packs[pid].size if pid in self.inv.packs else 0
            unused_total += unused
            if unused:
                partly.append((unused, record))
            else:
                keep.append(record)
        partly.sort(key=lambda item: (-item[0], item[1].pack_id))
        repack: list[PackRecord] = []
        limit_percent = self.opt.max_unused_percent
        for unused, record in partly:
            if unused_total <= total * limit_percent / 100:
                keep.append(record)
                continue
            repack.append(record)
            unused_total -= unused
            total -= unused
        self.result.unused_bytes_after = unused_total
        return keep, repack, mark, assigned

    # -- the whole run ----------------------------------------------------

    def run(self) -> PruneResult:
        opt = self.opt
        sessions = self._sessions()  # before snapshots: see the module docstring
        self._load()
        now = opt.clock()
        revive, rewrite, delete = self._sweep_plan(sessions, now)
        keep, repack, to_mark, assigned = self._classify(revive)
        already_marked = {m.pack_id for mark in self.marks for m in mark.packs}
        orphans = [
            p
            for pid, p in self.inv.packs.items()
            if pid not in self.records
            and pid not in already_marked
            and pid not in {r.pack_id for r in revive}
        ]
        res = self.result
        res.marked = [r.pack_id.hex() for r in to_mark] + [p.pack_id.hex() for p in orphans]
        res.marked_bytes = sum(
            self.inv.packs[r.pack_id].size for r in to_mark if r.pack_id in self.inv.packs
        )
        res.marked_bytes += sum(p.size for p in orphans)
        res.repacked = [r.pack_id.hex() for r in repack]
        res.repacked_bytes = sum(self.inv.packs[r.pack_id].size for r in repack)
        res.deleted = delete
        stale_sessions = [
            s.key for s in sessions if now - s.refreshed > max(opt.grace_ns, opt.session_stale_ns)
        ]
        res.sessions_removed = stale_sessions
        temporaries = find_temporaries(
            self.repo.backend, grace_ns=opt.grace_ns, clock=opt.temp_clock
        ).stale
        res.temporaries_removed = [t.key for t in temporaries]
        res.temporaries_bytes = sum(t.size for t in temporaries)
        if opt.dry_run:
            return res
        # 1. new packs
        repacker = Repacker(self.repo)
        for record in repack:
            repacker.copy(record, assigned.get(record.pack_id, set()))
        new_records = repacker.finish()
        res.new_packs = [r.pack_id.hex() for r in new_records]
        # 2. the new index, 3. without what it supersedes
        index_changed = bool(to_mark or repack or revive or self._missing_records())
        if index_changed:
            records = [*keep, *revive, *new_records]
            written = self._write_index(records)
            res.index_written = len(written)
            superseded = [i for i in self.index_ids if i not in written]
            self._ensure_held()
            for index_id in superseded:
                self.repo.backend.delete(index_name(index_id))
            res.index_deleted = len(superseded)
            self.deletions.extend(index_name(i) for i in superseded)
        # 4. the new mark (its time taken after the index is written)
        new_marked = [
            MarkedPack(r.pack_id, r.kind, r.epoch, tuple(r.entries))
            for r in [*to_mark, *repack]
            if r.pack_id in self.inv.packs
        ] + [MarkedPack(p.pack_id, p.kind, None, None) for p in orphans]
        if new_marked:
            save_mark(self.repo, opt.clock(), new_marked)
        for mark, remaining in rewrite:
            if remaining:
                save_mark(self.repo, mark.time_ns, remaining)
        # 5. journal, 6. deletions
        delete = self._still_unindexed(delete)
        res.deleted = delete
        self.deletions.extend(delete)
        self.deletions.extend(mark.key for mark, _remaining in rewrite)
        self.deletions.extend(stale_sessions)
        self.deletions.extend(res.temporaries_removed)
        res.report = self.repo.save_report("prune", {**res.to_json(), "deleted": self.deletions})
        self._ensure_held()
        for key in delete:
            self.repo.backend.delete(key)
        for mark, _remaining in rewrite:
            self.repo.backend.delete(mark.key)
        for key in stale_sessions:
            self.repo.backend.delete(key)
        for temp in temporaries:
            try:
                self.repo.backend.delete_temporary(temp.key)
            except ObjectNotFound:
                continue
        if index_changed:
            self.repo.refresh_index()
        return res

    def _ensure_held(self) -> None:
        if self.lock is not None:
            self.lock.ensure_held()

    def _missing_records(self) -> bool:
        return any(pid not in self.inv.packs for pid in self.records)

    def _write_index(self, records: list[PackRecord]) -> list[IndexId]:
        written: list[IndexId] = []
        batch: list[PackRecord] = []
        count = 0
        for record in records:
            batch.append(record)
            count += len(record.entries)
            if count >= INDEX_ENTRIES_PER_OBJECT:
                written.append(self._write_one(batch))
                batch, count = [], 0
        if batch or not written:
            written.append(self._write_one(batch))
        return written

    def _write_one(self, batch: list[PackRecord]) -> IndexId:
        obj = IndexObject(batch, list(self.index_ids))
        plain = obj.encode()
        index_id = IndexId(self.repo.object_id(plain))
        self.repo.save_object("index", index_name(index_id), plain)
        return index_id

    def _still_unindexed(self, keys: list[str]) -> list[str]:
        """Drop packs an index written meanwhile names (a backup indexed an orphan)."""
        if not keys:
            return keys
        named: set[str] = set()
        known = set(self.index_ids)
        for index_id in self.repo.list_index_ids():
            if index_id in known:
                continue
            try:
                obj = self.repo.load_index(index_id)
            except (ObjectNotFound, IntegrityError):
                continue
            named.update(pack_name(r.pack_id, r.kind) for r in obj.packs)
        kept = [k for k in keys if k not in named]
        if len(kept) != len(keys):
            self.result.revived.extend(k.rpartition("/")[2] for k in keys if k in named)
        return kept


def prune(repo: Repository, options: PruneOptions | None = None) -> PruneResult:
    """Run one prune (sweep due marks, mark and repack). See the module docstring.

    Raises RepositoryLocked if another prune or repair holds the maintenance
    lock, IntegrityError if snapshots reference lost data (run check/repair).
    """
    opt = options or PruneOptions()
    if opt.dry_run:
        return _Pruner(repo, opt).run()
    with MaintenanceLock(repo, "prune", clock=opt.clock) as lock:
        return _Pruner(repo, opt, lock).run()


__all__ = ["DEFAULT_GRACE_NS", "PruneOptions", "PruneResult", "prune"]
