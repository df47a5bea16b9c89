"""``--to-dir`` for Microsoft 365 snapshots: which files of the tree the filter keeps.

A restore to a local directory writes the snapshot's own files (sources/localdir/
does the writing, safely, for every kind of snapshot; this module is only its
Microsoft 365 ``select``): ``.eml`` as backed up, byte for byte;
contacts and events as their Graph JSON with the ``.vcf`` / ``.ics`` beside
them; files; list items and Teams threads as JSON (with each thread's
``.html``). With filters, :func:`selector` keeps the items the filter
chooses and the renderings of those items; files that are not items
(``site.json``, ``team.json``, previous versions) are kept only when no
item filter narrows the restore (a service filter still applies).
"""

from __future__ import annotations

from collections.abc import Callable

from sources.m365.restore.items import item_of
from sources.m365.restore.query import ItemQuery, prefix_matches
from sources.m365.services import service_of
from store import Entry, PathNotFound, SnapshotReader


def selector(
    reader: SnapshotReader, query: ItemQuery, base: str = ""
) -> Callable[[str, Entry, list[Entry]], bool]:
    """The ``select`` argument of restore_to_dir for ``query`` (see the module docstring)."""
    base = base.strip("/")
    base_parts = [p for p in base.split("/") if p]
    above: list[Entry] = []
    for depth in range(1, len(base_parts) + 1):
        entry = reader.stat("/".join(base_parts[:depth]))
        if entry.is_dir:
            above.append(entry)

    def chosen(path: str, entry: Entry, parents: list[Entry]) -> bool:
        chain = (*above, *parents)
        parts = path.split("/")
        chain_paths = tuple("/".join(parts[: i + 1]) for i in range(len(chain)))
        item = item_of(path, entry, chain, chain_paths)
        if item is not None:
            return query.matches(item)
        if entry.attrs.get("type") == "rendering" and entry.attrs.get("of"):
            folder = path.rpartition("/")[0]
            sibling_path = f"{folder}/{entry.attrs['of']}" if folder else entry.attrs["of"]
            try:
                sibling = reader.stat(sibling_path)
            except PathNotFound:
                return False
            rendered = item_of(sibling_path, sibling, chain, chain_paths)
            return rendered is not None and query.matches(rendered)
        if query.narrows_items:
            return False
        service = service_of(path)
        if service is None:
            return not query.services and _included(path, query)
        return query.wants_service(service) and _included(path, query)

    return chosen


def _included(path: str, query: ItemQuery) -> bool:
    return not query.includes or prefix_matches(path, query.includes)
