"""OneDrive and SharePoint drive endpoints (behaviour in drivemodel.py and uploads.py).

Sources: drive-get.md, drive-list.md, driveitem-get.md (by id and by path),
driveitem-list-children.md, driveitem-post-children.md, driveitem-get-content.md (302 to
the pre-authenticated download URL; Range requests go to that URL and get 206),
driveitem-put-content.md, driveitem-createuploadsession.md, driveitem-delta.md
(`token=latest`, deleted facet, 410 with Location), driveitem-list-versions.md,
driveitemversion-get-contents.md, driveitem-update.md, driveitem-delete.md.

Delta is served for the root of a drive only (business drives support nothing else).
"""

from __future__ import annotations

import re
from typing import Any

from ..httpcore import GraphError, Request, Response, bad_request, empty_response, json_response
from ..odata import apply_select, collection, paged_list, parse_select
from ..router import Router
from ..store import Item
from ..tenant import Tenant
from . import drivemodel as dm
from . import permissions as perms
from . import uploads
from .common import DeltaSpec, delta_round, read_delta_state
from .sites import resolve_site

PREFIXES = (
    ("/drives/{drive}", "drive"),
    ("/users/{user}/drive", "user"),
    ("/sites/{site}/drive", "site"),
    ("/groups/{group}/drive", "group"),
    ("/sites/{site}/drives/{drive}", "drive"),
)
_RANGE = re.compile(r"^\s*bytes=(\d*)-(\d*)\s*$")


def user_drive(t: Tenant, user_ref: str) -> Item:
    user = t.require_content(t.require_user(user_ref))
    key = user.data.get("_drive")
    drive = t.store.get(str(key)) if key else None
    if drive is None or user.key in t.switches.unlicensed:
        raise GraphError(404, "ResourceNotFound", "User's mysite not found.")
    return drive


def site_drive(t: Tenant, site_ref: str) -> Item:

    site = resolve_site(t, site_ref)
    drive = t.store.get(str(site.data.get("_drive", "")))
    if drive is None:
        raise GraphError(404, "itemNotFound", "The site has no default document library.")
    return drive


def drive_for(t: Tenant, req: Request) -> Item:
    p = req.params
    if "drive" in p:
        drive = t.store.get(p["drive"])
        if drive is None or drive.kind != "drive":
            raise GraphError(404, "itemNotFound", "The drive could not be found.")
        if "site" in p and drive.owner != resolve_site(t, p["site"]).key:
            raise GraphError(404, "itemNotFound", "The drive could not be found.")
        return drive
    if "user" in p:
        return user_drive(t, p["user"])
    if "site" in p:
        return site_drive(t, p["site"])
    team = t.store.get(p["group"])
    if team is None or team.kind != "team":
        raise GraphError(404, "Request_ResourceNotFound", "The group could not be found.")
    return site_drive(t, str(team.data["_site"]))


def register(router: Router, raw: Router, t: Tenant) -> None:
    def add(method: str, pattern: str, handler: Any, units: int = 1, **kw: Any) -> None:
        owner = (
            "user"
            if "{user}" in pattern
            else "site"
            if "{site}" in pattern
            else "group"
            if "{group}" in pattern
            else "drive"
        )
        router.add(
            method, pattern, handler, service="sharepoint", owner_param=owner, units=units, **kw
        )

    def who(req: Request) -> dict[str, Any] | None:
        if req.auth is not None and req.auth.user_id:
            return t.user_dict(req.auth.user_id)
        return {"displayName": "Coffer", "id": req.auth.app_id if req.auth else None}

    def target(req: Request, drive: Item, *, must_exist: bool = True) -> Item:
        """The item named by {item} (id or "root") plus an optional path."""
        ref = req.params.get("item", "root")
        base = dm.root_of(t, drive) if ref.lower() == "root" else t.store.get(ref)
        if base is None or base.kind != "driveItem" or base.scope != drive.key:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        path = req.params.get("item_path")
        if path:
            found = dm.resolve(t, drive, base, path)
            if found is None:
                if must_exist:
                    raise GraphError(404, "itemNotFound", "The resource could not be found.")
                return base
            return found
        return base

    def split_new(req: Request, drive: Item) -> tuple[Item, str]:
        """For uploads by path: (parent folder, file name); the parent must exist."""
        ref = req.params.get("item", "root")
        base = dm.root_of(t, drive) if ref.lower() == "root" else t.store.get(ref)
        if base is None or base.scope != drive.key:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        path = (req.params.get("item_path") or "").strip("/")
        if not path:
            raise bad_request("A file name is required.", "invalidRequest")
        parent_path, _, name = path.rpartition("/")
        parent = dm.resolve(t, drive, base, parent_path) if parent_path else base
        if parent is None:
            # PUT by path creates missing parent folders, as OneDrive does.
            with t.store.transaction() as tx:
                cur = base
                for part in [p for p in parent_path.split("/") if p]:
                    nxt = t.store.find_name(cur.key, ["driveItem"], part)
                    if nxt is None:
                        nxt, _ = dm.create_folder(t, tx, cur, part, "fail", who(req))
                    cur = nxt
            parent = cur
        return parent, name

    # -- drives ---------------------------------------------------------------------------

    def get_drive(req: Request) -> Response:
        drive = drive_for(t, req)
        return json_response(apply_select(dm.render_drive(t, drive), parse_select(req)))

    def list_user_drives(req: Request) -> Response:
        drive = user_drive(t, req.params["user"])
        return json_response({"value": [dm.render_drive(t, drive)]})

    def list_site_drives(req: Request) -> Response:

        site = resolve_site(t, req.params["site"])
        drives = t.store.by_owner(site.key, ["drive"])
        return json_response({"value": [dm.render_drive(t, d) for d in drives]})

    # -- items ------------------------------------------------------------------------------

    def get_item(req: Request) -> Response:
        drive = drive_for(t, req)
        item = target(req, drive)
        out = dm.render_item(t, item, req.base_url)
        if "children" in req.query.get("$expand", "").lower():
            out["children"] = [
                dm.render_item(t, c, req.base_url)
                for c in t.store.children(item.key, ["driveItem"])[:200]
            ]
        return json_response(apply_select(out, parse_select(req)))

    def list_children(req: Request) -> Response:
        drive = drive_for(t, req)
        item = target(req, drive)
        if "folder" not in item.data and "package" not in item.data:
            return json_response({"value": []})
        names = dm.item_path(t, item)
        ppath = "/".join(names)
        return paged_list(
            req,
            t.tokens,
            f"/drives/{drive.key}/items/{item.key}/children",
            lambda after, limit: t.store.children(
                item.key, ["driveItem"], after_pk=after, limit=limit
            ),
            lambda c: dm.render_item(t, c, req.base_url, parent_path=ppath),
            default=200,
            maximum=999,
            context=f"drives('{drive.key}')/items('{item.key}')/children",
            filterable=["name", "size", "lastModifiedDateTime"],
        )

    def create_child(req: Request) -> Response:
        drive = drive_for(t, req)
        parent = target(req, drive)
        body = req.json()
        name = str(body.get("name", ""))
        conflict = str(body.get("@microsoft.graph.conflictBehavior", "fail"))
        if "folder" not in body:
            raise bad_request(
                "Only folders can be created with POST children; upload files with PUT.",
                "invalidRequest",
            )
        with t.store.transaction() as tx:
            item, created = dm.create_folder(t, tx, parent, name, conflict, who(req))
        fresh = t.store.get(item.key)
        assert fresh is not None
        return json_response(dm.render_item(t, fresh, req.base_url), 201 if created else 200)

    def patch_item(req: Request) -> Response:
        drive = drive_for(t, req)
        item = target(req, drive)
        with t.store.transaction() as tx:
            dm.update_item(t, tx, item, req.json(), who(req))
        fresh = t.store.get(item.key)
        assert fresh is not None
        return json_response(dm.render_item(t, fresh, req.base_url))

    def delete_item(req: Request) -> Response:
        drive = drive_for(t, req)
        item = target(req, drive)
        match = req.header("If-Match")
        if match and match.strip() not in (dm.render_item(t, item, req.base_url)["eTag"], "*"):
            raise GraphError(
                412, "resourceModified", "ETag does not match the current item's value."
            )
        with t.store.transaction() as tx:
            dm.delete_item(t, tx, item)
        return empty_response()

    def get_content(req: Request) -> Response:
        drive = drive_for(t, req)
        item = target(req, drive)
        if "file" not in item.data:
            raise GraphError(404, "itemNotFound", "The item does not have a content stream.")
        none_match = req.header("If-None-Match")
        if none_match:
            rendered = dm.render_item(t, item, req.base_url)
            if none_match.strip() in (rendered["eTag"], rendered.get("cTag")):
                return empty_response(304)
        return empty_response(302, {"Location": t.download_url(req.base_url, item)})

    def put_content(req: Request) -> Response:
        drive = drive_for(t, req)
        conflict = req.query.get("@microsoft.graph.conflictBehavior", "replace")
        length = int(req.header("Content-Length") or 0)
        if length > dm.MAX_SIMPLE_UPLOAD:
            raise GraphError(
                413,
                "invalidRequest",
                "Simple upload supports files up to 4 MB; use an upload session.",
                inner_code="maxFileSizeExceeded",
            )
        data = req.read_body(dm.MAX_SIMPLE_UPLOAD)
        spec = t.content.put_bytes(data)
        if req.params.get("item_path"):
            existing = target(req, drive, must_exist=False)
            parent, name = split_new(req, drive)
            del existing
            with t.store.transaction() as tx:
                item, created = dm.put_file(t, tx, parent, name, spec, conflict, who(req))
        else:
            item = target(req, drive)
            with t.store.transaction() as tx:
                dm.replace_content(tx, item, spec, who(req))
                parent_item = t.store.get(item.parent)
                if parent_item is not None:
                    dm.touch_folder(t, tx, parent_item)
            created = False
        fresh = t.store.get(item.key)
        assert fresh is not None
        return json_response(dm.render_item(t, fresh, req.base_url), 201 if created else 200)

    def create_upload_session(req: Request) -> Response:
        drive = drive_for(t, req)
        body = req.json() or {}
        props = body.get("item") or {}
        conflict = str(props.get("@microsoft.graph.conflictBehavior", "fail"))
        tgt: dict[str, Any] = {
            "conflict": conflict,
            "fileSystemInfo": props.get("fileSystemInfo"),
            "deferCommit": bool(body.get("deferCommit")),
            "user": who(req),
        }
        if req.params.get("item_path"):
            parent, name = split_new(req, drive)
            if props.get("name") and props["name"] != name:
                raise bad_request(
                    "The item name in the body must match the path.", "invalidRequest"
                )
            dm.validate_name(name)
            existing = t.store.find_name(parent.key, ["driveItem"], name)
            if existing is not None and conflict == "fail":
                raise GraphError(
                    409, "nameAlreadyExists", "The specified item name already exists."
                )
            tgt.update({"parent": parent.key, "name": name})
        else:
            item = target(req, drive)
            if "file" not in item.data:
                raise bad_request("An upload session updates a file.", "invalidRequest")
            match = req.header("If-Match")
            if match and match.strip() != dm.render_item(t, item, req.base_url)["eTag"]:
                raise GraphError(
                    412, "resourceModified", "ETag does not match the current item's value."
                )
            tgt.update({"item": item.key})
        size = props.get("fileSize")
        sess = uploads.new_session(t, "drive", drive.owner, tgt, int(size) if size else None)
        return json_response(
            {
                "uploadUrl": uploads.upload_url(req, sess),
                "expirationDateTime": sess.expiration(),
                "nextExpectedRanges": ["0-"],
            }
        )

    def delta(req: Request) -> Response:
        drive = drive_for(t, req)
        item = target(req, drive)
        if "root" not in item.data:
            raise GraphError(
                400, "invalidRequest", "Delta is only supported on the root of a drive."
            )
        spec = DeltaSpec(
            service="drive",
            scope=drive.key,
            kinds=["driveItem"],
            path=f"/drives/{drive.key}/items/root/delta",
            token_param="token",
            default_page=200,
            max_page=999,
            gone_code="resyncRequired",
            gone_message=(
                "Resync required. Replace any local items with the server's version"
                " (including deletes) if you're sure that the service was up to date with your"
                " local changes when you last sync'd. Upload any local changes that the server"
                " doesn't know about."
            ),
            gone_inner="resyncChangesApplyDifferences",
            gone_location=True,
            supports_latest=True,
        )

        hierarchical = perms.wants_hierarchical(req.header("Prefer"))
        sharing_changes = perms.wants_sharing_changes(req.header("Prefer"))
        state = read_delta_state(t, req, spec)
        since = int(state["since"]) if state else 0

        def render(row: Item, initial: bool) -> dict[str, Any] | None:
            out = dm.render_item(t, row, req.base_url, in_delta=True, hierarchical=hierarchical)
            if sharing_changes and not initial and perms.shared_changed(row, since):
                out["@microsoft.graph.sharedChanged"] = "True"
            return out

        return delta_round(t, req, spec, render)

    # -- sharing permissions (driveitem-list-permissions.md, permission-get.md) -------------

    def list_permissions(req: Request) -> Response:
        drive = drive_for(t, req)
        item = target(req, drive)
        none_match = req.header("If-None-Match")
        if none_match and none_match.strip() == dm.etag(item):
            return empty_response(304)
        select = parse_select(req)
        values = [apply_select(p, select) for p in perms.effective(t, item)]
        context = f"drives('{drive.key}')/items('{item.key}')/permissions"
        return collection(req, values, context=context)

    def get_permission(req: Request) -> Response:
        drive = drive_for(t, req)
        item = target(req, drive)
        for p in perms.effective(t, item):
            if p["id"] == req.params["permission"]:
                return json_response(apply_select(p, parse_select(req)))
        raise GraphError(404, "itemNotFound", "The permission could not be found.")

    def list_versions(req: Request) -> Response:
        drive = drive_for(t, req)
        item = target(req, drive)
        if "file" not in item.data:
            raise GraphError(400, "invalidRequest", "Only files have versions.")
        return json_response({"value": dm.versions_json(t, item, req.base_url)})

    def get_version(req: Request) -> Response:
        drive = drive_for(t, req)
        item = target(req, drive)
        for v in dm.versions_json(t, item, req.base_url):
            if v["id"] == req.params["version"]:
                return json_response(v)
        raise GraphError(404, "itemNotFound", "The version could not be found.")

    def version_content(req: Request) -> Response:
        drive = drive_for(t, req)
        item = target(req, drive)
        dm.version_content(item, req.params["version"])  # 404 for unknown versions
        return empty_response(
            302, {"Location": t.download_url(req.base_url, item, req.params["version"])}
        )

    def download(req: Request) -> Response:
        payload = t.read_download_token(req.params["token"])
        item = t.store.get(str(payload["k"]))
        if item is None or "file" not in item.data:
            raise GraphError(404, "itemNotFound", "The item no longer exists.")
        spec = dm.version_content(item, payload["v"]) if payload.get("v") else item.content
        src = t.content.open(spec)
        ctype = str(item.data.get("file", {}).get("mimeType") or "application/octet-stream")
        headers = [
            ("Content-Type", ctype),
            ("Accept-Ranges", "bytes"),
            ("ETag", dm.render_item(t, item, req.base_url)["eTag"]),
        ]
        rng = req.header("Range")
        if rng:
            m = _RANGE.match(rng)
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) else src.size - 1
                else:
                    start = max(0, src.size - int(m.group(2)))
                    end = src.size - 1
                end = min(end, src.size - 1)
                if start >= src.size or start > end:
                    return Response(416, [("Content-Range", f"bytes */{src.size}")], b"")
                headers.append(("Content-Range", f"bytes {start}-{end}/{src.size}"))
                return Response(206, headers, src.iter_range(start, end + 1), end - start + 1)
        return Response(200, headers, src.iter_range(), src.size)

    # -- routes -------------------------------------------------------------------------------

    router.add(
        "GET", "/drives/{drive}", get_drive, service="sharepoint", owner_param="drive", units=1
    )
    router.add(
        "GET", "/users/{user}/drive", get_drive, service="sharepoint", owner_param="user", units=1
    )
    router.add(
        "GET",
        "/users/{user}/drives",
        list_user_drives,
        service="sharepoint",
        owner_param="user",
        units=2,
    )
    router.add(
        "GET", "/sites/{site}/drive", get_drive, service="sharepoint", owner_param="site", units=1
    )
    router.add(
        "GET",
        "/sites/{site}/drives",
        list_site_drives,
        service="sharepoint",
        owner_param="site",
        units=2,
    )
    router.add(
        "GET",
        "/sites/{site}/drives/{drive}",
        get_drive,
        service="sharepoint",
        owner_param="site",
        units=1,
    )
    router.add(
        "GET",
        "/groups/{group}/drive",
        get_drive,
        service="sharepoint",
        owner_param="group",
        units=1,
    )
    for prefix, _kind in PREFIXES:
        items = f"{prefix}/items/{{item}}"
        add("GET", items, get_item)
        add("PATCH", items, patch_item, units=2)
        add("DELETE", items, delete_item, units=2)
        add("GET", f"{items}/children", list_children, units=2)
        add("POST", f"{items}/children", create_child, units=2)
        add("GET", f"{items}/content", get_content, units=1)
        add("PUT", f"{items}/content", put_content, units=2)
        add("POST", f"{items}/createUploadSession", create_upload_session, units=2)
        add("GET", f"{items}/delta", delta, units=2)
        add("GET", f"{items}/versions", list_versions, units=2)
        add("GET", f"{items}/versions/{{version}}", get_version, units=1)
        add("GET", f"{items}/versions/{{version}}/content", version_content, units=1)
        # Permission operations cost 5 resource units (SharePoint throttling guidance).
        add("GET", f"{items}/permissions", list_permissions, units=5)
        add("GET", f"{items}/permissions/{{permission}}", get_permission, units=5)
    raw.add("GET", "/_dl/{token}", download, service="sharepoint", units=1, download=True)
