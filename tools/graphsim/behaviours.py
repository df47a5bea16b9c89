"""Real Microsoft 365 behaviours that break backups (issue 13), each switchable.

The default tenant is healthy: every behaviour is off. `--behaviour NAME` (or
`POST /_sim/behaviours`) turns one on; `--profile realistic` turns on every
per-object behaviour and marks a few objects of the tenant to show them (see
`apply_profile`). Each behaviour answers what the cited source shows Graph
answering (docs/simulator.md, "Behaviours"):

    channel_delta_empty  channel messages delta of a channel without messages:
                         400 BadRequest "Parameter 'DeltaToken' not supported for
                         this request." (microsoft-graph-docs #7382, Corso errors.go)
    unreadable           marked items whose content can never be read:
                         malwareDetected   403 {"code": "malwareDetected",
                                           "message": "Malware detected"}
                                           (onedrive-api-docs #1626, #1882)
                         corrupt           500 generalException on every attempt
                         ErrorInvalidRecipients, ErrorCannotOpenFileAttachment
                                           (Corso errors.go: items enumerated that
                                           cannot be retrieved)
    office_rewrite       SharePoint document libraries (not OneDrive) rewrite Office
                         files on download: size and hash differ from the metadata
                         (rclone's onedrive docs, "Unexpected file size/hash
                         differences on Sharepoint"; onedrive-api-docs #935)
    deleted_in_flight    marked mail (and contact) folders vanish once the run asks
                         for their messages (contacts): 404 ErrorSyncFolderNotFound
                         "The folder to be synchronized could not be found."
                         (corso #1847); marked messages vanish when their MIME
                         is asked for: 404 ErrorItemNotFound "The specified
                         object was not found in the store."
                         (microsoft-graph-docs-contrib #3606)
    no_service           marked users: "onPremises" mailbox 404
                         MailboxNotEnabledForRESTAPI; "invalidUser" 404
                         ErrorInvalidUser; "noOneDrive" 404 ResourceNotFound
                         "User's mysite not found." (Corso errors.go)
    locked_sites         marked sites answer every request 423 notAllowed with
                         innerError resourceLocked (Corso errors.go; Microsoft
                         Learn "Lock and unlock sites")
    soft-deleted users   `POST /_sim/behaviours {"soft_delete": [user]}`: the user is
                         deleted (soft: Entra keeps it 30 days in
                         /directory/deletedItems), so /users no longer lists it
                         (Learn "directory-deleteditems-list"; no switch: it is
                         a change of the tenant, not a way of answering)
    no_spo_license       tenant-wide, a mail-only tenant: every SharePoint and
                         OneDrive request answers 400 BadRequest "Tenant does not
                         have a SPO license." (onedrive-api-docs #1266). Not part of
                         the realistic profile (it removes SharePoint altogether).

Thread-safe: the sets are replaced, never mutated in place, under a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .httpcore import GraphError, Request, Response
from .mutations import mutate
from .services.outlookids import default_of
from .store import Item, NewItem
from .tenant import Tenant

BEHAVIOURS = (
    "channel_delta_empty",
    "unreadable",
    "office_rewrite",
    "deleted_in_flight",
    "no_service",
    "locked_sites",
    "no_spo_license",
)
REALISTIC = tuple(b for b in BEHAVIOURS if b != "no_spo_license")
PROFILES = {"healthy": (), "realistic": REALISTIC}

UNREADABLE = (
    "malwareDetected",
    "corrupt",
    "ErrorInvalidRecipients",
    "ErrorCannotOpenFileAttachment",
)
NO_SERVICE = ("onPremises", "invalidUser", "noOneDrive")
# What SharePoint rewrites (rclone: "mainly Office files (.docx, .xlsx, etc.)").
OFFICE_EXTENSIONS = (".docx", ".xlsx", ".pptx", ".docm", ".xlsm", ".pptm", ".doc", ".xls", ".ppt")
# Appended to an Office file's bytes on download: SharePoint stamps its own properties
# into the document; any change of size and hash shows the client the same thing.
OFFICE_FILE = "Quarterly budget.xlsx"  # the realistic profile's Office file in a library
REWRITE_STAMP = b"\n<!-- SharePoint: document properties promoted on download -->\n"


@dataclass
class Behaviours:
    """Which behaviours are on, and the objects (by Graph id) they apply to."""

    enabled: frozenset[str] = frozenset()
    marks: dict[str, str] = field(default_factory=dict)  # Graph id -> what it does
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, enable: list[str] = [], disable: list[str] = []) -> None:  # noqa: B006
        for name in [*enable, *disable]:
            if name not in BEHAVIOURS:
                raise ValueError(f"unknown behaviour {name!r}; expected one of {BEHAVIOURS}")
        with self._lock:
            self.enabled = frozenset((self.enabled | set(enable)) - set(disable))

    def mark(self, key: str, what: str) -> None:
        allowed = (*UNREADABLE, *NO_SERVICE, "vanish", "locked")
        if what not in allowed:
            raise ValueError(f"unknown mark {what!r}; expected one of {allowed}")
        with self._lock:
            self.marks = {**self.marks, key: what}

    def unmark(self, key: str) -> None:
        with self._lock:
            self.marks = {k: v for k, v in self.marks.items() if k != key}

    def describe(self) -> dict[str, Any]:
        return {"enabled": sorted(self.enabled), "marks": dict(sorted(self.marks.items()))}

    def on(self, name: str) -> bool:
        return name in self.enabled


def _locked() -> GraphError:
    return GraphError(
        423,
        "notAllowed",
        "Access to this site has been blocked: the site is locked by an administrator.",
        inner_code="resourceLocked",
    )


def _spo_license() -> GraphError:
    return GraphError(400, "BadRequest", "Tenant does not have a SPO license.")


def before(t: Tenant, b: Behaviours, req: Request, route: str, params: dict[str, str]) -> None:
    """Raise the error a behaviour answers for this request, or apply its side
    effect (a folder deleted in flight). Called after authentication and
    throttling, before the handler."""
    if not b.enabled:
        return
    marks = b.marks
    service_of_route = route.split(" ", 1)[1] if " " in route else route
    if b.on("no_spo_license") and _sharepoint_route(service_of_route):
        raise _spo_license()
    if b.on("locked_sites") and marks.get(params.get("site", "")) == "locked":
        raise _locked()
    user = params.get("user", "")
    if b.on("no_service") and user:
        found = t.user(user)
        what = marks.get(found.key if found else user)
        if what == "onPremises" and _mail_route(service_of_route):
            raise GraphError(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        if what == "invalidUser" and _mail_route(service_of_route):
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
        if what == "noOneDrive" and service_of_route.startswith("/users/{user}/drive"):
            raise GraphError(404, "ResourceNotFound", "User's mysite not found.")
    if b.on("channel_delta_empty") and route.endswith("/messages/delta") and "channel" in params:
        channel = _channel(t, params)
        if channel is not None and not t.store.children(channel, ["chatMessage"], limit=1):
            raise GraphError(
                400, "BadRequest", "Parameter 'DeltaToken' not supported for this request."
            )
    if b.on("deleted_in_flight"):
        folder = params.get("folder", "")
        folder_delta = route.endswith(("/messages/delta", "/contacts/delta"))
        if folder_delta and marks.get(folder) == "vanish":
            _delete(t, folder)
            b.unmark(folder)
            raise GraphError(
                404,
                "ErrorSyncFolderNotFound",
                "The folder to be synchronized could not be found.",
            )
        message = _message_key(t, params.get("message", ""))
        if route.endswith("/$value") and marks.get(message) == "vanish":
            _delete(t, message, hard=True)
            b.unmark(message)
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
    if b.on("unreadable"):
        key = _content_key(t, route, params)
        what = marks.get(key or "")
        if key and what in UNREADABLE:
            raise _unreadable(what)


def _unreadable(what: str) -> GraphError:
    if what == "malwareDetected":
        return GraphError(403, "malwareDetected", "Malware detected")
    if what == "corrupt":
        return GraphError(500, "generalException", "An unspecified error has occurred.")
    if what == "ErrorInvalidRecipients":
        return GraphError(
            400, "ErrorInvalidRecipients", "One or more of the recipients are not valid."
        )
    return GraphError(
        400, "ErrorCannotOpenFileAttachment", "OLE conversion failed for an attachment."
    )


def after(t: Tenant, b: Behaviours, req: Request, route: str, resp: Response) -> Response:
    """Rewrite a SharePoint library's Office file on download (office_rewrite)."""
    if not b.on("office_rewrite") or resp.status != 200 or not route.endswith("/_dl/{token}"):
        return resp
    try:
        payload = t.read_download_token(req.params["token"])
    except GraphError:
        return resp
    if payload.get("v"):
        return resp  # earlier versions come back as stored
    item = t.store.get(str(payload["k"]))
    if item is None or not office_in_library(t, item):
        return resp
    length = resp.content_length() + len(REWRITE_STAMP)
    body = _chain(resp.chunks(), REWRITE_STAMP)
    headers = [(k, v) for k, v in resp.headers if k.lower() != "content-length"]
    return Response(resp.status, headers, body, length, on_sent=resp.on_sent)


def office_in_library(t: Tenant, item: Item) -> bool:
    """An Office file in a SharePoint document library (not a OneDrive)."""
    name = str(item.data.get("name") or "").lower()
    if "file" not in item.data or not name.endswith(OFFICE_EXTENSIONS):
        return False
    drive = t.store.get(item.scope)
    return drive is not None and drive.data.get("driveType") == "documentLibrary"


def _chain(chunks: Iterator[bytes], tail: bytes) -> Iterator[bytes]:
    yield from chunks
    yield tail


def _sharepoint_route(pattern: str) -> bool:
    return pattern.startswith(("/sites", "/drives", "/users/{user}/drive", "/groups/{group}/drive"))


def _mail_route(pattern: str) -> bool:
    return pattern.startswith(
        (
            "/users/{user}/mail",
            "/users/{user}/messages",
            "/users/{user}/contact",
            "/users/{user}/calendar",
            "/users/{user}/events",
            "/users/{user}/inbox",
        )
    )


def _channel(t: Tenant, params: dict[str, str]) -> str | None:
    ref = params.get("channel", "")
    item = t.store.get(ref)
    return item.key if item is not None and item.kind == "channel" else None


def _content_key(t: Tenant, route: str, params: dict[str, str]) -> str | None:
    """The Graph id whose content this request reads, if it reads content."""
    if route.endswith("/_dl/{token}"):
        try:
            payload = t.read_download_token(params["token"])
        except GraphError:
            return None
        return str(payload["k"])
    if route.endswith("/items/{item}/content"):
        return params.get("item")
    if route.endswith("/messages/{message}/$value"):
        return _message_key(t, params.get("message", ""))
    if route.endswith("/attachments") and "event" in params:
        # Either ID format names the event (outlook-immutable-id.md): marks hold the default.
        return default_of(params.get("event", ""))
    return None


def _message_key(t: Tenant, ref: str) -> str:
    """The stored key of a message named by its ID or its immutable ID."""
    if not ref or t.store.get(ref) is not None:
        return ref
    found = t.store.message_by_immutable_id(ref)
    return found.key if found is not None else ref


def _delete(t: Tenant, key: str, *, hard: bool = False) -> None:
    try:
        mutate(t, {"op": "delete", "id": key, "hard": hard})
    except GraphError:
        pass


# -- the realistic profile -------------------------------------------------------------------


def apply_profile(t: Tenant, b: Behaviours, name: str) -> dict[str, Any]:
    """Turn on the profile's behaviours and mark the objects that show them.

    Deterministic for a tenant (objects are chosen in storage order). Idempotent:
    an empty channel is created once. Returns what was marked (also in
    `GET /_sim/behaviours`)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {sorted(PROFILES)}")
    b.set(enable=list(PROFILES[name]))
    if name != "realistic":
        return b.describe()
    # The restore-side behaviours (tenant.Switches) belong to the same real tenant:
    # IDs per request, delegated write scopes, 4 MB requests, list write shapes,
    # evolvable enums, and Exchange Online's default 35 MB maximum message size
    # (MaxReceiveSize; exchange-online-limits "Message limits").
    t.switches.update(
        {
            "strict_immutable_ids": True,
            "enforce_delegated_scopes": True,
            "request_size_limit": True,
            "list_write_shape": True,
            "evolvable_enums": True,
            "max_message_size": 35 * 1024 * 1024,
        }
    )
    users = [
        u
        for u in t.store.iter_live(["user"])
        if u.data.get("_purpose") == "user" and u.data.get("_mailbox") and u.data.get("_drive")
    ]
    if len(users) >= 3:
        # The last licensed user's mailbox moved on-premises; the one before has no
        # OneDrive provisioned yet. The others keep both.
        b.mark(users[-1].key, "onPremises")
        b.mark(users[-2].key, "noOneDrive")
    first = users[0] if users else None
    if first is not None:
        folders = [
            f
            for f in t.store.iter_live(["mailFolder"])
            if f.owner == first.key and not f.data.get("_wellKnown")
        ]
        vanishing = folders[-1].key if folders else None
        if vanishing is not None:
            b.mark(vanishing, "vanish")
        contact_folders = [f for f in t.store.iter_live(["contactFolder"]) if f.owner == first.key]
        if contact_folders:
            b.mark(contact_folders[-1].key, "vanish")
        messages = [
            m
            for m in t.store.iter_live(["message"])
            if m.owner == first.key and not m.data.get("isDraft") and m.parent != vanishing
        ]
        if len(messages) >= 3:
            b.mark(messages[0].key, "corrupt")
            b.mark(messages[1].key, "ErrorInvalidRecipients")
            b.mark(messages[2].key, "vanish")
        files = [
            f
            for f in t.store.iter_live(["driveItem"])
            if f.scope == first.data.get("_drive") and "file" in f.data and f.content
        ]
        if files:
            b.mark(files[0].key, "malwareDetected")
        events = [
            e
            for e in t.store.iter_live(["event"])
            if e.owner == first.key and e.data.get("hasAttachments")
        ]
        if events:
            b.mark(events[0].key, "ErrorCannotOpenFileAttachment")
    sites = [s for s in t.store.iter_live(["site"]) if not s.data.get("_personal")]
    if len(sites) >= 2:
        b.mark(sites[-1].key, "locked")
    if sites:
        _office_file(t, sites[0])
    _empty_channel(t)
    _guest(t)
    return b.describe()


def _office_file(t: Tenant, site: Item) -> None:
    """An Office file in the site's document library (SharePoint rewrites those on
    download), created once at the library's root."""
    drive = str(site.data.get("_drive") or "")
    items = [i for i in t.store.iter_live(["driveItem"]) if i.scope == drive]
    root = next((i for i in items if "root" in i.data), None)
    if root is None or any(i.data.get("name") == OFFICE_FILE for i in items):
        return
    mutate(
        t,
        {
            "op": "create",
            "kind": "file",
            "parent": root.key,
            "name": OFFICE_FILE,
            "size": 24_000,
            "seed": 2027,
        },
    )


def soft_delete(t: Tenant, ref: str) -> str:
    """Delete a user the way Entra does first (soft): gone from ``/users`` and every
    user-addressed request. Returns the user's id. Raises GraphError 404."""
    user = t.require_user(ref)
    with t.store.transaction() as tx:
        tx.tombstone(user)
    t.invalidate_users()
    return user.key


def _guest(t: Tenant) -> None:
    """A guest from another tenant (userType Guest, #EXT# UPN), invited once: its
    mailbox and OneDrive live in its home tenant (Entra B2B)."""
    gid = "9a7b0c1d-0000-4000-8000-00000000ae57"
    if t.store.get(gid) is not None:
        return
    data = {
        "id": gid,
        "displayName": "Pat Partner (Fabrikam)",
        "userPrincipalName": f"pat_fabrikam.com#EXT#@{t.domain}",
        "mail": "pat@fabrikam.com",
        "accountEnabled": True,
        "userType": "Guest",
        "createdDateTime": t.now(),
        "assignedLicenses": [],
        "_mailbox": False,
        "_purpose": "guest",
        "_wk": {},
        "_drive": None,
    }
    with t.store.transaction() as tx:
        tx.insert(
            NewItem("user", gid, "users", "tenant", data, name=str(data["userPrincipalName"]))
        )
    t.invalidate_users()


def _empty_channel(t: Tenant) -> None:
    """A channel nobody posted in yet (in the first team), created once."""
    team = next(iter(t.store.iter_live(["team"])), None)
    if team is None:
        return
    cid = f"19:empty{team.key.replace('-', '')[:24]}@thread.tacv2"
    if t.store.get(cid) is not None:
        return
    data = {
        "id": cid,
        "createdDateTime": t.now(),
        "displayName": "Announcements (quiet)",
        "description": "A channel without messages",
        "email": "",
        "membershipType": "standard",
        "webUrl": f"https://teams.microsoft.com/l/channel/{cid}/quiet?groupId={team.key}",
    }
    with t.store.transaction() as tx:
        tx.insert(
            NewItem("channel", team.key, f"{team.key}/channels", team.key, data, name="quiet")
        )
