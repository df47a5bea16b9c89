"""Differences between two trees: items added, removed, changed.

Trees are content-addressed: a directory whose subtree ID is the same in both
is identical, and is skipped without reading it. So comparing two snapshots
of a large mailbox costs the size of what changed. Entries of a directory are
sorted by name in both trees, so one merge pass compares them with memory
bounded by the depth of the tree.

Items that moved keep their source item ID (``i``): :func:`pair_moves`
matches a removal and an addition with the same ID. Thread-safe if the
TreeReader is (it is).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from store.format.tree import Entry, TreeReader
from store.ids import BlobId

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"  # content changed
METADATA = "metadata"  # same content, other metadata (time, mode, attributes)
TYPE = "type"  # a file became a directory, or the reverse
MOVED = "moved"


@dataclass(frozen=True)
class Change:
    """One difference. ``path`` is the new path (the old one for removals)."""

    kind: str
    path: str
    old: Entry | None
    new: Entry | None
    old_path: str | None = None  # for moves


def _join(base: str, entry: Entry) -> str:
    name = os.fsdecode(entry.name)
    return f"{base}/{name}" if base else name


def _walk(reader: TreeReader, root: BlobId, base: str) -> Iterator[tuple[str, Entry]]:
    for entry in reader.entries(root):
        path = _join(base, entry)
        yield path, entry
        if entry.is_dir and entry.subtree is not None:
            yield from _walk(reader, entry.subtree, path)


def _content_differs(old: Entry, new: Entry) -> bool:
    if old.type != new.type:
        return True
    if old.is_file:
        return old.chunks != new.chunks or old.size != new.size
    if old.is_symlink:
        return old.target != new.target
    return False


def diff_trees(
    reader: TreeReader, old_root: BlobId | None, new_root: BlobId | None, base: str = ""
) -> Iterator[Change]:
    """Every difference from ``old_root`` to ``new_root`` (either may be None: empty)."""
    if old_root == new_root:
        return
    old_iter = reader.entries(old_root) if old_root is not None else iter(())
    new_iter = reader.entries(new_root) if new_root is not None else iter(())
    old = next(old_iter, None)
    new = next(new_iter, None)
    while old is not None or new is not None:
        if new is None or (old is not None and old.name < new.name):
            assert old is not None
            yield from _removed(reader, old, base)
            old = next(old_iter, None)
        elif old is None or new.name < old.name:
            yield from _added(reader, new, base)
            new = next(new_iter, None)
        else:
            yield from _compare(reader, old, new, base)
            old = next(old_iter, None)
            new = next(new_iter, None)


def _removed(reader: TreeReader, entry: Entry, base: str) -> Iterator[Change]:
    path = _join(base, entry)
    yield Change(REMOVED, path, entry, None)
    if entry.is_dir and entry.subtree is not None:
        for sub_path, sub in _walk(reader, entry.subtree, path):
            yield Change(REMOVED, sub_path, sub, None)


def _added(reader: TreeReader, entry: Entry, base: str) -> Iterator[Change]:
    path = _join(base, entry)
    yield Change(ADDED, path, None, entry)
    if entry.is_dir and entry.subtree is not None:
        for sub_path, sub in _walk(reader, entry.subtree, path):
            yield Change(ADDED, sub_path, None, sub)


def _compare(reader: TreeReader, old: Entry, new: Entry, base: str) -> Iterator[Change]:
    path = _join(base, old)
    if old.type != new.type:
        yield from _removed(reader, old, base)
        yield from _added(reader, new, base)
        return
    if old.is_dir:
        if (old.mode, old.mtime_ns, old.attrs, old.item_id) != (
            new.mode,
            new.mtime_ns,
            new.attrs,
            new.item_id,
        ):
            yield Change(METADATA, path, old, new)
        yield from diff_trees(reader, old.subtree, new.subtree, path)
        return
    if _content_differs(old, new):
        yield Change(CHANGED, path, old, new)
    elif old.encode() != new.encode():
        yield Change(METADATA, path, old, new)


def pair_moves(changes: list[Change]) -> list[Change]:
    """Replace a removal and an addition of the same item ID with one move."""
    added = {c.new.item_id: c for c in changes if c.kind == ADDED and c.new and c.new.item_id}
    removed = {c.old.item_id: c for c in changes if c.kind == REMOVED and c.old and c.old.item_id}
    moved_ids = set(added) & set(removed)
    out: list[Change] = []
    for change in changes:
        entry = change.new if change.kind == ADDED else change.old
        item_id = entry.item_id if entry is not None else None
        if item_id in moved_ids and change.kind in (ADDED, REMOVED):
            if change.kind == ADDED:
                gone = removed[item_id]
                out.append(Change(MOVED, change.path, gone.old, change.new, gone.path))
            continue
        out.append(change)
    return out
