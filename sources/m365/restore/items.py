"""The items of record in a Microsoft 365 snapshot, as restore and ``find`` see them.

docs/layout.md fixes where things are; this module turns a snapshot tree into
:class:`SnapItem` values: one per message, contact, event (series masters and
exceptions), file, list item and channel thread, each with the chain of
folder entries above it (whose ``name`` attributes hold the original folder
names, so nothing is decoded from a path). Renderings (``.vcf``, ``.ics``,
``.html``), previous versions, ``site.json`` and ``team.json`` are not items.

Pure functions over the store's read API; thread-safe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from sources.m365.names import parse_time
from sources.m365.services import ITEM_KINDS, service_of
from store import Entry, SnapshotReader

# Records of items Microsoft 365 would not hand out (backup/failures.py, ``.failed.json``):
# ``find`` shows them (``--kind failed``); restore never sees them (nothing to put back).
RECORDS = {"failedItem": "failed"}
KIND_NAMES = tuple(sorted(set(ITEM_KINDS.values()) | set(RECORDS.values())))
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d)-(\d\d)-(\d\d)Z ")


@dataclass(frozen=True)
class SnapItem:
    """One item of record: where it is, its entry, and the folders above it.

    ``parents`` are the directory entries from the top of the service area
    (``mail``, ``onedrive``, ``libraries``...) down to the item's folder, and
    ``parent_paths`` their paths in the owner's tree.
    """

    path: str
    entry: Entry
    service: str
    kind: str
    parents: tuple[Entry, ...]
    parent_paths: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.entry.display_name

    @property
    def attrs(self) -> dict[str, str]:
        return self.entry.attrs

    @property
    def folder_names(self) -> tuple[str, ...]:
        """Original names of the folders under the service's top directory.

        For mail ``("Inbox", "Projects")``; for contacts ``("Contacts", ...)``;
        for calendars ``("Calendar",)``; for a drive the folders under its
        root; for libraries and lists the library or list name first.
        """
        return tuple(folder_name(e) for e in self.parents[1:])

    @property
    def folder(self) -> str:
        """The human folder path (what --folder globs match)."""
        return "/".join(self.folder_names)

    @property
    def graph(self) -> dict[str, Any]:
        """The Graph JSON kept in the ``graph`` attribute (messages, files), or {}."""
        raw = self.entry.attrs.get("graph")
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def title(self) -> str:
        """Subject, display name, file name or list item title."""
        attrs = self.entry.attrs
        if self.kind == "message":
            return attrs.get("subject", "")
        if self.kind == "file":
            return attrs.get("name") or self.name
        if self.kind == "list-item":
            # The file name is "<id> <title>.json" (docs/layout.md).
            stem = self.name.removesuffix(".json")
            return stem.split(" ", 1)[1] if " " in stem else ""
        if attrs.get("name"):
            return attrs["name"]
        return _title_from_name(self.name)

    @property
    def when(self) -> datetime | None:
        """Received (mail), start (events), posted (threads), else last modified."""
        if self.kind == "message":
            parsed = parse_time(self.entry.attrs.get("receivedDateTime"))
            if parsed is not None:
                return parsed
        match = _STAMP.match(self.name)
        if match and match.group(1) != "0000-00-00":
            day, hh, mm, ss = match.groups()
            return datetime.fromisoformat(f"{day}T{hh}:{mm}:{ss}+00:00")
        if self.entry.mtime_ns:
            return datetime.fromtimestamp(self.entry.mtime_ns / 1e9, UTC)
        return None

    def senders(self) -> list[str]:
        """Addresses and names of the sender (mail: from and sender), for --sender."""
        if self.kind != "message":
            return []
        graph = self.graph
        out: list[str] = []
        for key in ("from", "sender"):
            address = (graph.get(key) or {}).get("emailAddress") or {}
            out.extend(str(v) for v in (address.get("address"), address.get("name")) if v)
        return out


def folder_name(entry: Entry) -> str:
    """A folder's original name: its ``name`` attribute, else the tree name with
    the percent-encoding of docs/layout.md undone (a drive's or library's
    directory carries the root item's attributes, whose name is "root")."""
    if entry.attrs.get("type") not in ("driveRoot", "drive") and entry.attrs.get("name"):
        return entry.attrs["name"]
    return unquote(entry.display_name, errors="surrogateescape")


def _title_from_name(name: str) -> str:
    stem = name.rsplit(".", 1)[0]
    stem = _STAMP.sub("", stem)
    return re.sub(r" \[[0-9a-f]{8,16}\]$", "", stem)


def item_of(
    path: str,
    entry: Entry,
    parents: tuple[Entry, ...],
    paths: tuple[str, ...],
    *,
    records: bool = False,
) -> SnapItem | None:
    """The SnapItem for an entry, or None when it is not an item of record
    (``records``: failed-item records count too, for ``find``)."""
    if not entry.is_file:
        return None
    kind = ITEM_KINDS.get(entry.attrs.get("type", ""))
    if kind is None and records:
        kind = RECORDS.get(entry.attrs.get("type", ""))
    service = service_of(path)
    if kind is None or service is None:
        return None
    return SnapItem(path, entry, service, kind, parents, paths)


def walk_items(
    reader: SnapshotReader,
    base: str = "",
    *,
    want_dir: Callable[[str], bool] | None = None,
    on_dir: Callable[[str, Entry], None] | None = None,
) -> Iterator[SnapItem]:
    """Every item of record under ``base`` (the whole tree by default), depth first.

    ``want_dir(path)`` may prune directories (called for every directory;
    return False to skip it); ``on_dir(path, entry)`` sees every directory
    walked. ``versions/`` is never walked.
    """
    base = base.strip("/")
    start = reader.stat(base)
    if start.is_file:
        parent_path = base.rpartition("/")[0]
        chain, chain_paths = _chain_of(reader, parent_path)
        item = item_of(base, start, chain, chain_paths)
        if item is not None:
            yield item
        return
    chain, chain_paths = _chain_of(reader, base) if base else ((), ())
    yield from _walk(reader, base, chain, chain_paths, want_dir, on_dir)


def _chain_of(reader: SnapshotReader, path: str) -> tuple[tuple[Entry, ...], tuple[str, ...]]:
    """The directory entries from the service area's top down to ``path``."""
    parts = [p for p in path.split("/") if p]
    entries: list[Entry] = []
    paths: list[str] = []
    for depth in range(1, len(parts) + 1):
        sub = "/".join(parts[:depth])
        entries.append(reader.stat(sub))
        paths.append(sub)
    return tuple(entries), tuple(paths)


def _walk(
    reader: SnapshotReader,
    path: str,
    chain: tuple[Entry, ...],
    chain_paths: tuple[str, ...],
    want_dir: Callable[[str], bool] | None,
    on_dir: Callable[[str, Entry], None] | None = None,
) -> Iterator[SnapItem]:
    for entry in reader.listdir(path):
        child = f"{path}/{entry.display_name}" if path else entry.display_name
        if entry.is_dir:
            if not path and entry.display_name == "versions":
                continue
            if not path and service_of(child) is None:
                continue
            if want_dir is not None and not want_dir(child):
                continue
            if on_dir is not None:
                on_dir(child, entry)
            yield from _walk(
                reader, child, (*chain, entry), (*chain_paths, child), want_dir, on_dir
            )
            continue
        item = item_of(child, entry, chain, chain_paths)
        if item is not None:
            yield item


def read_json(reader: SnapshotReader, item: SnapItem) -> dict[str, Any]:
    """The Graph JSON that *is* the item (contacts, events, list items, threads).

    Raises ValueError when the file is not a JSON object (a damaged item).
    """
    data = json.loads(reader.open(item.entry).read())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")  # noqa: TRY004 (callers catch ValueError)
    return data
