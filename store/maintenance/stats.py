"""Repository statistics: sizes, dedup and compression, per owner, per kind, per run.

- repository size: every object on the backend, by kind;
- logical size: what restoring would produce (file sizes summed over every
  snapshot, and over each owner's newest snapshot);
- unique data: the distinct blobs snapshots reference, raw (before
  compression) and stored (compressed, encrypted); dedup ratio = logical /
  unique raw, compression ratio = unique raw / unique stored;
- per run: what each backup run added (blobs no earlier run referenced).

Directory sizes are memoised by subtree ID and pages are walked once, so the
cost is the number of distinct tree pages. Read-only.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TypedDict

from store.format.snapshot import Snapshot, latest_per_owner
from store.format.tree import TreeReader
from store.ids import BlobId
from store.maintenance.inventory import take_inventory
from store.maintenance.references import page_links
from store.repository.repository import Repository


class UsageJSON(TypedDict):
    """``Usage`` as ``coffer stats --json`` prints it."""

    blobs: int
    raw_bytes: int
    stored_bytes: int
    data_raw_bytes: int


class GroupStatsJSON(TypedDict):
    """One owner or one kind, as ``coffer stats --json`` prints it."""

    name: str
    kind: str
    owners: int
    snapshots: int
    logical_bytes: int
    latest_bytes: int
    latest_items: int
    unique: UsageJSON
    dedup_ratio: float | None


class RunGrowthJSON(TypedDict):
    """What one backup run added, as ``coffer stats --json`` prints it."""

    run: str
    time: int
    snapshots: int
    logical_bytes: int
    added: UsageJSON


class RepoStatsJSON(TypedDict):
    """The whole of ``coffer stats --json``."""

    repository_bytes: int
    objects: dict[str, int]
    snapshots: int
    logical_bytes: int
    latest_bytes: int
    referenced: UsageJSON
    indexed: UsageJSON
    unreferenced_stored_bytes: int
    dedup_ratio: float | None
    compression_ratio: float | None
    owners: list[GroupStatsJSON]
    kinds: list[GroupStatsJSON]
    runs: list[RunGrowthJSON]


@dataclass
class Usage:
    """Distinct blobs and their sizes."""

    blobs: int = 0
    raw_bytes: int = 0
    stored_bytes: int = 0
    data_raw_bytes: int = 0  # file content only (no tree metadata): the base of dedup

    def to_json(self) -> UsageJSON:
        return {
            "blobs": self.blobs,
            "raw_bytes": self.raw_bytes,
            "stored_bytes": self.stored_bytes,
            "data_raw_bytes": self.data_raw_bytes,
        }

    def add(self, more: Usage) -> None:
        self.blobs += more.blobs
        self.raw_bytes += more.raw_bytes
        self.stored_bytes += more.stored_bytes
        self.data_raw_bytes += more.data_raw_bytes


@dataclass
class GroupStats:
    """An owner, or every owner of one kind."""

    name: str
    kind: str
    owners: int = 0
    snapshots: int = 0
    logical_bytes: int = 0  # over every snapshot
    latest_bytes: int = 0  # newest complete snapshot(s)
    latest_items: int = 0
    unique: Usage = field(default_factory=Usage)

    def to_json(self) -> GroupStatsJSON:
        return {
            "name": self.name,
            "kind": self.kind,
            "owners": self.owners,
            "snapshots": self.snapshots,
            "logical_bytes": self.logical_bytes,
            "latest_bytes": self.latest_bytes,
            "latest_items": self.latest_items,
            "unique": self.unique.to_json(),
            "dedup_ratio": _ratio(self.logical_bytes, self.unique.data_raw_bytes),
        }


@dataclass
class RunGrowth:
    run: str
    time_ns: int
    snapshots: int
    logical_bytes: int
    added: Usage = field(default_factory=Usage)

    def to_json(self) -> RunGrowthJSON:
        return {
            "run": self.run,
            "time": self.time_ns,
            "snapshots": self.snapshots,
            "logical_bytes": self.logical_bytes,
            "added": self.added.to_json(),
        }


@dataclass
class RepoStats:
    objects: dict[str, int] = field(default_factory=dict)  # kind -> bytes
    repository_bytes: int = 0
    snapshots: int = 0
    logical_bytes: int = 0
    latest_bytes: int = 0
    referenced: Usage = field(default_factory=Usage)
    indexed: Usage = field(default_factory=Usage)
    owners: list[GroupStats] = field(default_factory=list)
    kinds: list[GroupStats] = field(default_factory=list)
    runs: list[RunGrowth] = field(default_factory=list)

    @property
    def dedup_ratio(self) -> float | None:
        return _ratio(self.logical_bytes, self.referenced.data_raw_bytes)

    @property
    def compression_ratio(self) -> float | None:
        return _ratio(self.referenced.raw_bytes, self.referenced.stored_bytes)

    def to_json(self) -> RepoStatsJSON:
        return {
            "repository_bytes": self.repository_bytes,
            "objects": self.objects,
            "snapshots": self.snapshots,
            "logical_bytes": self.logical_bytes,
            "latest_bytes": self.latest_bytes,
            "referenced": self.referenced.to_json(),
            "indexed": self.indexed.to_json(),
            "unreferenced_stored_bytes": self.indexed.stored_bytes - self.referenced.stored_bytes,
            "dedup_ratio": self.dedup_ratio,
            "compression_ratio": self.compression_ratio,
            "owners": [o.to_json() for o in self.owners],
            "kinds": [k.to_json() for k in self.kinds],
            "runs": [r.to_json() for r in self.runs],
        }


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


class _Sizer:
    """Logical size and item count of directories, memoised by subtree ID."""

    def __init__(self, reader: TreeReader) -> None:
        self.reader = reader
        self.memo: dict[BlobId, tuple[int, int]] = {}

    def size(self, root: BlobId) -> tuple[int, int]:
        cached = self.memo.get(root)
        if cached is not None:
            return cached
        total = items = 0
        for entry in self.reader.entries(root):
            items += 1
            if entry.is_file:
                total += entry.size
            elif entry.is_dir and entry.subtree is not None:
                sub_bytes, sub_items = self.size(entry.subtree)
                total += sub_bytes
                items += sub_items
        self.memo[root] = (total, items)
        return total, items


class _Usage:
    """Walks snapshots' pages once each, counting blobs first seen."""

    def __init__(self, reader: TreeReader, sizes: dict[BlobId, tuple[int, int]]) -> None:
        self.reader = reader
        self.sizes = sizes
        self.pages: set[BlobId] = set()
        self.blobs: set[BlobId] = set()

    def add(self, snapshot: Snapshot) -> Usage:
        added = Usage()
        stack = [snapshot.tree, *snapshot.sync]
        sync = set(snapshot.sync)
        while stack:
            blob_id = stack.pop()
            if blob_id in self.pages:
                continue
            self.pages.add(blob_id)
            self._count(blob_id, added, data=False)
            if blob_id in sync:
                continue
            pages, chunks = page_links(self.reader.page(blob_id))
            for chunk in chunks:
                if chunk not in self.blobs:
                    self._count(chunk, added, data=True)
            stack.extend(p for p in pages if p not in self.pages)
        return added

    def _count(self, blob_id: BlobId, usage: Usage, *, data: bool) -> None:
        self.blobs.add(blob_id)
        raw, stored = self.sizes.get(blob_id, (0, 0))
        usage.blobs += 1
        usage.raw_bytes += raw
        usage.stored_bytes += stored
        if data:
            usage.data_raw_bytes += raw


def repository_stats(repo: Repository) -> RepoStats:
    """Compute statistics for the whole repository (may read every tree page)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    stats = RepoStats()
    inv = take_inventory(repo.backend)
    stats.objects = {
        "packs_data": inv.pack_bytes(1),
        "packs_tree": inv.pack_bytes(2),
        "index": sum(inv.indexes.values()),
        "snapshots": sum(inv.snapshots.values()),
        "keys": sum(inv.keys.values()),
        "reports": sum(inv.reports.values()),
        "other": (inv.config or 0)
        + sum(inv.sessions.values())
        + sum(inv.marks.values())
        + sum(inv.locks.values())
        + sum(inv.unknown.values()),
    }
    stats.repository_bytes = inv.total_bytes()
    snapshots = repo.list_snapshots()
    stats.snapshots = len(snapshots)
    repo.refresh_index()
    sizes: dict[BlobId, tuple[int, int]] = {}
    for blob_id, location in repo.blob_index.iter_blobs():
        sizes[blob_id] = (location.raw_length, location.length)
        stats.indexed.blobs += 1
        stats.indexed.raw_bytes += location.raw_length
        stats.indexed.stored_bytes += location.length
    reader = repo.tree_reader
    sizer = _Sizer(reader)
    logical = {s.id_hex: sizer.size(s.tree) for s in snapshots}
    latest = {s.id_hex for s in latest_per_owner(snapshots)}
    stats.logical_bytes = sum(b for b, _ in logical.values())
    stats.latest_bytes = sum(logical[h][0] for h in latest)
    # Growth per run, in time order: blobs first referenced by that run.
    overall = _Usage(reader, sizes)
    runs: dict[str, RunGrowth] = {}
    for snap in sorted(snapshots, key=lambda s: s.time_ns):
        growth = runs.setdefault(snap.run, RunGrowth(snap.run, snap.time_ns, 0, 0))
        growth.snapshots += 1
        growth.logical_bytes += logical[snap.id_hex][0]
        growth.added.add(overall.add(snap))
    stats.runs = sorted(runs.values(), key=lambda r: r.time_ns)
    stats.referenced = Usage()
    for run in stats.runs:
        stats.referenced.add(run.added)
    # Per owner and per kind: each walks its own snapshots.
    by_owner: dict[str, list[Snapshot]] = {}
    for snap in snapshots:
        by_owner.setdefault(snap.owner.identity, []).append(snap)
    kinds: dict[str, tuple[GroupStats, _Usage]] = {}
    for identity in sorted(by_owner):
        group = by_owner[identity]
        newest = max(group, key=lambda s: s.time_ns)
        owner = GroupStats(newest.owner.name, newest.owner.kind, owners=1, snapshots=len(group))
        owner.logical_bytes = sum(logical[s.id_hex][0] for s in group)
        for snap in group:
            if snap.id_hex in latest:
                owner.latest_bytes, owner.latest_items = logical[snap.id_hex]
        usage = _Usage(reader, sizes)
        kind, kind_usage = kinds.setdefault(
            newest.owner.kind,
            (GroupStats(newest.owner.kind, newest.owner.kind), _Usage(reader, sizes)),
        )
        for snap in group:
            owner.unique.add(usage.add(snap))
            kind.unique.add(kind_usage.add(snap))
        kind.owners += 1
        kind.snapshots += owner.snapshots
        kind.logical_bytes += owner.logical_bytes
        kind.latest_bytes += owner.latest_bytes
        kind.latest_items += owner.latest_items
        stats.owners.append(owner)
    stats.kinds = [kinds[k][0] for k in sorted(kinds)]
    return stats
