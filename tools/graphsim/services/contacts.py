"""Personal contacts: contact folders, contacts, delta.

Sources: user-list-contactfolders.md (the folders inside the default Contacts folder),
contactfolder-list-childfolders.md, contactfolder-post-childfolders.md,
contactfolder-delta.md, user-list-contacts.md (default folder), contactfolder-list-
contacts.md, contact-delta.md, user-post-contacts.md, contact-update.md, contact-delete.md.

Like messages, contacts carry `changeKey` and `@odata.etag`; delta reports deletions as
`@removed` entries. Page size 10 by default, `$top` up to 1000.
"""

from __future__ import annotations

from typing import Any

from ..httpcore import GraphError, Request, Response, bad_request, empty_response, json_response
from ..odata import apply_select, paged_list, parse_select
from ..router import Router
from ..store import Item, NewItem, Transaction
from ..tenant import Tenant
from .common import DeltaSpec, delta_round, etag, public, require_item
from .mailmodel import wants_immutable_ids
from .outlookids import default_of, in_format

WRITABLE = {
    "assistantName",
    "birthday",
    "businessAddress",
    "businessHomePage",
    "businessPhones",
    "categories",
    "children",
    "companyName",
    "department",
    "displayName",
    "emailAddresses",
    "fileAs",
    "generation",
    "givenName",
    "homeAddress",
    "homePhones",
    "imAddresses",
    "initials",
    "jobTitle",
    "manager",
    "middleName",
    "mobilePhone",
    "nickName",
    "officeLocation",
    "otherAddress",
    "personalNotes",
    "profession",
    "spouseName",
    "surname",
    "title",
}


def folder_scope(user_id: str) -> str:
    return f"{user_id}/contactFolders"


def default_folder(t: Tenant, user: Item) -> Item:
    item = t.store.get(str(user.data.get("_wk", {}).get("contacts", "")))
    if item is None:
        raise GraphError(404, "ErrorItemNotFound", "The default contacts folder was not found.")
    return item


def resolve_folder(t: Tenant, user: Item, ref: str) -> Item:
    if ref.lower() == "contacts":
        return default_folder(t, user)
    item = t.store.get(ref)
    if item is None or item.kind != "contactFolder" or item.owner != user.key:
        raise GraphError(
            404, "ErrorItemNotFound", "The specified folder could not be found in the store."
        )
    return item


def render_folder(item: Item) -> dict[str, Any]:
    return public(item.data)


def render_contact(item: Item) -> dict[str, Any]:
    d = public(item.data)
    d["@odata.etag"] = etag(str(item.data.get("changeKey", "")))
    return d


def new_contact_data(
    folder: Item, payload: dict[str, Any], cid: str | None = None
) -> dict[str, Any]:
    now = Tenant.now()
    data: dict[str, Any] = {
        "id": cid or Tenant.new_outlook_id("AAMkAC"),
        "createdDateTime": now,
        "lastModifiedDateTime": now,
        "changeKey": Tenant.change_key(),
        "categories": [],
        "parentFolderId": folder.key,
        "emailAddresses": [],
        "businessPhones": [],
        "homePhones": [],
        "imAddresses": [],
        "children": [],
        "homeAddress": {},
        "businessAddress": {},
        "otherAddress": {},
    }
    for key in WRITABLE:
        if key in payload:
            data[key] = payload[key]
    if not data.get("displayName"):
        data["displayName"] = (
            " ".join(p for p in (data.get("givenName"), data.get("surname")) if p) or ""
        )
    data.setdefault("fileAs", data["displayName"])
    return data


def create_contact(tx: Transaction, user: Item, folder: Item, payload: dict[str, Any]) -> Item:
    data = new_contact_data(folder, payload)
    return tx.insert(NewItem("contact", user.key, folder.key, folder.key, data))


def register(router: Router, t: Tenant) -> None:
    def add(method: str, pattern: str, handler: Any) -> None:
        router.add(method, pattern, handler, service="outlook", owner_param="user")

    def rendered(req: Request, item: Item) -> dict[str, Any]:
        """The contact with its ID in the format the request asks for (outlookids.py)."""
        return in_format(t, render_contact(item), wants_immutable_ids(req.header("Prefer")))

    def list_folders(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        parent = resolve_folder(t, user, req.params.get("folder", "contacts"))
        return paged_list(
            req,
            t.tokens,
            f"/users/{user.key}/contactFolders/{parent.key}/childFolders",
            lambda after, limit: t.store.children(
                parent.key, ["contactFolder"], after_pk=after, limit=limit
            ),
            render_folder,
            default=10,
            maximum=1000,
            context=f"users('{user.key}')/contactFolders",
            filterable=["displayName"],
        )

    def create_folder(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        parent = resolve_folder(t, user, req.params.get("folder", "contacts"))
        name = str(req.json().get("displayName", "")).strip()
        if not name:
            raise bad_request("displayName is required.", "ErrorInvalidRequest")
        if t.store.find_name(parent.key, ["contactFolder"], name):
            raise GraphError(
                409, "ErrorFolderExists", "A folder with the specified name already exists."
            )
        with t.store.transaction() as tx:
            fid = Tenant.new_outlook_id("AAMkACF")
            data = {"id": fid, "displayName": name, "parentFolderId": parent.key}
            item = tx.insert(
                NewItem(
                    "contactFolder", user.key, folder_scope(user.key), parent.key, data, name=name
                )
            )
        return json_response(render_folder(item), 201)

    def get_folder(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        folder = resolve_folder(t, user, req.params["folder"])
        return json_response(apply_select(render_folder(folder), parse_select(req)))

    def patch_folder(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        folder = resolve_folder(t, user, req.params["folder"])
        name = req.json().get("displayName")
        with t.store.transaction() as tx:
            if name:
                folder.data["displayName"] = str(name)
                folder.name = str(name)
            tx.update(folder)
        return json_response(render_folder(folder))

    def delete_folder(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        folder = resolve_folder(t, user, req.params["folder"])
        if folder.key == default_folder(t, user).key:
            raise GraphError(
                403, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted."
            )
        with t.store.transaction() as tx:
            _delete_tree(tx, folder)
        return empty_response()

    def _delete_tree(tx: Transaction, folder: Item) -> None:
        for child in t.store.children(folder.key, ["contactFolder"]):
            _delete_tree(tx, child)
        for contact in t.store.children(folder.key, ["contact"]):
            tx.tombstone(contact)
        tx.tombstone(folder)

    def folders_delta(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        spec = DeltaSpec(
            service="contacts",
            scope=folder_scope(user.key),
            kinds=["contactFolder"],
            path=f"/users/{user.key}/contactFolders/delta",
        )

        def render(item: Item, initial: bool) -> dict[str, Any] | None:
            if item.data.get("_wellKnown"):
                return None
            if item.deleted:
                return {
                    "@odata.type": "#microsoft.graph.contactFolder",
                    "id": item.key,
                    "@removed": {"reason": "deleted"},
                }
            return {"@odata.type": "#microsoft.graph.contactFolder", **render_folder(item)}

        return delta_round(t, req, spec, render)

    def list_contacts(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        folder = resolve_folder(t, user, req.params.get("folder", "contacts"))
        return paged_list(
            req,
            t.tokens,
            f"/users/{user.key}/contactFolders/{folder.key}/contacts",
            lambda after, limit: t.store.children(
                folder.key, ["contact"], after_pk=after, limit=limit
            ),
            lambda item: rendered(req, item),
            default=10,
            maximum=1000,
            context=f"users('{user.key}')/contacts",
            filterable=["displayName", "givenName", "surname", "companyName"],
        )

    def post_contact(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        folder = resolve_folder(t, user, req.params.get("folder", "contacts"))
        payload = req.json()
        if not isinstance(payload, dict):
            raise bad_request("The request body must be a JSON object.")
        with t.store.transaction() as tx:
            item = create_contact(tx, user, folder, payload)
        return json_response(rendered(req, item), 201)

    def _contact(req: Request, user: Item) -> Item:
        item = require_item(t, default_of(req.params["contact"]), ["contact"], user.key, "contact")
        if (
            "folder" in req.params
            and item.parent != resolve_folder(t, user, req.params["folder"]).key
        ):
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return item

    def get_contact(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        return json_response(apply_select(rendered(req, _contact(req, user)), parse_select(req)))

    def patch_contact(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item = _contact(req, user)
        patch = req.json()
        with t.store.transaction() as tx:
            for key, value in patch.items():
                if key in WRITABLE:
                    item.data[key] = value
            item.data["changeKey"] = Tenant.change_key()
            item.data["lastModifiedDateTime"] = Tenant.now()
            tx.update(item)
        return json_response(rendered(req, item))

    def delete_contact(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item = _contact(req, user)
        with t.store.transaction() as tx:
            tx.tombstone(item)
        return empty_response()

    def contacts_delta(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        folder = resolve_folder(t, user, req.params.get("folder", "contacts"))
        spec = DeltaSpec(
            service="contacts",
            scope=folder.key,
            kinds=["contact"],
            path=f"/users/{user.key}/contactFolders/{folder.key}/contacts/delta",
        )

        def render(item: Item, initial: bool) -> dict[str, Any] | None:
            if item.deleted:
                removed = {
                    "@odata.type": "#microsoft.graph.contact",
                    "id": item.key,
                    "@removed": {"reason": "deleted"},
                }
                return in_format(t, removed, wants_immutable_ids(req.header("Prefer")))
            return {"@odata.type": "#microsoft.graph.contact", **rendered(req, item)}

        return delta_round(t, req, spec, render)

    add("GET", "/users/{user}/contactFolders", list_folders)
    add("POST", "/users/{user}/contactFolders", create_folder)
    add("GET", "/users/{user}/contactFolders/delta", folders_delta)
    add("GET", "/users/{user}/contactFolders/{folder}", get_folder)
    add("PATCH", "/users/{user}/contactFolders/{folder}", patch_folder)
    add("DELETE", "/users/{user}/contactFolders/{folder}", delete_folder)
    add("GET", "/users/{user}/contactFolders/{folder}/childFolders", list_folders)
    add("POST", "/users/{user}/contactFolders/{folder}/childFolders", create_folder)
    add("GET", "/users/{user}/contactFolders/{folder}/contacts/delta", contacts_delta)
    add("GET", "/users/{user}/contacts/delta", contacts_delta)
    for prefix in ("/users/{user}", "/users/{user}/contactFolders/{folder}"):
        add("GET", f"{prefix}/contacts", list_contacts)
        add("POST", f"{prefix}/contacts", post_contact)
        add("GET", f"{prefix}/contacts/{{contact}}", get_contact)
        add("PATCH", f"{prefix}/contacts/{{contact}}", patch_contact)
        add("DELETE", f"{prefix}/contacts/{{contact}}", delete_contact)
