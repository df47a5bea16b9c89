"""``repair index``: rebuild the index from the packs themselves.

Every pack's trailer is read (three small ranges) and authenticated; packs
the last check found damaged, and every pack with ``read_data``, are read
whole and each blob verified. A damaged pack's intact blobs are copied into
fresh packs and the damaged file is deleted; its damaged blobs, and the blobs
of packs that are gone, are left out of the new index, so the next backup
stores them again instead of deduplicating against lost data. The new index
objects supersede every old one (damaged ones included), which are deleted.

Packs under a prune mark are not re-indexed (prune owns them). Objects the
last check reported lost (anything but snapshots) are acknowledged in the
report, so later checks stop reporting them. Holds the maintenance lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from store.cache.checkstate import CheckState
from store.errors import ObjectNotFound, StoreError
from store.format.index import IndexObject, PackRecord
from store.ids import BlobId, IndexId, PackId
from store.maintenance.check.accounting import read_journal, unaccounted_missing
from store.maintenance.inventory import PackFile, take_inventory
from store.maintenance.maintlock import MaintenanceLock
from store.maintenance.packverify import read_pack_trailer, verify_pack
from store.maintenance.prune.repack import Repacker
from store.names import SNAPSHOTS, index_name
from store.repository.marks import list_marks
from store.repository.repository import Repository

_ENTRIES_PER_OBJECT = 100_000


class IndexRepairJSON(TypedDict):
    """What ``coffer repair index --json`` prints (with the report key)."""

    packs_scanned: int
    packs_indexed: int
    blobs_indexed: int
    packs_read_whole: int
    lost_blobs: int  # how many; the first IDs are in lost_blob_ids
    damaged_packs: list[str]
    salvaged_blobs: int
    missing_packs: list[str]
    unreadable_indexes: list[str]
    acknowledged: list[str]
    index_written: int
    index_deleted: int
    report: str | None
    lost_blob_ids: list[str]


@dataclass
class IndexRepair:
    """What ``repair index`` found and did."""

    packs_scanned: int = 0
    packs_indexed: int = 0
    blobs_indexed: int = 0
    packs_read_whole: int = 0
    lost_blobs: dict[str, str] = field(default_factory=dict)  # blob hex -> why
    damaged_packs: list[str] = field(default_factory=list)  # deleted after salvage
    salvaged_blobs: int = 0
    missing_packs: list[str] = field(default_factory=list)
    unreadable_indexes: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    index_written: int = 0
    index_deleted: int = 0
    report: str | None = None

    def to_json(self) -> IndexRepairJSON:
        return {
            "packs_scanned": self.packs_scanned,
            "packs_indexed": self.packs_indexed,
            "blobs_indexed": self.blobs_indexed,
            "packs_read_whole": self.packs_read_whole,
            "lost_blobs": len(self.lost_blobs),
            "damaged_packs": self.damaged_packs,
            "salvaged_blobs": self.salvaged_blobs,
            "missing_packs": self.missing_packs,
            "unreadable_indexes": self.unreadable_indexes,
            "acknowledged": self.acknowledged,
            "index_written": self.index_written,
            "index_deleted": self.index_deleted,
            "report": self.report,
            "lost_blob_ids": sorted(self.lost_blobs)[:1000],
        }


def packs_flagged_by_last_check(repo: Repository) -> set[str]:
    """Pack IDs (hex) the most recent stored check report found damaged."""
    keys = repo.list_reports("check")
    for key in reversed(keys):
        try:
            report = repo.load_report(key)
        except (StoreError, ValueError):
            continue
        bad = report.get("bad_packs")
        return (
            {str(item.get("pack")) for item in bad if isinstance(item, dict)}
            if isinstance(bad, list)
            else set()
        )
    return set()


def lost_since_last_check(repo: Repository, state: CheckState | None) -> list[str]:
    """Objects the check anchor expects and nothing accounts for
    (see store/maintenance/check/accounting.py)."""
    anchor = state.load_anchor() if state is not None else None
    inv = take_inventory(repo.backend)
    reports: dict[str, dict[str, Any]] = {}
    for key in inv.reports:
        try:
            reports[key] = repo.load_report(key)
        except (StoreError, ValueError):
            continue
    superseded: set[IndexId] = set()
    for index_id in inv.indexes:
        try:
            superseded.update(repo.load_index(index_id).supersedes)
        except StoreError:
            continue
    snapshots = repo.list_snapshots()
    return unaccounted_missing(inv.all_keys(), anchor, read_journal(reports), snapshots, superseded)


def repair_index(
    repo: Repository,
    *,
    read_data: bool = False,
    state: CheckState | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> IndexRepair:
    """Rebuild the index from pack trailers. See the module docstring.

    Raises RepositoryLocked if a prune or repair is running.
    """
    repo.read_storage()  # the storage itself, never this host's cache of it
    if dry_run:
        return _Rebuild(repo, read_data, state, dry_run, progress).run()
    with MaintenanceLock(repo, "repair index"):
        return _Rebuild(repo, read_data, state, dry_run, progress).run()


class _Rebuild:
    def __init__(
        self,
        repo: Repository,
        read_data: bool,
        state: CheckState | None,
        dry_run: bool,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.repo = repo
        self.read_data = read_data
        self.state = state
        self.dry_run = dry_run
        self.progress = progress
        self.out = IndexRepair()

    def run(self) -> IndexRepair:
        repo, out = self.repo, self.out
        old_ids = repo.list_index_ids()
        indexed: dict[PackId, PackRecord] = {}
        for index_id in old_ids:
            try:
                for record in repo.load_index(index_id).packs:
                    indexed.setdefault(record.pack_id, record)
            except ObjectNotFound:
                continue
            except StoreError:
                out.unreadable_indexes.append(index_name(index_id))
        marked = {m.pack_id for mark in list_marks(repo) for m in mark.packs}
        inv = take_inventory(repo.backend)
        for pack_id, record in indexed.items():
            if pack_id not in inv.packs:
                out.missing_packs.append(pack_id.hex())
                for entry in record.entries:
                    out.lost_blobs[entry.blob_id.hex()] = f"pack {pack_id.hex()[:8]} is missing"
        flagged = packs_flagged_by_last_check(repo)
        packs = [p for pid, p in sorted(inv.packs.items()) if pid not in marked or pid in indexed]
        records: list[PackRecord] = []
        salvage: list[tuple[PackFile, PackRecord, set[BlobId]]] = []
        for number, pack in enumerate(packs, 1):
            found, keep = self._scan(pack, indexed.get(pack.pack_id), flagged)
            if found is not None and keep is None:
                records.append(found)
            elif found is not None and keep is not None:
                salvage.append((pack, found, keep))
            if self.progress is not None:
                self.progress(number, len(packs))
        out.packs_scanned = len(packs)
        out.acknowledged = [
            k for k in lost_since_last_check(repo, self.state) if not k.startswith(SNAPSHOTS)
        ]
        if self.dry_run:
            out.packs_indexed = len(records) + len(salvage)
            return out
        repacker = Repacker(repo)
        for _pack, record, keep in salvage:
            repacker.copy(record, keep)
            out.salvaged_blobs += len(keep)
        records.extend(repacker.finish())
        out.packs_indexed = len(records)
        out.blobs_indexed = sum(len(r.entries) for r in records)
        written = self._write(records, old_ids)
        superseded = [i for i in old_ids if i not in written]
        deleted = [index_name(i) for i in superseded]
        deleted += [pack.key for pack, _record, _keep in salvage]
        out.report = repo.save_report(
            "repair",
            {
                "action": "index",
                **out.to_json(),
                "deleted": deleted,
                "acknowledged": out.acknowledged,
            },
        )
        for index_id in superseded:
            repo.backend.delete(index_name(index_id))
        for pack, _record, _keep in salvage:
            repo.backend.delete(pack.key)
        out.index_written = len(written)
        out.index_deleted = len(superseded)
        repo.refresh_index()
        return out

    def _scan(
        self, pack: PackFile, indexed: PackRecord | None, flagged: set[str]
    ) -> tuple[PackRecord | None, set[BlobId] | None]:
        """(record, None) for an intact pack, (record, blobs to keep) for a damaged one."""
        out = self.out
        whole = self.read_data or pack.pack_id.hex() in flagged
        if not whole:
            try:
                epoch, entries = read_pack_trailer(self.repo.backend.get, pack, self.repo.keyring)
                return PackRecord(pack.pack_id, pack.kind, epoch, entries), None
            except ObjectNotFound:
                return None, None
            except StoreError:
                whole = True  # trailer damaged: salvage blob by blob
        out.packs_read_whole += 1
        verdict = verify_pack(self.repo.backend.get, pack, self.repo.keyring, indexed)
        if verdict.missing:
            return None, None
        if verdict.ok and verdict.epoch is not None and verdict.entries is not None:
            return PackRecord(pack.pack_id, pack.kind, verdict.epoch, verdict.entries), None
        for blob_id, reason in verdict.bad.items():
            out.lost_blobs[blob_id.hex()] = reason
        out.damaged_packs.append(pack.key)
        if verdict.epoch is None or not verdict.good:
            return PackRecord(pack.pack_id, pack.kind, 0, []), set()
        record = PackRecord(pack.pack_id, pack.kind, verdict.epoch, verdict.good)
        return record, {e.blob_id for e in verdict.good}

    def _write(self, records: list[PackRecord], supersedes: list[IndexId]) -> list[IndexId]:
        written: list[IndexId] = []
        batch: list[PackRecord] = []
        count = 0

        def flush() -> None:
            obj = IndexObject(list(batch), list(supersedes))
            plain = obj.encode()
            index_id = IndexId(self.repo.object_id(plain))
            self.repo.save_object("index", index_name(index_id), plain)
            written.append(index_id)

        for record in records:
            batch.append(record)
            count += len(record.entries)
            if count >= _ENTRIES_PER_OBJECT:
                flush()
                batch, count = [], 0
        if batch or not written:
            flush()
        return written
