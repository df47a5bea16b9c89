"""Restoring contacts: each contact recreated from its Graph JSON in its folder.

``contacts/Contacts`` in the snapshot is the default contact folder
(``/users/{id}/contacts``); its subfolders are contact folders
(``/contactFolders``, then ``childFolders``), found by name and created when
missing. For another mailbox, the restore folder takes the default folder's
place and the subfolders go under it.

The contact is created from its writable properties (user-post-contacts.md).
It is already there when a contact of the target folder has the same
properties; another version when the contact with its own Graph ID is there
with other properties (replace: create the snapshot's, then delete that one).
A name alone is no conflict: two people may share one.
"""

from __future__ import annotations

import threading
from typing import Any

from sources.m365.graph.errors import ItemGone
from sources.m365.restore.common import (
    KEEP_BOTH,
    REPLACE,
    FolderIndex,
    FolderIndexes,
    ServiceRun,
    by_graph_id,
    meaningful,
    same_values,
)
from sources.m365.restore.items import SnapItem, read_json

# The contact's writable properties (resources/contact.md); photos are not restored.
WRITABLE = (
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
    "yomiCompanyName",
    "yomiGivenName",
    "yomiSurname",
)


def contact_payload(contact: dict[str, Any]) -> dict[str, Any]:
    """The writable properties the contact has (empty ones too: Graph keeps "")."""
    return {k: contact[k] for k in WRITABLE if contact.get(k) is not None}


def _normal(name: str, value: Any) -> Any:
    if not meaningful(value):
        return None
    if name == "birthday" and isinstance(value, str):
        return value[:10]  # Exchange keeps the day; the time of day varies
    if name in ("emailAddresses",) and isinstance(value, list):
        return [
            {"address": str((v or {}).get("address") or "").lower(), "name": (v or {}).get("name")}
            for v in value
        ]
    return value


def is_same(ours: dict[str, Any], row: dict[str, Any]) -> bool:
    return same_values(contact_payload(ours), row, _normal)


class ContactKind:
    """How a contact is recognised in a target folder (common.ItemKind)."""

    def bucket(self, contact: dict[str, Any]) -> str:
        return str(contact.get("displayName") or "").casefold()

    def identities(self, contact: dict[str, Any]) -> list[str]:
        return by_graph_id(contact)

    def same(self, ours: dict[str, Any], row: dict[str, Any]) -> bool:
        return is_same(ours, row)


class ContactsWriter:
    """Restores the contacts of one mailbox (see the module docstring)."""

    def __init__(self, run: ServiceRun) -> None:
        self.run = run
        self.uid = str(run.placement.user_id)
        # () is the default folder; a path of names the folders under it.
        self._folders: dict[tuple[str, ...], str | None] = {(): "contacts"}
        self._indexes = FolderIndexes(ContactKind())
        self._lock = threading.RLock()

    def target_path(self, item: SnapItem) -> tuple[str, ...]:
        return (*self.run.placement.base, *item.folder_names[1:])

    def _children_url(self, parent: str) -> str:
        if parent == "contacts":
            return f"/users/{self.uid}/contactFolders"
        return f"/users/{self.uid}/contactFolders/{parent}/childFolders"

    def _find_child(self, parent: str, name: str) -> str | None:
        wanted = name.casefold()
        for folder in self.run.client.list_all(
            self._children_url(parent), self.run.res, params={"$top": "250"}
        ):
            if str(folder.get("displayName", "")).casefold() == wanted:
                return str(folder["id"])
        return None

    def folder_id(self, path: tuple[str, ...]) -> str | None:
        with self._lock:
            if path in self._folders:
                return self._folders[path]
            parent = self.folder_id(path[:-1])
            found: str | None = None
            if parent is not None:
                found = self._find_child(parent, path[-1])
                if found is None and not self.run.dry_run:
                    found = self._create_folder(parent, path[-1])
            self._folders[path] = found
            return found

    def _create_folder(self, parent: str, name: str) -> str:
        def find() -> dict[str, Any] | None:
            fid = self._find_child(parent, name)
            return {"id": fid} if fid else None

        return self.run.create_container(
            self._children_url(parent),
            {"displayName": name},
            find,
            f"creating contact folder {name!r}",
        )

    def _contacts_url(self, fid: str) -> str:
        if fid == "contacts":
            return f"/users/{self.uid}/contacts"
        return f"/users/{self.uid}/contactFolders/{fid}/contacts"

    def index(self, fid: str | None) -> FolderIndex:
        return self._indexes.get(
            fid,
            lambda key: self.run.client.list_all(
                self._contacts_url(key), self.run.res, params={"$top": "1000"}
            ),
        )

    def restore(self, item: SnapItem) -> None:
        run = self.run
        try:
            contact = read_json(run.reader, item)
        except ValueError as exc:
            run.fail(item.path, f"the backed-up contact cannot be read: {exc}")
            return
        fid = self.folder_id(self.target_path(item))
        index = self.index(fid)
        found, row = index.match(contact)
        action = run.settle(item.path, found)
        if action is None:
            return
        assert fid is not None
        self._create(fid, index, contact)
        if action == REPLACE and row is not None:
            self._delete(str(row["id"]))
            index.forget(str(row["id"]))
            run.done("replaced", item.path)
            return
        run.done("kept_both" if action == KEEP_BOTH else "created", item.path)

    def _create(self, fid: str, index: FolderIndex, contact: dict[str, Any]) -> None:
        run = self.run
        payload = contact_payload(contact)
        url = self._contacts_url(fid)
        known = index.ids()

        def find() -> dict[str, Any] | None:
            for row in run.client.list_all(url, run.res, params={"$top": "1000"}):
                if str(row.get("id")) not in known and is_same(contact, row):
                    return row
            return None

        made = run.create_once(
            lambda: run.client.send("POST", url, run.res, json_body=payload, idempotent=False),
            find,
            "creating the contact",
        )
        index.add(made)

    def _delete(self, cid: str) -> None:
        try:
            self.run.client.send(
                "DELETE", f"/users/{self.uid}/contacts/{cid}", self.run.res, idempotent=True
            )
        except ItemGone:
            pass
