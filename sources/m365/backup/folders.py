"""Folder hierarchies of Outlook (mail and contact folders) kept between runs.

Graph's folder delta returns folders flat, each with its ``parentFolderId``.
:class:`FolderMap` keeps ``id -> (parent id, display name)`` in the sync state
and turns it into tree paths (each name made safe) and human paths (the
original names joined with ``/``, which exclusion globs match). Folders whose
parent is not in the map hang from the service's root directory.
"""

from __future__ import annotations

from typing import Any

from sources.m365.names import safe_name

_MAX_DEPTH = 64


class FolderMap:
    def __init__(self, raw: Any = None) -> None:
        self.folders: dict[str, tuple[str, str]] = {}
        if isinstance(raw, dict):
            for fid, value in raw.items():
                if isinstance(value, list) and len(value) == 2:
                    self.folders[str(fid)] = (str(value[0] or ""), str(value[1]))

    def to_state(self) -> dict[str, list[str]]:
        return {fid: [parent, name] for fid, (parent, name) in sorted(self.folders.items())}

    def copy(self) -> FolderMap:
        other = FolderMap()
        other.folders = dict(self.folders)
        return other

    def put(self, fid: str, parent: str | None, name: str) -> None:
        self.folders[fid] = (parent or "", name)

    def drop(self, fid: str) -> None:
        self.folders.pop(fid, None)

    def chain(self, fid: str) -> list[str]:
        """Display names from the top folder down to ``fid`` (empty if unknown)."""
        names: list[str] = []
        current: str | None = fid
        seen: set[str] = set()
        while current and current in self.folders and current not in seen:
            if len(names) >= _MAX_DEPTH:
                break
            seen.add(current)
            parent, name = self.folders[current]
            names.append(name)
            current = parent
        return list(reversed(names))

    def tree_path(self, root: str, fid: str) -> str | None:
        chain = self.chain(fid)
        if not chain:
            return None
        return "/".join([root, *(safe_name(n) for n in chain)])

    def human_path(self, fid: str) -> str:
        return "/".join(self.chain(fid))

    def depth(self, fid: str) -> int:
        return len(self.chain(fid))
