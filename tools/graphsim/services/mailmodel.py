"""Exchange mailbox behaviour, shared by the mail endpoints and the admin API.

Sources: api-reference/v1.0/resources/mailfolder.md (well-known folder names),
message.md (properties; hasAttachments ignores inline attachments), user-post-messages.md
(JSON and base64 MIME creation: always a draft, 400 ErrorMimeContentInvalidBase64String),
message-update.md (properties writable only while isDraft), message-move.md (a move
returns the message with a new id), message-delete.md, mailfolder-update.md and
mailfolder-move.md (a folder keeps its id and its messages theirs).

Behaviours:
- Every message has a `changeKey`; `@odata.etag` is `W/"<changeKey>"`; any change
  (read state, flag, categories, attachments) takes a new changeKey.
- DELETE moves the message to Deleted Items (a new id, as Exchange moves do); deleting
  it from Deleted Items removes it from view.
- JSON creation honours `singleValueExtendedProperties`: `Integer 0x0E07`
  (PR_MESSAGE_FLAGS: no MSGFLAG_UNSENT 0x8 bit -> not a draft; MSGFLAG_READ 0x1 -> read),
  `SystemTime 0x0E06` (PR_MESSAGE_DELIVERY_TIME -> receivedDateTime) and
  `SystemTime 0x0039` (PR_CLIENT_SUBMIT_TIME -> sentDateTime); `receivedDateTime` and
  `sentDateTime` in the JSON are ignored; `internetMessageId` is kept.
- MIME creation keeps the uploaded bytes and serves them back unchanged from `$value`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html as html_lib
import re
from typing import Any

from ..content import ContentSource
from ..httpcore import GraphError, iso, parse_iso, utc_now
from ..mime import MimeAttachment, MimeDoc, ParsedMime, generated_body, preview
from ..mime import render_message as render_mime
from ..store import Item, NewItem, Transaction
from ..tenant import Tenant
from .common import etag, public

# Well-known folder names (mailfolder.md) and their display names; the top-level
# folders users see, in Outlook's order, come first.
WELL_KNOWN: dict[str, tuple[str, bool]] = {
    "archive": ("Archive", False),
    "conversationhistory": ("Conversation History", False),
    "deleteditems": ("Deleted Items", False),
    "drafts": ("Drafts", False),
    "inbox": ("Inbox", False),
    "junkemail": ("Junk Email", False),
    "outbox": ("Outbox", False),
    "sentitems": ("Sent Items", False),
    "recoverableitemsdeletions": ("Deletions", True),
    "scheduled": ("Scheduled", True),
    "searchfolders": ("Finder", True),
}
ROOT = "msgfolderroot"

MSGFLAG_READ = 0x1
MSGFLAG_UNSENT = 0x8


def folder_scope(user_id: str) -> str:
    return f"{user_id}/mailFolders"


def resolve_folder(t: Tenant, user: Item, ref: str) -> Item:
    """A mail folder by id or well-known name; 404 ErrorItemNotFound otherwise."""
    wk = user.data.get("_wk", {})
    key = wk.get(ref.lower(), ref)
    item = t.store.get(key)
    if item is None or item.kind != "mailFolder" or item.owner != user.key:
        raise GraphError(
            404, "ErrorItemNotFound", "The specified folder could not be found in the store."
        )
    return item


def render_folder(t: Tenant, item: Item) -> dict[str, Any]:
    d = public(item.data)
    d["childFolderCount"] = t.store.count_children(item.key, ["mailFolder"])
    d["totalItemCount"] = t.store.count_children(item.key, ["message"])
    d["unreadItemCount"] = t.store.count_json(item.key, "message", "$.isRead", 0)
    d.setdefault("isHidden", False)
    return d


def message_body(item: Item) -> tuple[str, str, str]:
    """(type, text, html) of a message: "text", "html" or "alternative"."""
    b = item.data.get("_body", {})
    if "gen" in b:
        text, body_html = generated_body(
            int(b["gen"]), str(b.get("greeting", "")), list(b.get("cids", []))
        )
        return str(b.get("type", "html")), text, body_html
    kind = str(b.get("type", "text"))
    content = str(b.get("content", ""))
    if kind == "html":
        return "html", _html_to_text(content), content
    return "text", content, ""


def _html_to_text(content: str) -> str:
    text = re.sub(r"(?is)<(script|style|head).*?</\1>", "", content)
    text = re.sub(r"(?s)<[^>]+>", " ", text)
    return html_lib.unescape(re.sub(r"[ \t]+", " ", text)).strip()


def wants_immutable_ids(prefer: str) -> bool:
    """`Prefer: IdType="ImmutableId"` (outlook-immutable-id.md)."""
    return bool(re.search(r'IdType\s*=\s*"?ImmutableId', prefer, re.I))


def message_id(item: Item, immutable: bool) -> str:
    return str(item.data.get("_immutableId") or item.key) if immutable else item.key


def render_message(
    t: Tenant,
    item: Item,
    *,
    body_text: bool = False,
    select: list[str] | None = None,
    immutable: bool = False,
) -> dict[str, Any]:
    """Message JSON. With `select` lacking body and bodyPreview, the body is not built."""
    d = public(item.data)
    d["id"] = message_id(item, immutable)
    wanted = {s.lower() for s in select} if select else None
    if wanted is None or "body" in wanted or "bodypreview" in wanted:
        kind, text, body_html = message_body(item)
        if body_text or kind == "text":
            d["body"] = {"contentType": "text", "content": text}
        else:
            d["body"] = {"contentType": "html", "content": body_html}
        d["bodyPreview"] = preview(text)
    d["hasAttachments"] = bool(item.data.get("_fileAttachments", 0))
    d["@odata.etag"] = etag(str(item.data.get("changeKey", "")))
    d["webLink"] = (
        f"https://outlook.office365.com/owa/?ItemID={item.key}&exvsurl=1&viewmodel=ReadMessageItem"
    )
    return d


def attachments_of(t: Tenant, message: Item) -> list[Item]:
    return t.store.children(message.key, ["attachment"])


def message_mime(t: Tenant, item: Item) -> MimeDoc | ContentSource:
    """The MIME served by `$value`: the uploaded bytes, or a rendering."""
    if item.data.get("_mime"):
        return t.content.open(item.data["_mime"])
    kind, text, body_html = message_body(item)
    atts = []
    for att in attachments_of(t, item):
        if att.data.get("@odata.type") != "#microsoft.graph.fileAttachment":
            continue
        atts.append(
            MimeAttachment(
                name=str(att.data.get("name", "attachment")),
                content_type=str(att.data.get("contentType") or "application/octet-stream"),
                source=t.content.open(att.content),
                inline=bool(att.data.get("isInline")),
                content_id=str(att.data.get("contentId") or ""),
            )
        )
    return render_mime(item.data, kind, text, body_html, atts)


def touch(item: Item) -> None:
    """Record a modification: new changeKey and lastModifiedDateTime."""
    item.data["changeKey"] = Tenant.change_key()
    item.data["lastModifiedDateTime"] = Tenant.now()


def _base_message(t: Tenant, user: Item, folder: Item, mid: str) -> dict[str, Any]:
    now = Tenant.now()
    immutable = Tenant.new_outlook_id("AAkALg")
    me = {"emailAddress": {"name": user.data.get("displayName"), "address": user.data.get("mail")}}
    return {
        "id": mid,
        "createdDateTime": now,
        "lastModifiedDateTime": now,
        "changeKey": Tenant.change_key(),
        "categories": [],
        "receivedDateTime": now,
        "sentDateTime": now,
        "internetMessageId": f"<{hashlib.sha1(mid.encode()).hexdigest()[:20]}@{t.domain}>",
        "subject": "",
        "importance": "normal",
        "parentFolderId": folder.key,
        "conversationId": "AAQkA" + hashlib.sha1(mid.encode()).hexdigest()[:40],
        "isDeliveryReceiptRequested": False,
        "isReadReceiptRequested": False,
        "isRead": True,
        "isDraft": True,
        "inferenceClassification": "focused",
        "from": me,
        "sender": me,
        "toRecipients": [],
        "ccRecipients": [],
        "bccRecipients": [],
        "replyTo": [],
        "flag": {"flagStatus": "notFlagged"},
        "_fileAttachments": 0,
        "_body": {"type": "text", "content": ""},
        "_immutableId": immutable,
    }


_WRITABLE = {
    "subject",
    "importance",
    "isRead",
    "categories",
    "flag",
    "inferenceClassification",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "from",
    "sender",
    "internetMessageId",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
}
_DRAFT_ONLY = {
    "bccRecipients",
    "body",
    "ccRecipients",
    "internetMessageId",
    "replyTo",
    "sender",
    "subject",
    "toRecipients",
    "from",
}


def create_message_json(
    t: Tenant, tx: Transaction, user: Item, folder: Item, payload: dict[str, Any]
) -> Item:
    """Create a message from Graph JSON (a draft unless PR_MESSAGE_FLAGS says otherwise)."""
    mid = Tenant.new_outlook_id()
    data = _base_message(t, user, folder, mid)
    for key in _WRITABLE:
        if key in payload:
            data[key] = payload[key]
    if "from" in payload and "sender" not in payload:
        data["sender"] = payload["from"]
    body = payload.get("body") or {}
    if body:
        ctype = str(body.get("contentType", "text")).lower()
        data["_body"] = {
            "type": "html" if ctype == "html" else "text",
            "content": str(body.get("content", "")),
        }
    props = {
        str(p.get("id", "")).lower().replace("  ", " "): p.get("value")
        for p in payload.get("singleValueExtendedProperties") or []
        if isinstance(p, dict)
    }
    if props:
        data["_sv"] = payload["singleValueExtendedProperties"]
    flags = props.get("integer 0x0e07")
    if flags is not None:
        try:
            value = int(str(flags), 0)
        except ValueError:
            raise GraphError(
                400, "ErrorInvalidExtendedPropertyValue", "Invalid value for PR_MESSAGE_FLAGS."
            ) from None
        data["isDraft"] = bool(value & MSGFLAG_UNSENT)
        data["isRead"] = bool(value & MSGFLAG_READ)
    for prop, field in (
        ("systemtime 0x0e06", "receivedDateTime"),
        ("systemtime 0x0039", "sentDateTime"),
    ):
        if props.get(prop):
            try:
                data[field] = iso(parse_iso(str(props[prop])))
            except ValueError:
                raise GraphError(
                    400, "ErrorInvalidExtendedPropertyValue", f"Invalid SystemTime for {prop}."
                ) from None
    item = tx.insert(NewItem("message", user.key, folder.key, folder.key, data))
    check_message_size(t, message_size(t, item))
    for att in payload.get("attachments") or []:
        add_file_attachment(t, tx, item, att)
    return item


def create_message_mime(
    t: Tenant, tx: Transaction, user: Item, folder: Item, raw: bytes, parsed: ParsedMime
) -> Item:
    """Create a draft from MIME: the raw bytes are kept and served by $value."""
    mid = Tenant.new_outlook_id()
    data = _base_message(t, user, folder, mid)
    for key, value in parsed.props.items():
        data[key] = value
    data["isDraft"] = True
    data["_body"] = {"type": parsed.body_type, "content": parsed.body}
    data["_mime"] = t.content.put_bytes(raw)
    item = tx.insert(NewItem("message", user.key, folder.key, folder.key, data))
    for att in parsed.attachments:
        _insert_attachment(
            t,
            tx,
            item,
            {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": att.name,
                "contentType": att.content_type,
                "isInline": att.inline,
                "contentId": att.content_id or None,
            },
            t.content.put_bytes(att.data),
            len(att.data),
        )
    return item


def message_size(t: Tenant, message: Item) -> int:
    """The size Exchange counts against a mailbox's maximum: body and attachments."""
    _kind, text, body_html = message_body(message)
    body = len((body_html or text).encode("utf-8"))
    return body + sum(int(a.data.get("size") or 0) for a in attachments_of(t, message))


def check_message_size(t: Tenant, size: int) -> None:
    """Switch ``max_message_size``: refuse a message that would grow past it."""
    limit = t.switches.max_message_size
    if limit and size > limit:
        raise GraphError(
            413, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size."
        )


def _insert_attachment(
    t: Tenant,
    tx: Transaction,
    message: Item,
    props: dict[str, Any],
    content: dict[str, Any] | None,
    size: int,
) -> Item:
    check_message_size(t, message_size(t, message) + size)
    aid = Tenant.new_outlook_id("AAMkAtt")
    data = {
        "@odata.type": props.get("@odata.type", "#microsoft.graph.fileAttachment"),
        "id": aid,
        "lastModifiedDateTime": Tenant.now(),
        "name": props.get("name") or "attachment",
        "contentType": props.get("contentType") or "application/octet-stream",
        "size": size,
        "isInline": bool(props.get("isInline", False)),
    }
    if data["@odata.type"] == "#microsoft.graph.fileAttachment":
        data["contentId"] = props.get("contentId")
        data["contentLocation"] = None
    att = tx.insert(
        NewItem("attachment", message.owner, message.key, message.key, data, content=content)
    )
    if data["@odata.type"] == "#microsoft.graph.fileAttachment" and not data["isInline"]:
        message.data["_fileAttachments"] = int(message.data.get("_fileAttachments", 0)) + 1
    touch(message)
    tx.update(message)
    return att


def add_file_attachment(t: Tenant, tx: Transaction, message: Item, payload: dict[str, Any]) -> Item:
    """POST .../attachments with a fileAttachment (contentBytes) or referenceAttachment."""

    kind = payload.get("@odata.type", "")
    if kind == "#microsoft.graph.referenceAttachment":
        return _insert_attachment(t, tx, message, payload, None, 0)
    if kind != "#microsoft.graph.fileAttachment":
        raise GraphError(400, "ErrorInvalidRequest", "The attachment type is not supported.")
    try:
        data = base64.b64decode(str(payload.get("contentBytes", "")), validate=True)
    except (binascii.Error, ValueError):
        raise GraphError(
            400, "ErrorInvalidRequest", "The contentBytes value is not valid base64."
        ) from None
    # attachment-createuploadsession.md: attachments of 3 MB or more need an upload session.
    if len(data) > 3 * 1024 * 1024:
        raise GraphError(
            413,
            "ErrorRequestEntityTooLarge",
            "The attachment is larger than 3 MB; use attachments/createUploadSession.",
        )
    return _insert_attachment(t, tx, message, payload, t.content.put_bytes(data), len(data))


def insert_uploaded_attachment(
    t: Tenant,
    tx: Transaction,
    message: Item,
    props: dict[str, Any],
    content: dict[str, Any],
    size: int,
) -> Item:
    return _insert_attachment(
        t, tx, message, {"@odata.type": "#microsoft.graph.fileAttachment", **props}, content, size
    )


def delete_attachment(tx: Transaction, message: Item, att: Item) -> None:
    tx.tombstone(att)
    if att.data.get("@odata.type") == "#microsoft.graph.fileAttachment" and not att.data.get(
        "isInline"
    ):
        message.data["_fileAttachments"] = max(0, int(message.data.get("_fileAttachments", 0)) - 1)
    touch(message)
    tx.update(message)


def update_message(tx: Transaction, item: Item, patch: dict[str, Any]) -> Item:
    """PATCH a message. Draft-only properties on a sent message give 400."""
    if not item.data.get("isDraft"):
        locked = sorted(k for k in patch if k in _DRAFT_ONLY)
        if locked:
            raise GraphError(
                400,
                "ErrorInvalidPropertyUpdateSentMessage",
                f"Update operation is invalid for property of a sent message: {locked[0]}.",
            )
    for key, value in patch.items():
        if key == "body":
            ctype = str((value or {}).get("contentType", "text")).lower()
            item.data["_body"] = {
                "type": "html" if ctype == "html" else "text",
                "content": str((value or {}).get("content", "")),
            }
            item.data.pop("_mime", None)
        elif key in _WRITABLE:
            item.data[key] = value
        elif key in (
            "isDraft",
            "receivedDateTime",
            "sentDateTime",
            "id",
            "changeKey",
            "parentFolderId",
        ):
            continue  # read-only, silently ignored as Graph does
    touch(item)
    return tx.update(item)


def copy_message(
    t: Tenant, tx: Transaction, item: Item, dest: Item, *, keep_immutable_id: bool = False
) -> Item:
    """A copy in `dest` with new ids for the message and its attachments (a move keeps
    the immutable id: outlook-immutable-id.md, "Lifetime of immutable IDs")."""
    data = dict(item.data)
    data["id"] = Tenant.new_outlook_id()
    if not keep_immutable_id:
        data["_immutableId"] = Tenant.new_outlook_id("AAkALg")
    data["parentFolderId"] = dest.key
    data["changeKey"] = Tenant.change_key()
    data["lastModifiedDateTime"] = Tenant.now()
    new = tx.insert(NewItem("message", item.owner, dest.key, dest.key, data, content=item.content))
    for att in attachments_of(t, item):
        adata = dict(att.data)
        adata["id"] = Tenant.new_outlook_id("AAMkAtt")
        tx.insert(NewItem("attachment", att.owner, new.key, new.key, adata, content=att.content))
    return new


def move_message(t: Tenant, tx: Transaction, item: Item, dest: Item) -> Item:
    """Move to `dest`: a new item id (and new attachment ids); the old id is removed."""
    new = copy_message(t, tx, item, dest, keep_immutable_id=True)
    for att in attachments_of(t, item):
        tx.tombstone(att)
    tx.tombstone(item)
    return new


def delete_message(t: Tenant, tx: Transaction, user: Item, item: Item) -> Item | None:
    """DELETE: move to Deleted Items; from Deleted Items, remove. Returns the moved item."""
    deleted_items = user.data.get("_wk", {}).get("deleteditems")
    if item.parent == deleted_items or deleted_items is None:
        for att in attachments_of(t, item):
            tx.tombstone(att)
        tx.tombstone(item)
        return None
    dest = t.store.get(str(deleted_items))
    assert dest is not None
    return move_message(t, tx, item, dest)


def create_folder(t: Tenant, tx: Transaction, user: Item, parent: Item, name: str) -> Item:
    """Create a mail folder; 409 ErrorFolderExists on a duplicate name under the parent."""
    name = name.strip()
    if not name:
        raise GraphError(400, "ErrorInvalidRequest", "The folder displayName is required.")
    if t.store.find_name(parent.key, ["mailFolder"], name) is not None:
        raise GraphError(
            409, "ErrorFolderExists", "A folder with the specified name already exists."
        )
    fid = Tenant.new_outlook_id("AAMkAF")
    data = {"id": fid, "displayName": name, "parentFolderId": parent.key, "isHidden": False}
    return tx.insert(
        NewItem("mailFolder", user.key, folder_scope(user.key), parent.key, data, name=name)
    )


def rename_folder(t: Tenant, tx: Transaction, folder: Item, name: str) -> Item:
    """PATCH displayName (mailfolder-update.md); 409 ErrorFolderExists on a sibling's name.

    The folder keeps its id and its messages: only the folder delta reports it."""
    name = name.strip()
    if not name:
        raise GraphError(400, "ErrorInvalidRequest", "The folder displayName is required.")
    other = t.store.find_name(folder.parent, ["mailFolder"], name)
    if other is not None and other.key != folder.key:
        raise GraphError(
            409, "ErrorFolderExists", "A folder with the specified name already exists."
        )
    folder.data["displayName"] = name
    folder.name = name
    return tx.update(folder)


def move_folder(t: Tenant, tx: Transaction, folder: Item, dest: Item) -> Item:
    """Move a folder and its contents under `dest` (mailfolder-move.md).

    The folder keeps its id, and its messages and subfolders theirs (a folder's entry id
    survives a move within a mailbox): the folder delta reports the folder with its new
    parentFolderId; the messages' own deltas report nothing. Distinguished folders cannot
    be moved (403); a folder cannot go into itself or below itself (400); a sibling of
    the same name at the destination is 409 ErrorFolderExists."""
    if folder.data.get("_wellKnown"):
        raise GraphError(
            403, "ErrorMoveDistinguishedFolder", "Distinguished folders cannot be moved."
        )
    if dest.owner != folder.owner or dest.kind != "mailFolder":
        raise GraphError(404, "ErrorItemNotFound", "The destination folder was not found.")
    cur: Item | None = dest
    while cur is not None:
        if cur.key == folder.key:
            raise GraphError(
                400, "ErrorMoveCopyFailed", "A folder cannot be moved into itself or a subfolder."
            )
        cur = t.store.get(cur.parent) if cur.kind == "mailFolder" and cur.parent else None
    if dest.key == folder.parent:
        return folder
    if t.store.find_name(dest.key, ["mailFolder"], str(folder.data.get("displayName", ""))):
        raise GraphError(
            409, "ErrorFolderExists", "A folder with the specified name already exists."
        )
    folder.parent = dest.key
    folder.data["parentFolderId"] = dest.key
    return tx.update(folder)


def delete_folder(t: Tenant, tx: Transaction, folder: Item) -> None:
    """Delete a folder and everything in it (tombstones, so deltas report them)."""
    for child in t.store.children(folder.key, ["mailFolder"]):
        delete_folder(t, tx, child)
    for msg in t.store.children(folder.key, ["message"]):
        for att in attachments_of(t, msg):
            tx.tombstone(att)
        tx.tombstone(msg)
    tx.tombstone(folder)


def received_now() -> str:
    return iso(utc_now())
