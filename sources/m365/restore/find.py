"""``coffer find``: where each version of the matching items lives, across snapshots.

Every completed snapshot of the chosen owners is searched with the same
filters as restore (query.py). A version is one item (its Graph ID, else its
path) with one version key (changeKey / eTag, else its content); the result
lists each version once with every snapshot that holds it, oldest first, so
an administrator picks the point in time to restore from (a deleted item is
in the snapshots taken before it was deleted, and no later).

Trees are content-addressed: a folder that did not change between two
snapshots has the same tree ID, so its matches are computed once and reused
(a search across a year of daily snapshots reads each folder version once).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sources.m365.restore.items import SnapItem, item_of
from sources.m365.restore.query import ItemQuery
from sources.m365.services import service_of
from store import Entry, Layout, Repository, Snapshot, format_time


@dataclass
class Version:
    """One version of one item, and the snapshots holding it (oldest first)."""

    owner_kind: str
    owner_key: str
    owner_name: str
    item: SnapItem
    key: str
    snapshots: list[Snapshot] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)  # snapshot id -> path there

    @property
    def first(self) -> Snapshot:
        return self.snapshots[0]

    @property
    def last(self) -> Snapshot:
        return self.snapshots[-1]

    def to_map(self, layout: Layout | None = None) -> dict[str, Any]:
        item = self.item
        last = self.last
        out: dict[str, Any] = {
            "owner": {"kind": self.owner_kind, "key": self.owner_key, "name": self.owner_name},
            "service": item.service,
            "kind": item.kind,
            "title": item.title,
            "folder": item.folder,
            "when": item.when.isoformat() if item.when else None,
            "size": item.entry.size,
            "item_id": item.entry.item_id,
            "version": item.entry.version,
            "path": self.paths[last.id_hex],
            "snapshots": [
                {"id": s.id_hex, "time": format_time(s.time_ns), "path": self.paths[s.id_hex]}
                for s in self.snapshots
            ],
            "first_seen": format_time(self.first.time_ns),
            "last_seen": format_time(last.time_ns),
        }
        if layout is not None:
            out["mount_path"] = mount_path(layout, last, self.paths[last.id_hex])
        return out


def mount_path(layout: Layout, snapshot: Snapshot, path: str) -> str | None:
    """Where the item appears in ``coffer mount`` (owners/<kind>/<name>/<time>/...)."""
    name = layout.owner_names.get(snapshot.owner.identity)
    if name is None:
        return None
    history = layout.owners.get(snapshot.owner.kind, {}).get(name)
    if history is None:
        return None
    for time_name, snap in history.snapshots.items():
        if snap.snapshot_id == snapshot.snapshot_id:
            return f"owners/{snapshot.owner.kind}/{name}/{time_name}/{path}"
    return None


def _version_key(entry: Entry) -> str:
    if entry.version:
        return entry.version
    # No version key: the content identifies the version.
    return "c:" + ",".join(bytes(blob).hex()[:16] for blob, _ in entry.chunks)


class _Searcher:
    """Matches of one owner's snapshots, memoised per (tree ID, path)."""

    def __init__(self, repo: Repository, query: ItemQuery) -> None:
        self.repo = repo
        self.query = query
        self.memo: dict[tuple[bytes, str], list[SnapItem]] = {}

    def search(self, snapshot: Snapshot) -> list[SnapItem]:
        reader = self.repo.reader(snapshot)
        return self._dir(reader, reader.root_entry, "", (), ())

    def _dir(
        self,
        reader: Any,
        entry: Entry,
        path: str,
        chain: tuple[Entry, ...],
        chain_paths: tuple[str, ...],
    ) -> list[SnapItem]:
        if entry.subtree is None:
            return []
        key = (bytes(entry.subtree), path)
        # The folder chain's names are in the directory entries above, which a
        # renamed parent changes: the memo key includes the path, and the
        # chain only matters through the names (same path, same names).
        found = self.memo.get(key)
        if found is not None:
            return found
        out: list[SnapItem] = []
        for child in reader.trees.entries(entry.subtree):
            sub = f"{path}/{child.display_name}" if path else child.display_name
            if child.is_dir:
                if not path and (child.display_name == "versions" or service_of(sub) is None):
                    continue
                if not self.query.wants_dir(sub):
                    continue
                out.extend(self._dir(reader, child, sub, (*chain, child), (*chain_paths, sub)))
                continue
            item = item_of(sub, child, chain, chain_paths, records=True)
            if item is not None and self.query.matches(item):
                out.append(item)
        self.memo[key] = out
        return out


def find_versions(
    repo: Repository, snapshots: Iterable[Snapshot], query: ItemQuery
) -> list[Version]:
    """Every version of every matching item in ``snapshots`` (completed ones),
    sorted by owner, then path, then first appearance."""
    by_owner: dict[str, list[Snapshot]] = {}
    for snap in snapshots:
        if snap.partial or snap.source.get("type") != "m365":
            continue
        by_owner.setdefault(snap.owner.identity, []).append(snap)
    versions: list[Version] = []
    for snaps in by_owner.values():
        snaps.sort(key=lambda s: (s.time_ns, s.id_hex))
        searcher = _Searcher(repo, query)
        mine: dict[tuple[str, str], Version] = {}
        for snap in snaps:
            for item in searcher.search(snap):
                ident = item.entry.item_id or item.path
                vkey = _version_key(item.entry)
                version = mine.get((ident, vkey))
                if version is None:
                    owner = snap.owner
                    version = mine[(ident, vkey)] = Version(
                        owner.kind, owner.key, owner.name, item, vkey
                    )
                version.snapshots.append(snap)
                version.paths[snap.id_hex] = item.path
                version.item = item  # the newest description of it
        versions.extend(mine.values())
    versions.sort(key=lambda v: (v.owner_kind, v.owner_name.lower(), v.item.path, v.first.time_ns))
    return versions
