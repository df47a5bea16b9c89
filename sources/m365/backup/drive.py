"""Drives (OneDrive and SharePoint document libraries): files with their metadata.

Layout (docs/layout.md): the drive's tree under ``base`` (``onedrive`` for a
user, ``libraries/<library>`` for a site), each file byte for byte with its
Graph JSON (hashes, timestamps, eTag/cTag, sharing permissions); folders are
directories with theirs; previous versions, when asked for, under
``versions/<base>/<path>/<version id>``.

Incremental by ``/drives/{id}/root/delta``. Delta gives no paths (a renamed
folder does not list its descendants), so the state keeps the folder
hierarchy (id -> parent, name) and paths are rebuilt from it; a renamed or
moved folder moves its stored subtree without reading anything. A file whose
content key (size and quickXorHash; delta leaves cTag out on OneDrive for
Business) did not change is re-described, not downloaded. Every
download is checked against Graph's size and quickXorHash (or SHA hashes);
an expired download URL is refreshed by fetching the item again. OneNote
notebooks (``package`` items without a content stream) are recorded as
metadata with a note. A 410 starts a fresh enumeration (at Graph's
``Location`` when given) that still skips unchanged files.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import IO, Any, cast

from sources.m365.backup.context import ServiceContext, graph_json
from sources.m365.backup.failures import Failures
from sources.m365.backup.folders import FolderMap
from sources.m365.graph.client import DownloadUrlExpired, TooLarge
from sources.m365.graph.errors import GraphError, ItemGone, ResyncRequired, permanent_item_error
from sources.m365.graph.hashing import HashingSink
from sources.m365.names import safe_name, time_ns

DOWNLOAD_ATTEMPTS = 3
# driveitem-delta.md, "Scanning permissions hierarchies": with hierarchicalsharing,
# delta shows the shared facet only where sharing is set (the roots of permission
# hierarchies, and items whose own sharing changed), so only those have their
# permissions read; deltashowsharingchanges (which needs the two others) marks the
# items listed because their sharing changed with @microsoft.graph.sharedChanged.
DELTA_HEADERS = {
    "Prefer": "hierarchicalsharing, deltashowremovedasdeleted, deltatraversepermissiongaps, "
    "deltashowsharingchanges"
}
SHARED_CHANGED = "@microsoft.graph.sharedChanged"
ITEM_ATTEMPTS = 3  # server errors on one file's content before it is the file's own
PERMISSION_FAILURES = (400, 403, 404, 405, 501)
# SharePoint rewrites these on download (rclone's OneDrive docs, "Unexpected file
# size/hash differences on Sharepoint"): their bytes need not match the metadata.
OFFICE_EXTENSIONS = (".docx", ".xlsx", ".pptx", ".docm", ".xlsm", ".pptm", ".doc", ".xls", ".ppt")
VANISHED = "\0vanished"  # _fetch_verified: the file was deleted while the run read it


@dataclass
class _DriveRound:
    fmap: FolderMap
    root: str | None
    incremental: bool = False
    orphans: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def content_key(item: dict[str, Any]) -> str | None:
    """What identifies a file's content: size and hash (OneDrive for Business leaves
    cTag out of delta answers, driveitem-delta.md "Remarks"), else the cTag."""
    hashes = (item.get("file") or {}).get("hashes") or {}
    digest = hashes.get("quickXorHash") or hashes.get("sha256Hash") or hashes.get("sha1Hash")
    if digest:
        return f"{item.get('size')}:{digest}"
    if item.get("cTag"):
        return f"c:{item['cTag']}"
    return None


def file_attrs(item: dict[str, Any]) -> dict[str, str]:
    attrs = {
        "type": "driveItem",
        "id": str(item.get("id", "")),
        "name": str(item.get("name", "")),
        "graph": graph_json(item, drop=("@microsoft.graph.downloadUrl",)),
    }
    for key in ("eTag", "cTag", "size", "webUrl", "lastModifiedDateTime"):
        if item.get(key) is not None:
            attrs[key] = str(item[key])
    file = item.get("file") or {}
    if file.get("mimeType"):
        attrs["mimeType"] = str(file["mimeType"])
    for name, value in (file.get("hashes") or {}).items():
        attrs[name] = str(value)
    content = content_key(item)
    if content:
        attrs["contentKey"] = content
    return attrs


class DriveBackup:
    """One drive into ``base`` (see the module docstring)."""

    def __init__(self, ctx: ServiceContext, drive_id: str, base: str) -> None:
        self.ctx = ctx
        self.drive_id = drive_id
        self.base = base
        drives = ctx.state.setdefault("drives", {})
        self.state: dict[str, Any] = drives.setdefault(drive_id, {})
        self.permissions = True
        self.versions = ctx.settings.onedrive_versions
        self.failures = Failures(ctx, self.state)
        # A SharePoint document library (not a OneDrive) rewrites Office files.
        self.library = base.startswith("libraries/")

    # -- paths -----------------------------------------------------------------------------

    def _path(self, rnd: _DriveRound, parent: str | None, name: str) -> str | None:
        if parent is None:
            return None
        if parent == rnd.root:
            return f"{self.base}/{safe_name(name)}"
        parent_path = rnd.fmap.tree_path(self.base, parent)
        if parent_path is None or not self._rooted(rnd, parent):
            return None
        return f"{parent_path}/{safe_name(name)}"

    def _rooted(self, rnd: _DriveRound, fid: str) -> bool:
        """True when ``fid``'s chain of parents ends at the drive's root."""
        seen: set[str] = set()
        current = fid
        while current in rnd.fmap.folders and current not in seen:
            seen.add(current)
            current = rnd.fmap.folders[current][0]
        return current == rnd.root

    # -- the run ---------------------------------------------------------------------------

    def run(self, drive: dict[str, Any]) -> None:
        ctx = self.ctx
        link = self.state.get("delta")
        first = f"/drives/{self.drive_id}/root/delta"
        if ctx.entry(self.base) is None:
            ctx.add_dir(
                self.base,
                item_id=f"drive:{self.drive_id}",
                attrs={"type": "drive", "id": self.drive_id, "graph": graph_json(drive)},
            )
        try:
            self._round(str(link) if link else first, incremental=bool(link))
        except ResyncRequired as exc:
            ctx.report.resynced.append(self.base)
            self._round(exc.location or first, incremental=False)

    def _round(self, url: str, *, incremental: bool) -> None:
        ctx = self.ctx
        fmap = FolderMap(self.state.get("folders")) if incremental else FolderMap()
        root = self.state.get("root") if incremental else None
        rnd = _DriveRound(fmap, str(root) if root else None, incremental)
        link: str | None = None
        skipped_before = ctx.report.items_skipped
        for page in ctx.client.pages(url, ctx.res, headers=DELTA_HEADERS):
            for item in page.values:
                self._item(rnd, item)
            link = page.delta_link or link
        ctx.drain()
        if link is None:
            return  # the round did not complete: nothing of it is published
        self._retry_failed()
        self.failures.finish()
        for items in rnd.orphans.values():
            for item in items:
                ctx.skip(
                    f"{self.base}/…/{item.get('name')}",
                    "its parent folder never appeared in the drive's change list",
                )
        if not incremental:
            # A complete enumeration: whatever it did not list is gone.
            ctx.session.full_scope(self.base)
        if ctx.report.items_skipped == skipped_before:
            # Advanced only when nothing was skipped: a skipped file must come back
            # in the next round (files stored meanwhile are then unchanged). Files
            # that failed for good are recorded (failures.py) and do not hold it.
            self.state["delta"] = link
        self.state["folders"] = rnd.fmap.to_state()
        self.state["root"] = rnd.root
        ctx.publish()

    def _item(self, rnd: _DriveRound, item: dict[str, Any]) -> None:
        ctx = self.ctx
        iid = str(item.get("id", ""))
        if not iid:
            return
        if "deleted" in item or "@removed" in item:
            current = ctx.lookup(iid)
            if current is not None and current != self.base:
                ctx.remove(current)
            rnd.fmap.drop(iid)
            return
        if "root" in item:
            rnd.root = iid
            ctx.add_dir(
                self.base,
                item_id=f"drive:{self.drive_id}",
                attrs={**file_attrs(item), "type": "driveRoot"},
                mtime_ns=time_ns(item.get("lastModifiedDateTime")),
            )
            self._adopt(rnd, iid)
            return
        parent = (item.get("parentReference") or {}).get("id")
        path = self._path(rnd, str(parent) if parent else None, str(item.get("name") or iid))
        if path is None:
            rnd.orphans.setdefault(str(parent), []).append(item)
            return
        if "folder" in item or "package" in item:
            self._folder(rnd, item, path)
        elif "file" in item:
            self._file(rnd, item, path)
        else:
            ctx.note(
                "items that are neither files nor folders (shortcuts to other drives) "
                "are not backed up"
            )
            ctx.report.add("items_excluded")

    def _adopt(self, rnd: _DriveRound, fid: str) -> None:
        """Process the items that were waiting for folder ``fid``."""
        for child in rnd.orphans.pop(fid, []):
            self._item(rnd, child)

    def _folder(self, rnd: _DriveRound, item: dict[str, Any], path: str) -> None:
        ctx = self.ctx
        iid = str(item["id"])
        name = str(item.get("name") or iid)
        rnd.fmap.put(iid, str((item.get("parentReference") or {}).get("id") or ""), name)
        current = ctx.lookup(iid)
        if current is not None and current != path:
            ctx.move_tree(current, path)
        attrs = file_attrs(item)
        attrs["type"] = "driveFolder"
        if "package" in item:
            attrs["type"] = "package"
            reason = "OneNote notebook: Graph offers no content stream; metadata recorded"
            attrs["coffer.note"] = reason
            ctx.note(f"{reason} ({path})")
            ctx.report.count("packages")
        version = str(item.get("eTag") or "")
        if not (version and self._unchanged(rnd, path, version, item)):
            self._sharing(item, attrs)
            ctx.add_dir(
                path,
                item_id=iid,
                attrs=attrs,
                version=version,
                mtime_ns=time_ns(item.get("lastModifiedDateTime")),
            )
        self._adopt(rnd, iid)

    def _sharing(self, item: dict[str, Any], attrs: dict[str, str]) -> None:
        """Record the item's permissions when it has the ``shared`` facet: with
        ``Prefer: hierarchicalsharing`` only the roots of permission hierarchies
        (where sharing is set, or was removed) carry it; an item that inherits its
        sharing has it from the nearest such ancestor, whose permissions are
        recorded. Reading permissions costs 5 SharePoint resource units per item:
        reading them for every file made a medium tenant's backup wait on
        throttling for minutes."""
        if self.permissions and "shared" in item:
            self._permissions(item, attrs)

    def _permissions(self, item: dict[str, Any], attrs: dict[str, str]) -> None:
        """Add the item's sharing permissions (links, grants) to ``attrs``."""
        ctx = self.ctx
        url = f"/drives/{self.drive_id}/items/{item['id']}/permissions"
        try:
            perms = list(ctx.client.list_all(url, ctx.res))
        except ItemGone:
            return
        except GraphError as exc:
            if exc.status in PERMISSION_FAILURES:
                self.permissions = False
                ctx.note(f"sharing permissions could not be read ({exc.status} {exc.code})")
                return
            raise
        attrs["permissions"] = graph_json({"value": perms})

    def _unchanged(self, rnd: _DriveRound, path: str, version: str, item: dict[str, Any]) -> bool:
        """True (and the stored item kept) when the item at ``path`` is as stored.

        Sharing an item changes neither its eTag nor its cTag, but delta lists it
        (driveitem-delta.md, "Scanning permissions hierarchies") marked
        ``@microsoft.graph.sharedChanged`` (``Prefer: deltashowsharingchanges``). So in
        an incremental round an item so marked with its stored eTag has its
        permissions read again and compared with the stored ones; others keep
        theirs. A full enumeration keeps the stored permissions of items whose eTag
        did not change."""
        ctx = self.ctx
        if not (rnd.incremental and self.permissions) or not item.get(SHARED_CHANGED):
            return ctx.unchanged(path, version)
        stored = ctx.entry(path)
        if stored is None or stored.version != version:
            return False
        fresh: dict[str, str] = {}
        self._sharing(item, fresh)
        if fresh.get("permissions") != stored.attrs.get("permissions"):
            return False
        return ctx.unchanged(path, version)

    def _file(self, rnd: _DriveRound, item: dict[str, Any], path: str) -> None:
        ctx = self.ctx
        iid = str(item["id"])
        size = int(item.get("size") or 0)
        if ctx.excluded(path, size):
            return
        version = str(item.get("eTag") or item.get("cTag") or "")
        if version and self._unchanged(rnd, path, version, item):
            return
        attrs = file_attrs(item)
        mtime = time_ns(
            (item.get("fileSystemInfo") or {}).get("lastModifiedDateTime")
            or item.get("lastModifiedDateTime")
        )
        old = ctx.lookup(iid)
        if old is not None:
            stored = ctx.entry(old)
            key = content_key(item)
            if (
                stored is not None
                and stored.is_file
                and key is not None
                and stored.attrs.get("contentKey") == key
                and stored.size == size
            ):
                # Renamed, moved or re-described: the content is the same.
                self._sharing(item, attrs)
                with ctx.group():  # never both places, nor neither, in a checkpoint
                    ctx.add_file(
                        path,
                        version=version,
                        item_id=iid,
                        attrs=attrs,
                        mtime_ns=mtime,
                        reuse_from=old,
                    )
                    if old != path:
                        ctx.remove(old, count=False)
                return
        ctx.submit(lambda: self._download(item, path, version, attrs, mtime, old))

    def _download(
        self,
        item: dict[str, Any],
        path: str,
        version: str,
        attrs: dict[str, str],
        mtime: int,
        old: str | None,
    ) -> None:
        ctx = self.ctx
        iid = str(item["id"])
        self._sharing(item, attrs)
        # The file, its move away from ``old`` and its previous versions are one unit:
        # an unchanged file is not looked at again, so a checkpoint holding the file
        # without its versions would lose them for good.
        with ctx.group(), ctx.content_sink() as spool:
            try:
                problem = self._fetch_verified(item, cast(IO[bytes], spool), attrs)
            except GraphError as exc:  # only permanent ones come out: the file's own
                self.failures.record(iid, path, exc)
                self._keep_previous(path, old)
                return
            if problem == VANISHED:
                # Deleted while the run read it: the next delta round says so.
                ctx.report.debug_note(f"{path}: deleted during the run")
                self.failures.resolved(iid)
                return
            if problem is not None:
                if problem:
                    ctx.skip(path, problem)
                    self._keep_previous(path, old)
                return
            ctx.add_file(path, spool, version=version, item_id=iid, attrs=attrs, mtime_ns=mtime)
            self.failures.resolved(iid)
            if old is not None and old != path:
                ctx.remove(old, count=False)
            if self.versions:
                self._versions(item, path)

    def _keep_previous(self, path: str, old: str | None) -> None:
        """A file that could not be read keeps its previous copy, if there is one (a
        full enumeration would otherwise drop it)."""
        for candidate in (path, old):
            entry = self.ctx.entry(candidate) if candidate else None
            if (
                entry is not None
                and entry.version is not None
                and self.ctx.session.unchanged(str(candidate), entry.version)
            ):
                return

    def _fetch_verified(
        self, item: dict[str, Any], spool: IO[bytes], attrs: dict[str, str]
    ) -> str | None:
        """Download ``item`` into ``spool``; None when good, "" when excluded, VANISHED
        when deleted meanwhile, else why not. Raises the GraphError of a permanent
        failure of this file (errors.permanent_item_error)."""
        ctx = self.ctx
        iid = str(item["id"])
        url = item.get("@microsoft.graph.downloadUrl")
        problem = "download failed"
        for _attempt in range(DOWNLOAD_ATTEMPTS):
            sink = HashingSink(spool, item)
            try:
                if url:
                    ctx.client.download(
                        str(url),
                        ctx.res,
                        cast(IO[bytes], sink),
                        preauthenticated=True,
                        max_bytes=ctx.selection.max_item_size,
                        attempts=ITEM_ATTEMPTS,
                    )
                else:
                    ctx.client.download(
                        f"/drives/{self.drive_id}/items/{iid}/content",
                        ctx.res,
                        cast(IO[bytes], sink),
                        max_bytes=ctx.selection.max_item_size,
                        attempts=ITEM_ATTEMPTS,
                    )
            except DownloadUrlExpired:
                problem = "the download URL expired and could not be renewed"
            except TooLarge:
                ctx.excluded("", ctx.selection.max_item_size + 1)
                return ""
            except ItemGone:
                return VANISHED
            except GraphError as exc:
                if permanent_item_error(exc):
                    raise
                return f"cannot read the file: {exc}"
            else:
                mismatch = sink.mismatch(item)
                if mismatch is None:
                    return None
                if self._rewritten(item, sink, attrs):
                    return None
                problem = mismatch
            # Fetch the item again: a fresh download URL (and, if it changed, new hashes).
            try:
                fresh = ctx.client.get_json(f"/drives/{self.drive_id}/items/{iid}", ctx.res)
            except ItemGone:
                return VANISHED
            url = fresh.get("@microsoft.graph.downloadUrl")
            if fresh.get("cTag") == item.get("cTag"):
                continue
            item = fresh
        return problem

    def _rewritten(self, item: dict[str, Any], sink: HashingSink, attrs: dict[str, str]) -> bool:
        """Accept an Office file of a SharePoint library whose bytes differ from its
        metadata: SharePoint rewrites such files on download (rclone's OneDrive
        docs, "Unexpected file size/hash differences on Sharepoint"), so the
        metadata can never match. The download itself was complete (the client
        checks Content-Length). Both the reported and the actual size and hashes are
        recorded; the stored content is described (and verified) by the actual ones,
        the content key stays the reported one so an unchanged file is not fetched
        again."""
        name = str(item.get("name") or "").lower()
        if not (self.library and name.endswith(OFFICE_EXTENSIONS) and sink.size > 0):
            return False
        reported = (item.get("file") or {}).get("hashes") or {}
        attrs["reportedSize"] = str(item.get("size"))
        for key, value in reported.items():
            attrs[f"reported{key[0].upper()}{key[1:]}"] = str(value)
        attrs.update(sink.actual())
        attrs["size"] = str(sink.size)
        attrs["coffer.note"] = (
            "SharePoint rewrote this Office file on download: its size and hash differ "
            "from the metadata (reported* attributes); the content is what Graph served"
        )
        self.ctx.report.count("office_rewritten")
        return True

    def _retry_failed(self) -> None:
        """Read again the failed files delta did not name this run (bounded:
        failures.RETRY_RUNS); a file gone meanwhile loses its record."""
        ctx = self.ctx
        for record in self.failures.due():
            iid = str(record["id"])
            path = str(record["path"])
            try:
                item = ctx.client.get_json(f"/drives/{self.drive_id}/items/{iid}", ctx.res)
            except ItemGone:
                self.failures.resolved(iid)
                continue
            except GraphError:
                self.failures.retried(iid)  # metadata unreadable now: the code stands
                continue
            attrs = file_attrs(item)
            version = str(item.get("eTag") or item.get("cTag") or "")
            mtime = time_ns(item.get("lastModifiedDateTime"))
            ctx.submit(functools.partial(self._download, item, path, version, attrs, mtime, None))
        ctx.drain()

    def _versions(self, item: dict[str, Any], path: str) -> None:
        """Store the file's previous versions (the newest is the file itself)."""
        ctx = self.ctx
        iid = str(item["id"])
        url = f"/drives/{self.drive_id}/items/{iid}/versions"
        try:
            versions = list(ctx.client.list_all(url, ctx.res))
        except ItemGone:
            return
        except GraphError as exc:
            ctx.skip(path, f"cannot list previous versions: {exc}")
            return
        for version in versions[1:]:
            vid = str(version.get("id", ""))
            target = f"versions/{path}/{safe_name(vid)}"
            if not vid or ctx.unchanged(target, vid):
                continue
            with ctx.content_sink() as spool:
                try:
                    ctx.client.download(
                        f"/drives/{self.drive_id}/items/{iid}/versions/{vid}/content",
                        ctx.res,
                        cast(IO[bytes], spool),
                    )
                except GraphError as exc:
                    ctx.skip(target, f"cannot read this version: {exc}")
                    continue
                ctx.add_file(
                    target,
                    spool,
                    version=vid,
                    attrs={"type": "driveItemVersion", "of": iid, "graph": graph_json(version)},
                    mtime_ns=time_ns(version.get("lastModifiedDateTime")),
                )


def backup_drive(ctx: ServiceContext, drive: dict[str, Any], base: str) -> None:
    """Back up one drive (its Graph JSON ``drive``) into the directory ``base``."""
    DriveBackup(ctx, str(drive["id"]), base).run(drive)
