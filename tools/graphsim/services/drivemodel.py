"""OneDrive / SharePoint document library behaviour, shared by the drive endpoints, the
upload sessions and the admin API.

Sources: api-reference/v1.0/resources/driveitem.md (facets, eTag/cTag,
`@microsoft.graph.downloadUrl`), resources/package.md (OneNote notebooks: a `package`
facet, no content stream), driveitem-get.md (path addressing), driveitem-post-children.md
(folder creation, `@microsoft.graph.conflictBehavior`), driveitem-put-content.md (simple
upload up to 4 MB), driveitem-list-versions.md, driveitem-delete.md, driveitem-update.md,
concepts "SharePoint invalid characters" (names OneDrive refuses).

Behaviours:
- Names compare case-insensitively within a folder (OneDrive does); a duplicate with
  conflictBehavior "fail" is 409 nameAlreadyExists; "rename" appends " 1", " 2", ...;
  "replace" replaces (a file gets a new version).
- Names with `" * : < > ? / \\ |`, leading/trailing spaces, a trailing dot, reserved
  device names (CON, NUL, COM1, ...), `.lock`, `desktop.ini`, `_vti_` are refused with
  400 invalidRequest. Everything else is legal, including names Linux cannot store
  (longer than 255 bytes in UTF-8) and names that differ only by Unicode normalisation.
- eTag changes on any change; cTag only when the content changes.
"""

from __future__ import annotations

import mimetypes
import re
import uuid
from typing import Any
from urllib.parse import quote

from ..httpcore import GraphError
from ..store import Item, NewItem, Transaction
from ..tenant import Tenant
from . import permissions as perms

_BAD_CHARS = re.compile(r'["*:<>?/\\|]')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.I)
MAX_SIMPLE_UPLOAD = 4 * 1024 * 1024


def validate_name(name: str) -> str:
    if not name or name in (".", ".."):
        raise GraphError(400, "invalidRequest", "The name of the item is empty or invalid.")
    if (
        _BAD_CHARS.search(name)
        or name != name.strip(" ")
        or name.endswith(".")
        or _RESERVED.match(name)
        or name.lower() in (".lock", "desktop.ini")
        or "_vti_" in name.lower()
        or len(name) > 255
    ):
        raise GraphError(
            400,
            "invalidRequest",
            "The provided name contains invalid characters or is not allowed.",
            inner_code="invalidPath",
        )
    return name


def mime_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _guid(item_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, item_id)).upper()


def etag(item: Item) -> str:
    """The item's eTag, as render_item gives it."""
    return f'"{{{_guid(item.key)}}},{int(item.data.get("_ver", 1))}"'


def drive_of(t: Tenant, item: Item) -> Item:
    drive = t.store.get(item.scope)
    assert drive is not None, f"drive {item.scope} missing"
    return drive


def root_of(t: Tenant, drive: Item) -> Item:
    root = t.store.get(str(drive.data["_root"]))
    assert root is not None
    return root


def item_path(t: Tenant, item: Item) -> list[str]:
    """Names from the root (excluded) down to `item` (included)."""
    names: list[str] = []
    cur: Item | None = item
    while cur is not None and "root" not in cur.data:
        names.append(str(cur.data["name"]))
        cur = t.store.get(cur.parent) if cur.parent else None
    return list(reversed(names))


def resolve(t: Tenant, drive: Item, base: Item, rel_path: str) -> Item | None:
    """The item at `rel_path` below `base` (None when some component is missing)."""
    cur = base
    for part in [p for p in rel_path.split("/") if p]:
        nxt = t.store.find_name(cur.key, ["driveItem"], part)
        if nxt is None:
            return None
        cur = nxt
    return cur


def folder_size(t: Tenant, item: Item) -> int:
    row = (
        t.store.conn()
        .execute(
            "WITH RECURSIVE sub(k) AS (SELECT ? UNION ALL SELECT i.key FROM items i JOIN sub"
            " ON i.parent = sub.k WHERE i.kind='driveItem' AND i.deleted=0)"
            " SELECT COALESCE(SUM(json_extract(i.data, '$.size')), 0) FROM items i"
            " JOIN sub ON i.key = sub.k WHERE i.deleted=0 AND json_extract(i.data, '$.file')"
            " IS NOT NULL",
            (item.key,),
        )
        .fetchone()
    )
    return int(row[0] or 0)


def render_item(
    t: Tenant,
    item: Item,
    base_url: str,
    *,
    in_delta: bool = False,
    parent_path: str | None = None,
    hierarchical: bool = False,
) -> dict[str, Any]:
    """driveItem JSON. In delta (driveitem-delta.md remarks): no parentReference.path,
    no cTag; deleted items carry a `deleted` facet and no name. `shared` as
    permissions.sharing_json says (`hierarchical`: `Prefer: hierarchicalsharing`)."""
    drive = drive_of(t, item)
    d = {k: v for k, v in item.data.items() if not k.startswith("_")}
    guid = _guid(item.key)
    ver = int(item.data.get("_ver", 1))
    d["eTag"] = f'"{{{guid}}},{ver}"'
    parent_ref: dict[str, Any] = {"driveType": drive.data.get("driveType"), "driveId": drive.key}
    if drive.data.get("_siteId"):
        parent_ref["siteId"] = drive.data["_siteId"]
    if item.parent:
        parent_ref["id"] = item.parent
        if not in_delta:
            if parent_path is None:
                parent = t.store.get(item.parent)
                names = item_path(t, parent) if parent is not None else []
                parent_path = "/".join(names)
            parent_ref["path"] = f"/drives/{drive.key}/root:" + (
                f"/{parent_path}" if parent_path else ""
            )
            parent_ref["name"] = parent_path.rsplit("/", 1)[-1] if parent_path else "root"
    d["parentReference"] = parent_ref
    if item.deleted:
        out = {
            "id": item.key,
            "deleted": {"state": "deleted"},
            "parentReference": parent_ref,
            "eTag": d["eTag"],
        }
        for facet in ("file", "folder", "package"):
            if facet in d:
                out[facet] = {}
        return out
    if not in_delta:
        d["cTag"] = f'"c:{{{guid}}},{int(item.data.get("_cver", 1))}"'
    sharing = perms.sharing_json(t, item, in_delta=in_delta, hierarchical=hierarchical)
    if sharing is not None:
        d["shared"] = sharing
    if "folder" in d:
        d["folder"] = {"childCount": t.store.count_children(item.key, ["driveItem"])}
        d["size"] = folder_size(t, item)
    elif "file" in d:
        src = t.content.open(item.content)
        d["size"] = src.size
        qx, _sha1, _sha256 = t.content.hashes(item.content)
        d["file"] = {
            "mimeType": d["file"].get("mimeType") or mime_type(d["name"]),
            "hashes": {"quickXorHash": qx},
        }
        d["@microsoft.graph.downloadUrl"] = t.download_url(base_url, item)
    elif "package" in d:
        d["size"] = int(item.data.get("size", 0))
    web_base = str(drive.data.get("webUrl", ""))
    if "root" not in item.data:
        names = (
            item_path(t, item)
            if parent_path is None
            else ([*parent_path.split("/"), d["name"]] if parent_path else [d["name"]])
        )
        d["webUrl"] = web_base + "/" + "/".join(quote(n) for n in names)
    else:
        d["webUrl"] = web_base
    return d


def new_item_data(
    t: Tenant,
    name: str,
    *,
    facet: str,
    user: dict[str, Any] | None,
    file_system_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    now = Tenant.now()
    who = {
        "user": {
            "displayName": (user or {}).get("displayName", "SharePoint App"),
            "id": (user or {}).get("id"),
            "email": (user or {}).get("mail"),
        }
    }
    data: dict[str, Any] = {
        "id": Tenant.new_drive_item_id(),
        "name": name,
        "createdDateTime": now,
        "lastModifiedDateTime": now,
        "createdBy": who,
        "lastModifiedBy": who,
        "fileSystemInfo": {"createdDateTime": now, "lastModifiedDateTime": now},
        "_ver": 1,
        "_cver": 1,
    }
    if file_system_info:
        data["fileSystemInfo"].update(
            {
                k: v
                for k, v in file_system_info.items()
                if k in ("createdDateTime", "lastModifiedDateTime")
            }
        )
    if facet == "folder":
        data["folder"] = {}
    elif facet == "file":
        data["file"] = {"mimeType": mime_type(name)}
    return data


def _unique_name(t: Tenant, parent: Item, name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    n = 1
    while True:
        candidate = f"{stem} {n}" + (f".{ext}" if ext else "")
        if t.store.find_name(parent.key, ["driveItem"], candidate) is None:
            return candidate
        n += 1


def create_folder(
    t: Tenant, tx: Transaction, parent: Item, name: str, conflict: str, user: dict[str, Any] | None
) -> tuple[Item, bool]:
    """Create a folder; returns (item, created). conflict: fail | rename | replace."""
    validate_name(name)
    if "folder" not in parent.data:
        raise GraphError(400, "invalidRequest", "The parent item is not a folder.")
    existing = t.store.find_name(parent.key, ["driveItem"], name)
    if existing is not None:
        if conflict == "rename":
            name = _unique_name(t, parent, name)
        elif conflict == "replace" and "folder" in existing.data:
            return existing, False
        else:
            raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
    data = new_item_data(t, name, facet="folder", user=user)
    item = tx.insert(NewItem("driveItem", parent.owner, parent.scope, parent.key, data, name=name))
    touch_folder(t, tx, parent)
    return item, True


def touch_folder(t: Tenant, tx: Transaction, folder: Item) -> None:
    """A folder's contents changed: it and its ancestors get a new eTag, so a delta round
    returns them too (driveitem-delta.md: parents are included unless the request has the
    deltaExcludeParent header)."""
    cur: Item | None = folder
    while cur is not None and not cur.deleted:
        cur.data["_ver"] = int(cur.data.get("_ver", 1)) + 1
        cur.data["lastModifiedDateTime"] = Tenant.now()
        tx.update(cur)
        cur = t.store.get(cur.parent) if cur.parent else None


def content_size(spec: dict[str, Any] | None) -> int:
    return int((spec or {}).get("size", 0))


def put_file(
    t: Tenant,
    tx: Transaction,
    parent: Item,
    name: str,
    content: dict[str, Any],
    conflict: str,
    user: dict[str, Any] | None,
    file_system_info: dict[str, Any] | None = None,
) -> tuple[Item, bool]:
    """Create or replace a file under `parent`; returns (item, created)."""
    validate_name(name)
    existing = t.store.find_name(parent.key, ["driveItem"], name)
    if existing is not None:
        if conflict == "fail":
            raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
        if conflict == "rename":
            name = _unique_name(t, parent, name)
            existing = None
        elif "file" not in existing.data:
            raise GraphError(
                409, "nameAlreadyExists", "A folder with the same name already exists."
            )
    if existing is not None:
        replaced = replace_content(tx, existing, content, user, file_system_info)
        touch_folder(t, tx, parent)
        return replaced, False
    data = new_item_data(t, name, facet="file", user=user, file_system_info=file_system_info)
    data["size"] = content_size(content)
    item = tx.insert(
        NewItem(
            "driveItem", parent.owner, parent.scope, parent.key, data, name=name, content=content
        )
    )
    touch_folder(t, tx, parent)
    return item, True


def replace_content(
    tx: Transaction,
    item: Item,
    content: dict[str, Any],
    user: dict[str, Any] | None,
    file_system_info: dict[str, Any] | None = None,
) -> Item:
    """New content for a file: the old content becomes a version."""
    if "file" not in item.data:
        raise GraphError(400, "invalidRequest", "Only files have content.")
    versions = list(item.data.get("_versions", []))
    versions.append(
        {
            "id": f"{len(versions) + 1}.0",
            "lastModifiedDateTime": item.data.get("lastModifiedDateTime"),
            "lastModifiedBy": item.data.get("lastModifiedBy"),
            "content": item.content,
        }
    )
    item.data["_versions"] = versions
    item.content = content
    item.data["size"] = content_size(content)
    now = Tenant.now()
    item.data["lastModifiedDateTime"] = now
    if user:
        item.data["lastModifiedBy"] = {
            "user": {
                "displayName": user.get("displayName"),
                "id": user.get("id"),
                "email": user.get("mail"),
            }
        }
    fsi = dict(item.data.get("fileSystemInfo") or {})
    fsi["lastModifiedDateTime"] = now
    if file_system_info:
        fsi.update(
            {
                k: v
                for k, v in file_system_info.items()
                if k in ("createdDateTime", "lastModifiedDateTime")
            }
        )
    item.data["fileSystemInfo"] = fsi
    item.data["_ver"] = int(item.data.get("_ver", 1)) + 1
    item.data["_cver"] = int(item.data.get("_cver", 1)) + 1
    return tx.update(item)


def versions_json(t: Tenant, item: Item, base_url: str) -> list[dict[str, Any]]:
    """Current version first, as driveitem-list-versions.md shows."""
    versions = list(item.data.get("_versions", []))
    current_id = f"{len(versions) + 1}.0"
    src = t.content.open(item.content)
    out = [
        {
            "id": current_id,
            "lastModifiedDateTime": item.data.get("lastModifiedDateTime"),
            "lastModifiedBy": item.data.get("lastModifiedBy"),
            "size": src.size,
        }
    ]
    for v in reversed(versions):
        out.append(
            {
                "id": v["id"],
                "lastModifiedDateTime": v.get("lastModifiedDateTime"),
                "lastModifiedBy": v.get("lastModifiedBy"),
                "size": t.content.open(v.get("content")).size,
            }
        )
    return out


def version_content(item: Item, version_id: str) -> dict[str, Any] | None:
    versions = list(item.data.get("_versions", []))
    if version_id == f"{len(versions) + 1}.0":
        return item.content or {"t": "empty"}
    for v in versions:
        if v["id"] == version_id:
            return dict(v.get("content") or {"t": "empty"})
    raise GraphError(404, "itemNotFound", "The version could not be found.")


def delete_item(t: Tenant, tx: Transaction, item: Item) -> None:
    """Delete an item and its descendants (tombstones: delta shows `deleted`)."""
    if "root" in item.data:
        raise GraphError(403, "accessDenied", "The root of a drive cannot be deleted.")
    _tombstone_tree(t, tx, item)
    parent = t.store.get(item.parent)
    if parent is not None:
        touch_folder(t, tx, parent)


def _tombstone_tree(t: Tenant, tx: Transaction, item: Item) -> None:
    for child in t.store.children(item.key, ["driveItem"]):
        _tombstone_tree(t, tx, child)
    item.data["_ver"] = int(item.data.get("_ver", 1)) + 1
    tx.tombstone(item)


def update_item(
    t: Tenant, tx: Transaction, item: Item, patch: dict[str, Any], user: dict[str, Any] | None
) -> Item:
    """Rename, move (parentReference.id) or change fileSystemInfo/description."""
    conflict = str(patch.get("@microsoft.graph.conflictBehavior", "fail"))
    new_parent = item.parent
    ref = patch.get("parentReference") or {}
    if ref.get("id") and ref["id"] != item.parent:
        target = t.store.get(str(ref["id"]))
        if target is None or target.scope != item.scope or "folder" not in target.data:
            raise GraphError(400, "invalidRequest", "The destination folder is not valid.")
        # Moving a folder into itself or a descendant is refused.
        cur: Item | None = target
        while cur is not None:
            if cur.key == item.key:
                raise GraphError(400, "invalidRequest", "Cannot move an item into itself.")
            cur = t.store.get(cur.parent) if cur.parent else None
        new_parent = target.key
    name = str(patch.get("name", item.data["name"]))
    if name != item.data["name"] or new_parent != item.parent:
        validate_name(name)
        clash = t.store.find_name(new_parent, ["driveItem"], name)
        if clash is not None and clash.key != item.key:
            if conflict == "rename":
                parent_item = t.store.get(new_parent)
                assert parent_item is not None
                name = _unique_name(t, parent_item, name)
            else:
                raise GraphError(
                    409, "nameAlreadyExists", "The specified item name already exists."
                )
    old_parent = item.parent
    item.data["name"] = name
    item.name = name
    item.parent = new_parent
    if "fileSystemInfo" in patch:
        fsi = dict(item.data.get("fileSystemInfo") or {})
        fsi.update(
            {
                k: v
                for k, v in (patch["fileSystemInfo"] or {}).items()
                if k in ("createdDateTime", "lastModifiedDateTime")
            }
        )
        item.data["fileSystemInfo"] = fsi
    if "description" in patch:
        item.data["description"] = patch["description"]
    item.data["_ver"] = int(item.data.get("_ver", 1)) + 1
    item.data["lastModifiedDateTime"] = Tenant.now()
    if user:
        item.data["lastModifiedBy"] = {
            "user": {
                "displayName": user.get("displayName"),
                "id": user.get("id"),
                "email": user.get("mail"),
            }
        }
    tx.update(item)
    if old_parent != new_parent:
        for key in (old_parent, new_parent):
            folder = t.store.get(key)
            if folder is not None:
                touch_folder(t, tx, folder)
    return item


def render_drive(t: Tenant, drive: Item) -> dict[str, Any]:
    """A drive resource as Graph answers it, with its quota (served by both the drive
    endpoints and a document library's `/lists/{list}/drive`)."""
    d = {k: v for k, v in drive.data.items() if not k.startswith("_")}
    used = folder_size(t, root_of(t, drive))
    d["quota"] = {
        "deleted": 0,
        "remaining": 1_099_511_627_776 - used,
        "total": 1_099_511_627_776,
        "used": used,
        "state": "normal",
    }
    return d
