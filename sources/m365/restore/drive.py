"""Restoring files: OneDrive and SharePoint document libraries, with their timestamps.

Every file goes up through an upload session (driveitem-createuploadsession.md)
whose ``item`` carries the original ``fileSystemInfo`` (created and last
modified times), in fragments of 5 MiB (a multiple of 320 KiB); an empty
file, which a session cannot carry, is a simple PUT followed by a PATCH of
its ``fileSystemInfo``. Folders are found by name, or created.

Where: ``--to original`` puts a file back in its own drive (the drive ID
kept in the snapshot; the user's current OneDrive or the library of the same
name if that drive is gone) at its own path. Another user's OneDrive or a
site's default library gets ``<restore folder>/`` first, then the library or
extra drive's name for files that came from one, then the path.

A name is one path component: names from the snapshot are checked (no ``/``,
``\\``, ``..``, control characters) and percent-encoded in every URL, so
nothing can land outside the target folder. A file of the same name is the
same file when its size and content hash (quickXorHash, else SHA-256/SHA-1)
are Graph's for the backed-up file: already there (its times are set if they
differ: an empty file's PATCH may have been cut off by a crash). With other content it is
another version: ``replace`` uploads over it (the old content stays in the
file's version history), ``keep-both`` uploads beside it (``rename``: Graph
names the new copy ``name 1.ext``).
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

from sources.m365.graph.errors import GraphError, ItemGone
from sources.m365.restore.common import (
    ABSENT,
    KEEP_BOTH,
    OTHER,
    REPLACE,
    SAME,
    ServiceRun,
    size_of,
)
from sources.m365.restore.items import SnapItem, folder_name
from sources.m365.restore.target import check_folder_name
from sources.m365.restore.uploads import DRIVE_FRAGMENT, SessionLost, upload

HASHES = ("quickXorHash", "sha256Hash", "sha1Hash")
CONFLICT = {ABSENT: "fail", REPLACE: "replace", KEEP_BOTH: "rename"}


def check_name(name: str) -> str:
    """A file or folder name from a snapshot, safe as one path component (ValueError)."""
    if "\x00" in name:
        raise ValueError(f"unusable name {name!r}")
    return check_folder_name(name)


def same_file(ours: dict[str, str], size: int, row: dict[str, Any]) -> bool:
    """True when the drive item ``row`` holds the backed-up content."""
    if "file" not in row or size_of(row) != size:
        return False
    theirs = (row.get("file") or {}).get("hashes") or {}
    for name in HASHES:
        if ours.get(name) and theirs.get(name):
            return str(ours[name]).lower() == str(theirs[name]).lower()
    return False  # nothing to compare the content with: treat it as another version


def _same_instant(theirs: Any, ours: str) -> bool:
    """Whether two of Graph's timestamps name the same second (Graph may add
    fractions or drop them)."""
    return isinstance(theirs, str) and theirs[:19] == ours[:19]


def file_system_info(graph: dict[str, Any]) -> dict[str, str]:
    info = graph.get("fileSystemInfo") or {}
    out = {
        k: str(info.get(k) or graph.get(k) or "")
        for k in ("createdDateTime", "lastModifiedDateTime")
    }
    return {k: v for k, v in out.items() if v}


class DriveWriter:
    """Restores the files of one owner's drives (see the module docstring).

    ``target_drive(item)`` resolves, for an item, the drive ID and the folder
    names (under the drive's root) that its own folders go under.
    """

    def __init__(self, run: ServiceRun, owner_kind: str) -> None:
        self.run = run
        self.owner_kind = owner_kind
        self._drives: dict[str, tuple[str, tuple[str, ...]] | None] = {}
        self._folders: dict[tuple[str, tuple[str, ...]], str | None] = {}
        self._children: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._lock = threading.RLock()

    # -- where -------------------------------------------------------------------------------

    def _drive_dir(self, item: SnapItem) -> tuple[int, str]:
        """(index in item.parents of the drive's directory, the drive's display name)."""
        depth = 1 if item.path.startswith("libraries/") else 0
        entry = item.parents[depth]
        return depth, folder_name(entry)

    def target_drive(self, item: SnapItem) -> tuple[str, tuple[str, ...]] | None:
        depth, name = self._drive_dir(item)
        drive_dir = item.parents[depth]
        key = item.parent_paths[depth]
        with self._lock:
            if key in self._drives:
                return self._drives[key]
            resolved = self._resolve(drive_dir.item_id or "", name, depth, item)
            self._drives[key] = resolved
            return resolved

    def _resolve(
        self, item_id: str, name: str, depth: int, item: SnapItem
    ) -> tuple[str, tuple[str, ...]] | None:
        run = self.run
        placement = run.placement
        client = run.client
        if placement.original:
            drive_id = item_id.removeprefix("drive:")
            if drive_id:
                try:
                    client.get_json(f"/drives/{drive_id}", run.res, params={"$select": "id"})
                    return drive_id, ()
                except ItemGone:
                    pass
            if depth == 0 and placement.user_id:
                found = client.get_json(f"/users/{placement.user_id}/drive", run.res)
                return str(found["id"]), ()
            if placement.site_id:
                for drive in client.list_all(f"/sites/{placement.site_id}/drives", run.res):
                    if str(drive.get("name", "")).casefold() == name.casefold():
                        return str(drive["id"]), ()
            return None
        if placement.site_id:
            drive = client.get_json(f"/sites/{placement.site_id}/drive", run.res)
        else:
            drive = client.get_json(f"/users/{placement.user_id}/drive", run.res)
        extra: tuple[str, ...] = ()
        if depth == 1 or item.path.startswith("onedrive-"):
            extra = (name if depth == 1 else name.removeprefix("onedrive-"),)
        return str(drive["id"]), (*placement.base, *extra)

    def _folder_path(self, item: SnapItem) -> tuple[str, ...]:
        depth, _ = self._drive_dir(item)
        return tuple(folder_name(e) for e in item.parents[depth + 1 :])

    # -- folders -----------------------------------------------------------------------------

    def _lookup(self, drive_id: str, parent: str, name: str) -> dict[str, Any] | None:
        try:
            return self.run.client.get_json(
                f"/drives/{drive_id}/items/{parent}:/{quote(name, safe='')}:", self.run.res
            )
        except ItemGone:
            return None

    def folder_id(self, drive_id: str, path: tuple[str, ...]) -> str | None:
        """The folder at ``path`` under the drive's root, created when missing
        (None in a dry run if it does not exist). Raises ValueError for an
        unusable name, GraphError when a file stands in the way."""
        key = (drive_id, path)
        with self._lock:
            if key in self._folders:
                return self._folders[key]
            if not path:
                self._folders[key] = "root"
                return "root"
            parent = self.folder_id(drive_id, path[:-1])
            name = check_name(path[-1])
            found: str | None = None
            if parent is not None:
                existing = self._lookup(drive_id, parent, name)
                if existing is not None and "folder" not in existing:
                    raise GraphError(
                        409, "nameAlreadyExists", f"a file named {name!r} is in the way"
                    )
                if existing is not None:
                    found = str(existing["id"])
                elif not self.run.dry_run:
                    found = self._create_folder(drive_id, parent, name)
            self._folders[key] = found
            return found

    def _create_folder(self, drive_id: str, parent: str, name: str) -> str:
        body = {"name": name, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}

        def find() -> dict[str, Any] | None:
            existing = self._lookup(drive_id, parent, name)
            # A file of that name is no folder to restore into.
            return existing if existing is not None and "folder" in existing else None

        return self.run.create_container(
            f"/drives/{drive_id}/items/{parent}/children", body, find, f"creating folder {name!r}"
        )

    def children(self, drive_id: str, folder: str | None) -> dict[str, dict[str, Any]]:
        if folder is None:
            return {}
        key = (drive_id, folder)
        with self._lock:
            found = self._children.get(key)
            if found is None:
                rows = self.run.client.list_all(
                    f"/drives/{drive_id}/items/{folder}/children",
                    self.run.res,
                    params={"$top": "999"},
                )
                found = self._children[key] = {str(r.get("name", "")).casefold(): r for r in rows}
            return found

    # -- one file ----------------------------------------------------------------------------

    def restore(self, item: SnapItem) -> None:
        run = self.run
        graph = item.graph
        name = item.attrs.get("name") or str(graph.get("name") or "")
        try:
            name = check_name(name)
            names = tuple(check_name(n) for n in self._folder_path(item))
        except ValueError as exc:
            run.fail(item.path, f"unsafe name refused: {exc}")
            return
        where = self.target_drive(item)
        if where is None:
            run.fail(item.path, "its drive no longer exists and has no counterpart")
            return
        drive_id, base = where
        try:
            folder = self.folder_id(drive_id, (*base, *names))
        except ValueError as exc:
            run.fail(item.path, f"unsafe folder name refused: {exc}")
            return
        existing = self.children(drive_id, folder).get(name.casefold())
        ours = {k: item.attrs[k] for k in HASHES if item.attrs.get(k)}
        size = item.entry.size
        if existing is None:
            found = ABSENT
        elif "folder" in existing or "package" in existing:
            run.fail(item.path, "a folder of that name is in the target")
            return
        else:
            found = SAME if same_file(ours, size, existing) else OTHER
        if found == SAME and existing is not None and not run.dry_run:
            self._times(drive_id, existing, graph)
        action = run.settle(item.path, found)
        if action is None:
            return
        assert folder is not None
        conflict = CONFLICT[ABSENT if action == "create" else action]
        try:
            made = self._upload(drive_id, folder, name, item, graph, conflict, ours)
        except SessionLost as exc:
            run.fail(item.path, str(exc))
            return
        with self._lock:
            self.children(drive_id, folder)[str(made.get("name", name)).casefold()] = made
        if action == REPLACE:
            run.done("replaced", item.path)
        else:
            run.done("kept_both" if action == KEEP_BOTH else "created", item.path)

    def _times(self, drive_id: str, existing: dict[str, Any], graph: dict[str, Any]) -> None:
        """Give a file already there its backed-up times when it lacks them: an
        empty file is a PUT then a PATCH of its times, and a restore killed
        between the two left it with the time of the PUT, which a rerun then
        took as already there (the crash campaign's seed 22 found it).
        Idempotent; a file whose times match costs no request."""
        info = file_system_info(graph)
        theirs = existing.get("fileSystemInfo") or {}
        wanted = info.get("lastModifiedDateTime")
        if not wanted or _same_instant(theirs.get("lastModifiedDateTime"), wanted):
            return
        self._set_times(drive_id, str(existing["id"]), info)

    def _set_times(self, drive_id: str, item_id: str, info: dict[str, str]) -> dict[str, Any]:
        """PATCH the item's ``fileSystemInfo`` (idempotent); returns Graph's item."""
        patched = self.run.client.send(
            "PATCH",
            f"/drives/{drive_id}/items/{item_id}",
            self.run.res,
            json_body={"fileSystemInfo": info},
            idempotent=True,
        )
        return dict(patched.data or {})

    def _upload(
        self,
        drive_id: str,
        folder: str,
        name: str,
        item: SnapItem,
        graph: dict[str, Any],
        conflict: str,
        ours: dict[str, str],
    ) -> dict[str, Any]:
        run = self.run
        size = item.entry.size
        info = file_system_info(graph)
        path = f"/drives/{drive_id}/items/{folder}:/{quote(name, safe='')}:"

        def landed() -> dict[str, Any] | None:
            found = self._lookup(drive_id, folder, name)
            if found is not None and same_file(ours, size, found):
                return found
            if found is not None and not ours and size_of(found) == size:
                return found
            return None

        if size == 0:
            made = run.create_once(
                lambda: run.client.send(
                    "PUT",
                    f"{path}/content",
                    run.res,
                    data=b"",
                    params={"@microsoft.graph.conflictBehavior": conflict},
                    idempotent=False,
                ),
                lambda: self._lookup(drive_id, folder, name) if conflict != "rename" else None,
                f"uploading {name!r}",
            )
            if info:
                made = self._set_times(drive_id, str(made["id"]), info) or made
            return made
        source = run.reader.open(item.entry)
        body: dict[str, Any] = {"item": {"@microsoft.graph.conflictBehavior": conflict}}
        if info:
            body["item"]["fileSystemInfo"] = info
        for _attempt in range(3):
            session = run.client.send(
                "POST", f"{path}/createUploadSession", run.res, json_body=body, idempotent=True
            )
            url = str(session.data["uploadUrl"])
            try:
                result = upload(run, url, size, source.pread, fragment=DRIVE_FRAGMENT)
            except SessionLost:
                continue
            if result:
                return result
            found = landed() if conflict != "rename" else None
            if found is not None:
                return found
            if result is not None:
                return {"name": name}
        raise SessionLost(f"the upload of {name!r} kept failing")
