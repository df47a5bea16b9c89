"""``repair snapshots``: rebuild snapshots whose trees reference lost blobs.

Run it after ``repair index`` (which takes lost and corrupt blobs out of the
index). Each snapshot is rewritten from what survives: a file missing any of
its chunks is left out, a directory whose listing cannot be read is left out
(with what it held, where known), and every lost path is listed in the
report. Unchanged directories keep their subtree IDs, so a repair costs the
size of the damage. The repaired snapshot keeps its owner, run and time,
gains the tag ``repaired``, and drops its sync state: the owner's next backup
enumerates everything again and stores the lost items anew (an incremental
delta would not know they are missing). The damaged snapshot is deleted
after its replacement is written; both are named in the ``repair`` report.
Holds the maintenance lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TypedDict

from store.cache.checkstate import CheckState
from store.errors import StoreError
from store.format.paths import key_to_path
from store.format.snapshot import Snapshot
from store.format.tree import Entry, PageWriter, TreeReader
from store.ids import TREE, BlobId
from store.maintenance.inventory import take_inventory
from store.maintenance.maintlock import MaintenanceLock
from store.maintenance.repair.index import lost_since_last_check
from store.names import SNAPSHOTS, snapshot_name
from store.repository.blobwriter import BlobWriter
from store.repository.marks import list_marks
from store.repository.repository import Repository

_LOST_PATHS_KEPT = 1000


@dataclass
class RepairedSnapshot:
    old: Snapshot
    new: Snapshot | None
    lost: list[str]  # paths (a directory ends with "/")
    lost_count: int
    sync_dropped: bool


class RepairedSnapshotJSON(TypedDict):
    old: str
    new: str | None  # None: nothing of the snapshot was left, it was deleted
    owner: str  # kind/name
    time: int
    lost_count: int
    lost: list[str]  # the first paths lost
    sync_dropped: bool


class SnapshotRepairJSON(TypedDict):
    """What ``coffer repair snapshots --json`` prints (with the report key)."""

    checked: int
    acknowledged: list[str]
    snapshots: list[RepairedSnapshotJSON]


@dataclass
class SnapshotRepair:
    checked: int = 0
    repaired: list[RepairedSnapshot] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    report: str | None = None

    def to_json(self) -> SnapshotRepairJSON:
        return {
            "checked": self.checked,
            "acknowledged": self.acknowledged,
            "snapshots": [
                {
                    "old": r.old.id_hex,
                    "new": r.new.id_hex if r.new is not None else None,
                    "owner": f"{r.old.owner.kind}/{r.old.owner.name}",
                    "time": r.old.time_ns,
                    "lost_count": r.lost_count,
                    "lost": r.lost[:_LOST_PATHS_KEPT],
                    "sync_dropped": r.sync_dropped,
                }
                for r in self.repaired
            ],
        }


Lost = tuple[bytes, str]  # (path key relative to the snapshot root, what was lost)


class _Rewriter:
    """Rewrites directory trees without their lost items (memoised by subtree)."""

    def __init__(self, repo: Repository, writer: BlobWriter | None, available: set[BlobId]) -> None:
        self.repo = repo
        self.writer = writer
        self.available = available
        self.reader = TreeReader(lambda b: repo.load_blob(b, TREE))
        self.memo: dict[BlobId, tuple[BlobId | None, list[Lost], int]] = {}

    def _entries(self, root: BlobId) -> tuple[list[Entry], int, bool]:
        """(readable entries in order, entries known lost, whether anything is lost)."""
        entries: list[Entry] = []
        lost = 0
        damaged = False
        stack = [(root, -1)]
        while stack:
            page_id, count = stack.pop()
            page = None
            if page_id in self.available:
                try:
                    page = self.reader.page(page_id)
                except StoreError:
                    page = None
            if page is None:
                lost += max(count, 0)
                damaged = True
                continue
            if page.entries is not None:
                entries.extend(page.entries)
            else:
                assert page.children is not None
                stack.extend((child, n) for _first, child, n in reversed(page.children))
        return entries, lost, damaged

    def rewrite(self, root: BlobId) -> tuple[BlobId | None, list[Lost], int]:
        """(new root, or None if unreadable; lost paths below it; lost item count)."""
        cached = self.memo.get(root)
        if cached is not None:
            return cached
        entries, unknown_lost, damaged = self._entries(root)
        if damaged and not entries:
            result: tuple[BlobId | None, list[Lost], int] = (None, [], max(unknown_lost, 1))
            self.memo[root] = result
            return result
        kept: list[Entry] = []
        lost: list[Lost] = []
        count = unknown_lost
        if damaged:
            lost.append((b"", f"part of the folder listing ({unknown_lost} items)"))
        for entry in entries:
            if entry.is_file and any(c not in self.available for c, _ in entry.chunks):
                lost.append((entry.name, "file content"))
                count += 1
                continue
            if entry.is_dir and entry.subtree is not None:
                new_sub, sub_lost, sub_count = self.rewrite(entry.subtree)
                if new_sub is None:
                    lost.append((entry.name, "folder and everything in it"))
                    count += sub_count
                    continue
                lost.extend((_join(entry.name, k), what) for k, what in sub_lost)
                count += sub_count
                if new_sub != entry.subtree:
                    entry = replace(entry, subtree=new_sub)
            kept.append(entry)
        new_root = root if count == 0 and not damaged else self.write(kept)
        self.memo[root] = (new_root, lost, count)
        return new_root, lost, count

    def write(self, entries: list[Entry]) -> BlobId:
        if self.writer is None:  # dry run: any ID that differs from the old one
            return BlobId(b"\x00" * 32)
        pages = PageWriter(
            self.writer.save_tree, self.repo.config.tree_split, self.repo.keyring.tree_split_key
        )
        for entry in entries:
            pages.add(entry.name, entry.encode())
        return pages.finish()


def _join(name: bytes, key: bytes) -> bytes:
    return name + b"\x00" + key if key else name


def _display(lost: Lost) -> str:
    key, what = lost
    path = key_to_path(key) if key else "/"
    return f"{path} ({what})"


def repair_snapshots(
    repo: Repository, *, state: CheckState | None = None, dry_run: bool = False
) -> SnapshotRepair:
    """Rewrite every snapshot that references lost blobs. See the module docstring."""
    repo.read_storage()  # the storage itself, never this host's cache of it
    if dry_run:
        return _repair(repo, state, dry_run=True)
    with MaintenanceLock(repo, "repair snapshots"):
        return _repair(repo, state, dry_run=False)


def _repair(repo: Repository, state: CheckState | None, *, dry_run: bool) -> SnapshotRepair:
    out = SnapshotRepair()
    repo.refresh_index()
    inv = take_inventory(repo.backend)
    available: set[BlobId] = set()
    for blob_id, location in repo.blob_index.iter_blobs():
        if location.pack_id in inv.packs:
            available.add(blob_id)
    for mark in list_marks(repo):
        for marked in mark.packs:
            if marked.entries is not None and marked.pack_id in inv.packs:
                available.update(e.blob_id for e in marked.entries)
    writer = None if dry_run else repo.blob_writer()
    try:
        rewriter = _Rewriter(repo, writer, available)
        snapshots = repo.list_snapshots()
        out.checked = len(snapshots)
        roots: dict[int, BlobId] = {}
        for snap in snapshots:
            new_root, lost, count = rewriter.rewrite(snap.tree)
            sync_lost = any(b not in available for b in snap.sync)
            if new_root == snap.tree and not sync_lost:
                continue
            if new_root is None:
                lost = [(b"", "everything: the root folder cannot be read")]
                new_root = rewriter.write([])
            roots[len(out.repaired)] = new_root
            out.repaired.append(
                RepairedSnapshot(snap, None, [_display(x) for x in lost], count, bool(snap.sync))
            )
        out.acknowledged = [
            k for k in lost_since_last_check(repo, state) if k.startswith(SNAPSHOTS)
        ]
        if writer is None:
            return out
        writer.flush()  # packs and index before the snapshots naming them
        for number, item in enumerate(out.repaired):
            old = item.old
            stats = dict(old.stats)
            stats["repaired"] = {"lost_items": item.lost_count}
            item.new = repo.save_snapshot(
                replace(
                    old,
                    tree=roots[number],
                    sync=(),
                    stats=stats,
                    tags=tuple(sorted({*old.tags, "repaired"})),
                    snapshot_id=None,
                )
            )
    finally:
        if writer is not None:
            writer.close(flush=False)
    out.report = repo.save_report(
        "repair",
        {
            "action": "snapshots",
            **out.to_json(),
            "deleted": [snapshot_name(r.old.id_hex) for r in out.repaired],
        },
    )
    for item in out.repaired:
        assert item.old.snapshot_id is not None
        repo.delete_snapshot(item.old.snapshot_id)
    return out
