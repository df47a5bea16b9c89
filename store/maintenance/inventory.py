"""What a repository holds on its backend, from one listing (FORMAT.md §1).

Check, prune, repair and stats all start from an :class:`Inventory`: every
object key classified by what it is, with its size. Listing is the only I/O;
nothing is opened here, so taking an inventory is cheap and read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from store.backend import Backend
from store.ids import PACK_DATA, PACK_TREE, IndexId, PackId, SnapshotId
from store.names import (
    CONFIG,
    INDEX,
    KEYS,
    LOCKS,
    MARKS,
    PACKS,
    REPORTS,
    SESSIONS,
    SNAPSHOTS,
    index_name,
    snapshot_name,
)

_KIND_BY_PREFIX = {prefix: kind for kind, prefix in PACKS.items()}


@dataclass(frozen=True, slots=True)
class PackFile:
    """A pack file as listed: its kind (from its directory), size and key."""

    pack_id: PackId
    kind: int
    size: int
    key: str


@dataclass
class Inventory:
    """Every object of a repository, by kind. Keys are backend keys."""

    config: int | None = None
    keys: dict[str, int] = field(default_factory=dict)
    packs: dict[PackId, PackFile] = field(default_factory=dict)
    indexes: dict[IndexId, int] = field(default_factory=dict)
    snapshots: dict[SnapshotId, int] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)
    reports: dict[str, int] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)
    locks: dict[str, int] = field(default_factory=dict)
    # Keys that follow no rule of the format (misplaced packs, bad names, strays).
    unknown: dict[str, int] = field(default_factory=dict)
    # The same pack ID found under both data/ and tree/ (or twice).
    duplicate_packs: list[str] = field(default_factory=list)

    def all_keys(self) -> set[str]:
        """Every key listed except session markers and locks (which come and go)."""
        out: set[str] = set(self.keys) | set(self.reports) | set(self.marks)
        if self.config is not None:
            out.add(CONFIG)
        out.update(p.key for p in self.packs.values())
        out.update(index_name(i) for i in self.indexes)
        out.update(snapshot_name(s) for s in self.snapshots)
        return out

    def pack_bytes(self, kind: int | None = None) -> int:
        return sum(p.size for p in self.packs.values() if kind is None or p.kind == kind)

    def total_bytes(self) -> int:
        return (
            (self.config or 0)
            + sum(self.keys.values())
            + self.pack_bytes()
            + sum(self.indexes.values())
            + sum(self.snapshots.values())
            + sum(self.sessions.values())
            + sum(self.reports.values())
            + sum(self.marks.values())
            + sum(self.locks.values())
            + sum(self.unknown.values())
        )


def _hex_id(text: str) -> bytes | None:
    if len(text) != 64:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def take_inventory(backend: Backend, prefix: str = "") -> Inventory:
    """List the repository (or the keys under ``prefix``) once and classify
    every key. Read-only."""
    inv = Inventory()
    for info in backend.list(prefix):
        key, size = info.key, info.size
        parts = key.split("/")
        top = parts[0] + "/"  # the prefix, as store/names.py spells it
        if key == CONFIG:
            inv.config = size
        elif top == KEYS and len(parts) == 2:
            inv.keys[key] = size
        elif top in _KIND_BY_PREFIX and len(parts) == 3:
            raw = _hex_id(parts[2])
            if raw is None or parts[1] != parts[2][:2]:
                inv.unknown[key] = size
                continue
            pack_id = PackId(raw)
            if pack_id in inv.packs:
                inv.duplicate_packs.append(key)
                continue
            inv.packs[pack_id] = PackFile(pack_id, _KIND_BY_PREFIX[top], size, key)
        elif top == INDEX and len(parts) == 2 and _hex_id(parts[1]) is not None:
            inv.indexes[IndexId(bytes.fromhex(parts[1]))] = size
        elif top == SNAPSHOTS and len(parts) == 2 and _hex_id(parts[1]) is not None:
            inv.snapshots[SnapshotId(bytes.fromhex(parts[1]))] = size
        elif top == SESSIONS and len(parts) == 2:
            inv.sessions[key] = size
        elif top == REPORTS and len(parts) == 3:
            inv.reports[key] = size
        elif top == MARKS and len(parts) == 2:
            inv.marks[key] = size
        elif top == LOCKS and len(parts) == 2:
            inv.locks[key] = size
        else:
            inv.unknown[key] = size
    return inv


__all__ = ["PACK_DATA", "PACK_TREE", "Inventory", "PackFile", "take_inventory"]
