"""Several ``--path`` of one ``coffer restore --to-dir``: where the restore starts and
which items it takes.

One folder is restored as before: its contents go straight into the target.
One item, or several folders and items, are restored from their nearest common
folder, each keeping its name (and its place below that folder): selecting
``Inbox/a.eml`` and ``Inbox/Projects`` of a snapshot gives ``a.eml`` and
``Projects/...`` in the target. A rendering stored beside an item (a
contact's ``.vcf``, a thread's ``.html``) comes with the item it renders.

Pure functions over a snapshot reader; thread-safe as the reader is.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from store import Entry, SnapshotReader

Select = Callable[[str, Entry, list[Entry]], bool]


def path_plan(reader: SnapshotReader, paths: tuple[str, ...]) -> tuple[str, frozenset[str] | None]:
    """The folder to restore from and the chosen paths (None: everything under it).
    Raises PathNotFound (a StoreError) when a path is not in the snapshot."""
    if not paths:
        return "", None
    entries = {p: reader.stat(p) for p in paths}
    if len(paths) == 1 and entries[paths[0]].is_dir:
        return paths[0], None
    parents = [posixpath.dirname(p) for p in paths]
    base = posixpath.commonpath(parents) if all(parents) else ""
    return base, frozenset(paths)


def _under(path: str, paths: frozenset[str]) -> bool:
    return path in paths or any(path.startswith(p + "/") for p in paths)


def _chosen(path: str, entry: Entry, paths: frozenset[str]) -> bool:
    if _under(path, paths):
        return True
    rendered = entry.attrs.get("of")
    if entry.attrs.get("type") == "rendering" and rendered:
        folder = posixpath.dirname(path)
        return _under(f"{folder}/{rendered}" if folder else rendered, paths)
    return False


def combine(paths: frozenset[str] | None, other: Select | None) -> Select | None:
    """A ``select`` for restore_to_dir: the chosen paths (and their renderings), and
    ``other`` (the Microsoft 365 filters) when given."""
    if paths is None:
        return other

    def select(path: str, entry: Entry, parents: list[Entry]) -> bool:
        return _chosen(path, entry, paths) and (other is None or other(path, entry, parents))

    return select
