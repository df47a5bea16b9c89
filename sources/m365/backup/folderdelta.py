"""The folder round of an Outlook service (mail, contacts): one delta round over its
folder hierarchy, then each folder placed in the tree.

Graph's folder delta (``/mailFolders/delta``, ``/contactFolders/delta``)
returns folders flat with their ``parentFolderId``; a removed folder carries
``@removed``. :func:`folder_round` follows the state's ``folders_delta`` link
(or enumerates from the start, which also removes folders the old map had and
Graph no longer lists) and falls back to a full enumeration on a 410.
:func:`place_folders` then removes what was removed, drops excluded folders,
moves renamed or moved ones (their items' content is reused), records new or
changed ones as directories, and returns the folders whose items to read, top
folders first. The service writes the new map and link to its state when it
has placed them (its own order of publishing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sources.m365.backup.context import ServiceContext, graph_json
from sources.m365.backup.folders import FolderMap
from sources.m365.graph.errors import ResyncRequired


@dataclass
class FolderRound:
    """What one folder delta round found."""

    fmap: FolderMap  # every folder now: id -> (parent id, name)
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)  # new or changed: Graph JSON
    removed: set[str] = field(default_factory=set)
    link: str | None = None  # the delta link for the next run


def folder_round(
    ctx: ServiceContext, old: FolderMap, initial: str, headers: dict[str, str], what: str
) -> FolderRound:
    """The round from the state's ``folders_delta`` link, else from ``initial``.

    A 410 (ResyncRequired) on the link enumerates again from ``initial`` and is
    noted in the report as ``what``. Raises GraphError as the client does.
    """
    link = ctx.state.get("folders_delta")
    try:
        return _walk(ctx, old, link or initial, headers, incremental=bool(link))
    except ResyncRequired:
        ctx.report.resynced.append(what)
        return _walk(ctx, old, initial, headers, incremental=False)


def _walk(
    ctx: ServiceContext, old: FolderMap, url: str, headers: dict[str, str], *, incremental: bool
) -> FolderRound:
    found = FolderRound(old.copy() if incremental else FolderMap())
    for page in ctx.client.pages(url, ctx.res, headers=headers):
        for folder in page.values:
            fid = str(folder.get("id", ""))
            if not fid:
                continue
            if "@removed" in folder:
                found.removed.add(fid)
                found.fmap.drop(fid)
                found.changed.pop(fid, None)
                continue
            name = str(folder.get("displayName") or fid)
            found.fmap.put(fid, folder.get("parentFolderId"), name)
            found.changed[fid] = folder
        found.link = page.delta_link or found.link
    if not incremental:
        found.removed |= set(old.folders) - set(found.fmap.folders)
    return found


def place_folders(
    ctx: ServiceContext,
    old: FolderMap,
    found: FolderRound,
    root: str,
    links: dict[str, str],
    *,
    kind: str,
    prefix: tuple[str, ...] = (),
) -> list[tuple[str, str]]:
    """Apply ``found`` to the tree under ``root``; (folder ID, tree path) of the
    folders to read, top folders first.

    A folder is excluded when the configuration's folder exclusions match
    its human path (``prefix`` and the display names from the top down) or
    that of a folder above it; it is removed from the tree and its delta link
    dropped from ``links`` (as is a removed folder's). A new or changed folder
    is recorded as a directory of type ``kind`` carrying its Graph JSON (or,
    for a folder an older run recorded and Graph did not report changed, its
    ID and name).
    """
    fmap = found.fmap
    for fid in found.removed:
        path = ctx.lookup(fid) or old.tree_path(root, fid)
        if path:
            ctx.remove(path)
        links.pop(fid, None)
    todo: list[tuple[str, str]] = []
    for fid in sorted(fmap.folders, key=fmap.depth):
        path = fmap.tree_path(root, fid)
        if path is None:
            continue
        current = ctx.lookup(fid)
        chain = fmap.chain(fid)
        if any(
            ctx.selection.folder_excluded("/".join([*prefix, *chain[: i + 1]]))
            for i in range(len(chain))
        ):
            if current is not None:
                ctx.remove(current, count=False)
            links.pop(fid, None)
            continue
        if current is not None and current != path:
            ctx.move_tree(current, path)
        if fid in found.changed or current is None:
            folder = found.changed.get(fid) or {"id": fid, "displayName": fmap.folders[fid][1]}
            attrs = {
                "type": kind,
                "id": fid,
                "name": str(folder.get("displayName", "")),
                "graph": graph_json(folder),
            }
            ctx.add_dir(path, item_id=fid, attrs=attrs)
        todo.append((fid, path))
    return todo
