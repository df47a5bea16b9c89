"""SharePoint sites, lists and list items.

Sources: site-list.md (`GET /sites` lists every site for app-only callers;
`$filter=siteCollection/root ne null`), site-search.md (`/sites?search=`),
site-getallsites.md, site-get.md (by id, `root`, or `{hostname}:/{server-relative-path}`),
site-getbypath.md, list-list.md, list-get.md, listitem-list.md (`$expand=fields`),
listitem-get.md, listitem-create.md, listitem-update.md, listitem-delete.md,
listitem-delta.md (`token=`, `token=latest`, `deleted` facet, 410 with Location).

Site ids look like `{hostname},{site-collection-guid},{web-guid}`.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..httpcore import GraphError, Request, Response, bad_request, empty_response, json_response
from ..odata import apply_select, paged_list, parse_select
from ..router import Router
from ..store import Item, NewItem
from ..tenant import Tenant
from .common import DeltaSpec, delta_round, public
from .drivemodel import render_drive
from .listfields import accept_write


def resolve_site(t: Tenant, ref: str) -> Item:
    """A site by id, "root", `{host}:/sites/x`, or the `{host},{guid},{guid}` id."""
    if ref.lower() == "root":
        key = t.store.get_meta("root_site")
        site = t.store.get(key) if key else None
    elif ":" in ref and "," not in ref:
        host, _, path = ref.partition(":")
        site = None
        for item in t.store.iter_live(["site"]):
            if (
                item.data.get("_path", "").lower() == path.rstrip("/").lower()
                and host.lower() == t.sharepoint_host
            ):
                site = item
                break
    else:
        site = t.store.get(ref)
    if site is None or site.kind != "site":
        raise GraphError(404, "itemNotFound", "Requested site could not be found")
    return site


def render_site(site: Item) -> dict[str, Any]:
    return public(site.data)


def is_subsite(site: Item) -> bool:
    """A web below a site collection's root web: `GET /sites` and `getAllSites` list
    site collections only, and `/sites/{id}/sites` lists a site's subsites
    (microsoftgraph/msgraph-sdk-java issue 1807, a maintainer's answer; site-list-subsites.md)."""
    return bool(site.data.get("_parent_site"))


def render_list(t: Tenant, item: Item) -> dict[str, Any]:
    return public(item.data)


def render_list_item(
    t: Tenant, item: Item, *, expand_fields: bool, in_delta: bool = False
) -> dict[str, Any]:
    d = public(item.data)
    d["eTag"] = f'"{item.data.get("_guid")},{item.data.get("_ver", 1)}"'
    d["parentReference"] = {"id": item.parent, "siteId": item.owner}
    if item.deleted:
        return {
            "id": d["id"],
            "parentReference": {"siteId": item.owner},
            "deleted": {"state": "deleted"},
        }
    fields = dict(item.data.get("_fields", {}))
    fields["id"] = d["id"]
    if expand_fields or in_delta:
        d["fields"] = fields
    return d


def render_library_item(
    t: Tenant, item: Item, lst: Item, *, in_delta: bool = False
) -> dict[str, Any]:
    """A document library's list item: the listItem view of a drive item (id = its
    position in the library, as SharePoint numbers items)."""
    if item.deleted:
        return {
            "id": str(item.pk),
            "parentReference": {"siteId": lst.owner},
            "deleted": {"state": "deleted"},
        }
    folder = "folder" in item.data or "package" in item.data
    guid = "{" + str(uuid.uuid5(uuid.NAMESPACE_OID, item.key)).upper() + "}"
    name = str(item.data.get("name", ""))
    return {
        "id": str(item.pk),
        "createdDateTime": item.data.get("createdDateTime"),
        "lastModifiedDateTime": item.data.get("lastModifiedDateTime"),
        "createdBy": item.data.get("createdBy"),
        "lastModifiedBy": item.data.get("lastModifiedBy"),
        "eTag": f'"{guid},{item.data.get("_ver", 1)}"',
        "webUrl": f"{lst.data.get('webUrl')}/{name}",
        "contentType": {
            "id": "0x0120" if folder else "0x0101",
            "name": "Folder" if folder else "Document",
        },
        "parentReference": {"id": lst.key, "siteId": lst.owner},
        "fields": {
            "id": str(item.pk),
            "FileLeafRef": name,
            "FileSizeDisplay": item.data.get("size"),
            "ContentType": "Folder" if folder else "Document",
        },
    }


def register(router: Router, t: Tenant) -> None:
    def add(method: str, pattern: str, handler: Any, units: int = 1) -> None:
        router.add(
            method,
            pattern,
            handler,
            service="sharepoint",
            owner_param="site" if "{site}" in pattern else "",
            units=units,
        )

    def list_sites(req: Request) -> Response:
        search = req.query.get("search")
        if search is None and "$search" in req.query:
            search = req.query["$search"].strip('"')
        text = (search or "").strip().lower()
        ftext = req.query.get("$filter", "")
        roots_only = "siteCollection/root ne null" in ftext.replace("%20", " ")

        def render(site: Item) -> dict[str, Any] | None:
            data = render_site(site)
            if is_subsite(site) and search is None:
                return None  # GET /sites lists site collections; search finds webs too
            if roots_only and "root" not in data:
                return None
            if text and text != "*":
                hay = " ".join(
                    str(data.get(k, "")) for k in ("name", "displayName", "description", "webUrl")
                ).lower()
                if text not in hay:
                    return None
            return data

        return (
            paged_list(
                req,
                t.tokens,
                "/sites",
                lambda after, limit: t.store.by_kind(["site"], after_pk=after, limit=limit),
                render,
                default=200,
                maximum=999,
                context="sites",
                filterable=["siteCollection/root", "name", "displayName", "webUrl"]
                if not roots_only
                else [],
            )
            if not roots_only
            else _roots(req, render)
        )

    def _roots(req: Request, render: Any) -> Response:
        values = [v for v in (render(s) for s in t.store.by_kind(["site"])) if v]
        return json_response({"value": [apply_select(v, parse_select(req)) for v in values]})

    def get_all_sites(req: Request) -> Response:
        if req.auth is not None and req.auth.delegated:
            raise GraphError(
                403, "accessDenied", "getAllSites is only supported with application permissions."
            )
        return paged_list(
            req,
            t.tokens,
            "/sites/getAllSites",
            lambda after, limit: t.store.by_kind(["site"], after_pk=after, limit=limit),
            lambda site: None if is_subsite(site) else render_site(site),
            default=200,
            maximum=999,
            context="sites",
        )

    def get_site(req: Request) -> Response:
        site = resolve_site(t, req.params.get("site", "root"))
        return json_response(apply_select(render_site(site), parse_select(req)))

    def group_root_site(req: Request) -> Response:
        team = t.store.get(req.params["group"])
        if team is None or team.kind != "team":
            raise GraphError(404, "Request_ResourceNotFound", "The group could not be found.")
        site = resolve_site(t, str(team.data["_site"]))
        return json_response(render_site(site))

    def subsites(req: Request) -> Response:
        # The direct subsites (webs) of a site; each lists its own (site-list-subsites.md).
        parent = resolve_site(t, req.params["site"])
        return paged_list(
            req,
            t.tokens,
            f"/sites/{parent.key}/sites",
            lambda after, limit: t.store.by_kind(["site"], after_pk=after, limit=limit),
            lambda site: render_site(site) if site.data.get("_parent_site") == parent.key else None,
            default=200,
            maximum=999,
            context="sites",
        )

    # -- lists --------------------------------------------------------------------------

    def _list(req: Request) -> tuple[Item, Item]:
        site = resolve_site(t, req.params["site"])
        ref = req.params["list"]
        lst = t.store.get(ref)
        if lst is None:
            for cand in t.store.children(site.key, ["list"]):
                if (
                    str(cand.data.get("name", "")).lower() == ref.lower()
                    or str(cand.data.get("displayName", "")).lower() == ref.lower()
                ):
                    lst = cand
                    break
        if lst is None or lst.kind != "list" or lst.owner != site.key:
            raise GraphError(404, "itemNotFound", "The list could not be found.")
        return site, lst

    def list_lists(req: Request) -> Response:
        site = resolve_site(t, req.params["site"])
        return paged_list(
            req,
            t.tokens,
            f"/sites/{site.key}/lists",
            lambda after, limit: t.store.children(site.key, ["list"], after_pk=after, limit=limit),
            lambda item: render_list(t, item),
            default=200,
            maximum=999,
            context=f"sites('{site.key}')/lists",
            filterable=["displayName", "name", "list/template"],
        )

    def get_list(req: Request) -> Response:
        _, lst = _list(req)
        return json_response(apply_select(render_list(t, lst), parse_select(req)))

    def library_items(req: Request, site: Item, lst: Item, drive: str) -> Response:
        def render(item: Item) -> dict[str, Any] | None:
            if "root" in item.data:
                return None
            return render_library_item(t, item, lst)

        return paged_list(
            req,
            t.tokens,
            f"/sites/{site.key}/lists/{lst.key}/items",
            lambda after, limit: t.store.scope_page(
                drive, ["driveItem"], after_pk=after, limit=limit
            ),
            render,
            default=200,
            maximum=999,
            context=f"sites('{site.key}')/lists('{lst.key}')/items",
        )

    def list_items(req: Request) -> Response:
        site, lst = _list(req)
        if lst.data.get("_drive"):
            return library_items(req, site, lst, str(lst.data["_drive"]))
        expand = "fields" in req.query.get("$expand", "").lower()
        return paged_list(
            req,
            t.tokens,
            f"/sites/{site.key}/lists/{lst.key}/items",
            lambda after, limit: t.store.children(
                lst.key, ["listItem"], after_pk=after, limit=limit
            ),
            lambda item: render_list_item(t, item, expand_fields=expand),
            default=200,
            maximum=999,
            context=f"sites('{site.key}')/lists('{lst.key}')/items",
        )

    def _library_guard(lst: Item) -> None:
        if lst.data.get("_drive"):
            raise GraphError(
                400,
                "notSupported",
                "Items of a document library are changed through the drive API.",
            )

    def _item(req: Request, lst: Item) -> Item:
        item = t.store.get(f"{lst.key}/{req.params['item']}")
        if item is None or item.kind != "listItem":
            raise GraphError(404, "itemNotFound", "The list item could not be found.")
        return item

    def get_item(req: Request) -> Response:
        _, lst = _list(req)
        if lst.data.get("_drive"):
            ref = req.params["item"]
            row = t.store.get_pk(int(ref)) if ref.isdigit() else None
            if row is None or row.deleted or row.scope != lst.data["_drive"]:
                raise GraphError(404, "itemNotFound", "The list item could not be found.")
            return json_response(apply_select(render_library_item(t, row, lst), parse_select(req)))
        item = _item(req, lst)
        out = render_list_item(t, item, expand_fields=True)
        return json_response(apply_select(out, parse_select(req)))

    def get_fields(req: Request) -> Response:
        _, lst = _list(req)
        item = _item(req, lst)
        fields = dict(item.data.get("_fields", {}))
        fields["id"] = item.data["id"]
        return json_response(fields)

    def create_item(req: Request) -> Response:
        site, lst = _list(req)
        _library_guard(lst)
        body = req.json()
        fields = body.get("fields")
        if not isinstance(fields, dict):
            raise bad_request("A 'fields' object is required.", "invalidRequest")
        if t.switches.list_write_shape:
            fields = accept_write(t, lst, fields)
        with t.store.transaction() as tx:
            next_id = int(lst.data.get("_next", 1))
            lst.data["_next"] = next_id + 1
            tx.update(lst, bump=False)
            data = new_list_item_data(t, site, lst, next_id, fields, req)
            item = tx.insert(
                NewItem("listItem", site.key, lst.key, lst.key, data, key=f"{lst.key}/{next_id}")
            )
        return json_response(render_list_item(t, item, expand_fields=True), 201)

    def update_fields(req: Request) -> Response:
        _, lst = _list(req)
        _library_guard(lst)
        item = _item(req, lst)
        patch = req.json()
        if t.switches.list_write_shape and isinstance(patch, dict):
            patch = accept_write(t, lst, patch)
        with t.store.transaction() as tx:
            fields = dict(item.data.get("_fields", {}))
            fields.update({k: v for k, v in patch.items() if k != "id"})
            item.data["_fields"] = fields
            item.data["_ver"] = int(item.data.get("_ver", 1)) + 1
            item.data["lastModifiedDateTime"] = Tenant.now()
            tx.update(item)
        return json_response({**fields, "id": item.data["id"]})

    def delete_item(req: Request) -> Response:
        _, lst = _list(req)
        _library_guard(lst)
        item = _item(req, lst)
        with t.store.transaction() as tx:
            tx.tombstone(item)
        return empty_response()

    def items_delta(req: Request) -> Response:
        site, lst = _list(req)
        library = str(lst.data.get("_drive") or "")
        spec = DeltaSpec(
            service="list",
            scope=library or lst.key,
            kinds=["driveItem"] if library else ["listItem"],
            path=f"/sites/{site.key}/lists/{lst.key}/items/delta",
            token_param="token",
            default_page=200,
            max_page=999,
            gone_code="resyncRequired",
            gone_message=(
                "Resync required. Replace any local items with the server's version"
                " (including deletes)."
            ),
            gone_inner="resyncChangesApplyDifferences",
            gone_location=True,
            supports_latest=True,
        )

        def render(row: Item, initial: bool) -> dict[str, Any] | None:
            if library:
                return (
                    None if "root" in row.data else render_library_item(t, row, lst, in_delta=True)
                )
            return render_list_item(t, row, expand_fields=True, in_delta=True)

        return delta_round(t, req, spec, render)

    def list_drive(req: Request) -> Response:
        _, lst = _list(req)
        drive = t.store.get(str(lst.data.get("_drive", "")))
        if drive is None:
            raise GraphError(404, "itemNotFound", "This list is not a document library.")
        return json_response(render_drive(t, drive))

    router.add("GET", "/sites", list_sites, service="sharepoint", units=2)
    router.add("GET", "/sites/getAllSites", get_all_sites, service="sharepoint", units=2)
    router.add("GET", "/sites/root", get_site, service="sharepoint", units=1)
    add("GET", "/sites/{site}", get_site)
    add("GET", "/sites/{site}/sites", subsites, units=2)
    router.add("GET", "/groups/{group}/sites/root", group_root_site, service="sharepoint", units=1)
    add("GET", "/sites/{site}/lists", list_lists, units=2)
    add("GET", "/sites/{site}/lists/{list}", get_list)
    add("GET", "/sites/{site}/lists/{list}/items", list_items, units=2)
    add("GET", "/sites/{site}/lists/{list}/drive", list_drive)
    add("POST", "/sites/{site}/lists/{list}/items", create_item, units=2)
    add("GET", "/sites/{site}/lists/{list}/items/delta", items_delta, units=2)
    add("GET", "/sites/{site}/lists/{list}/items/{item}", get_item)
    add("GET", "/sites/{site}/lists/{list}/items/{item}/fields", get_fields)
    add("PATCH", "/sites/{site}/lists/{list}/items/{item}/fields", update_fields, units=2)
    add("DELETE", "/sites/{site}/lists/{list}/items/{item}", delete_item, units=2)


def new_list_item_data(
    t: Tenant,
    site: Item,
    lst: Item,
    item_id: int,
    fields: dict[str, Any],
    req: Request | None = None,
) -> dict[str, Any]:

    now = Tenant.now()
    who = {"user": {"displayName": "Coffer"}}
    list_url = f"{site.data.get('webUrl')}/Lists/{lst.data.get('name')}"
    return {
        "id": str(item_id),
        "createdDateTime": now,
        "lastModifiedDateTime": now,
        "createdBy": who,
        "lastModifiedBy": who,
        "webUrl": f"{list_url}/DispForm.aspx?ID={item_id}",
        "contentType": {
            "id": "0x0100" + uuid.uuid5(uuid.NAMESPACE_OID, lst.key).hex[:24].upper(),
            "name": "Item",
        },
        "_fields": dict(fields),
        "_guid": "{" + str(uuid.uuid5(uuid.NAMESPACE_OID, f"{lst.key}/{item_id}")).upper() + "}",
        "_ver": 1,
    }
