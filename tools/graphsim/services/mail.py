"""Mail endpoints: folders, messages, delta, MIME (behaviour in mailmodel.py).

Sources: user-list-mailfolders.md (top level only; `includeHiddenFolders`),
mailfolder-list-childfolders.md, mailfolder-post-childfolders.md, mailfolder-delta.md,
message-delta.md and concepts/delta-query-messages.md (per-folder delta, `$select`,
`$top`, `Prefer: odata.maxpagesize`, `changeType`, `$filter=receivedDateTime ge|gt`,
`@removed` with reason), user-list-messages.md (page size 10, `$top` 1..1000),
message-get.md (`/$value` is the MIME), user-post-messages.md, message-update.md,
message-delete.md, message-move.md, message-copy.md, mailfolder-update.md,
mailfolder-move.md.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from ..httpcore import GraphError, Request, Response, bad_request, empty_response, json_response
from ..mime import MimeDoc, decode_base64_mime, parse_mime
from ..odata import apply_select, paged_list, parse_filter, parse_select, read_state
from ..router import Router
from ..store import Item
from ..tenant import Tenant
from . import mailmodel as mm
from . import uploads
from .common import DeltaSpec, delta_round, require_item

MAX_PAGE = 1000
DEFAULT_PAGE = 10


def register(router: Router, t: Tenant) -> None:
    def add(method: str, pattern: str, handler: Any, **kw: Any) -> None:
        router.add(method, pattern, handler, service="outlook", owner_param="user", **kw)

    def prefer_text(req: Request) -> bool:
        return bool(
            re.search(r'outlook\.body-content-type\s*=\s*"?text', req.header("Prefer"), re.I)
        )

    # -- folders ------------------------------------------------------------------------

    def list_top_folders(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        root = mm.resolve_folder(t, user, mm.ROOT)
        return _list_folders(req, user, root, f"/users/{user.key}/mailFolders")

    def _list_folders(req: Request, user: Item, parent: Item, path: str) -> Response:
        hidden = req.query.get("includeHiddenFolders", "").lower() == "true"

        def render(item: Item) -> dict[str, Any] | None:
            if item.data.get("isHidden") and not hidden:
                return None
            return mm.render_folder(t, item)

        return paged_list(
            req,
            t.tokens,
            path,
            lambda after, limit: t.store.children(
                parent.key, ["mailFolder"], after_pk=after, limit=limit
            ),
            render,
            default=DEFAULT_PAGE,
            maximum=MAX_PAGE,
            context=f"users('{user.key}')/mailFolders",
            filterable=["displayName", "id"],
        )

    def create_top_folder(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        root = mm.resolve_folder(t, user, mm.ROOT)
        return _create_folder(req, user, root)

    def _create_folder(req: Request, user: Item, parent: Item) -> Response:
        body = req.json()
        with t.store.transaction() as tx:
            folder = mm.create_folder(t, tx, user, parent, str(body.get("displayName", "")))
        return json_response(mm.render_folder(t, folder), 201)

    def get_folder(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        folder = mm.resolve_folder(t, user, req.params.get("child") or req.params["folder"])
        return json_response(apply_select(mm.render_folder(t, folder), parse_select(req)))

    def patch_folder(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        folder = mm.resolve_folder(t, user, req.params.get("child") or req.params["folder"])
        body = req.json()
        name = body.get("displayName")
        with t.store.transaction() as tx:
            if name:
                other = t.store.find_name(folder.parent, ["mailFolder"], str(name))
                if other is not None and other.key != folder.key:
                    raise GraphError(
                        409, "ErrorFolderExists", "A folder with the specified name already exists."
                    )
                folder.data["displayName"] = str(name)
                folder.name = str(name)
            tx.update(folder)
        return json_response(mm.render_folder(t, folder))

    def move_folder(req: Request) -> Response:
        """mailfolder-move.md: 200 with the folder, under its destination."""
        user = t.require_mailbox(req.params["user"])
        folder = mm.resolve_folder(t, user, req.params.get("child") or req.params["folder"])
        dest_ref = str((req.json() or {}).get("destinationId", ""))
        if not dest_ref:
            raise bad_request("destinationId is required.", "ErrorInvalidIdMalformed")
        dest = mm.resolve_folder(t, user, dest_ref)
        with t.store.transaction() as tx:
            mm.move_folder(t, tx, folder, dest)
        fresh = t.store.get(folder.key)
        assert fresh is not None
        return json_response(mm.render_folder(t, fresh))

    def delete_folder(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        folder = mm.resolve_folder(t, user, req.params.get("child") or req.params["folder"])
        if folder.data.get("_wellKnown"):
            raise GraphError(
                403, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted."
            )
        with t.store.transaction() as tx:
            mm.delete_folder(t, tx, folder)
        return empty_response()

    def list_child_folders(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        folder = mm.resolve_folder(t, user, req.params["folder"])
        return _list_folders(
            req, user, folder, f"/users/{user.key}/mailFolders/{folder.key}/childFolders"
        )

    def create_child_folder(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        folder = mm.resolve_folder(t, user, req.params["folder"])
        return _create_folder(req, user, folder)

    def folders_delta(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        spec = DeltaSpec(
            service="folders",
            scope=mm.folder_scope(user.key),
            kinds=["mailFolder"],
            path=f"/users/{user.key}/mailFolders/delta",
        )

        def render(item: Item, initial: bool) -> dict[str, Any] | None:
            if item.data.get("_wellKnown") == mm.ROOT or item.data.get("isHidden"):
                return None
            if item.deleted:
                return {
                    "@odata.type": "#microsoft.graph.mailFolder",
                    "id": item.key,
                    "@removed": {"reason": "deleted"},
                }
            return {"@odata.type": "#microsoft.graph.mailFolder", **mm.render_folder(t, item)}

        return delta_round(t, req, spec, render)

    # -- messages -------------------------------------------------------------------------

    def imm(req: Request) -> bool:
        return mm.wants_immutable_ids(req.header("Prefer"))

    def _message(req: Request, user: Item) -> Item:
        ref = req.params["message"]
        found = t.store.get(ref)
        if found is None or found.kind != "message":
            by_immutable = t.store.message_by_immutable_id(ref)
            if by_immutable is not None and by_immutable.owner == user.key:
                req.params["message"] = by_immutable.key
        item = require_item(t, req.params["message"], ["message"], user.key, "message")
        if "folder" in req.params:
            folder = mm.resolve_folder(t, user, req.params["folder"])
            if item.parent != folder.key:
                raise GraphError(
                    404, "ErrorItemNotFound", "The specified object was not found in the store."
                )
        return item

    def list_messages(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        as_text = prefer_text(req)
        if "folder" in req.params:
            folder = mm.resolve_folder(t, user, req.params["folder"])
            path = f"/users/{user.key}/mailFolders/{folder.key}/messages"

            def fetch(after: int, limit: int) -> list[Item]:
                return t.store.children(folder.key, ["message"], after_pk=after, limit=limit)

        else:
            path = f"/users/{user.key}/messages"

            def fetch(after: int, limit: int) -> list[Item]:
                return t.store.by_owner(user.key, ["message"], after_pk=after, limit=limit)

        state = read_state(req, t.tokens)
        select = parse_select(req, state)
        return paged_list(
            req,
            t.tokens,
            path,
            fetch,
            lambda item: mm.render_message(
                t, item, body_text=as_text, select=select, immutable=imm(req)
            ),
            default=DEFAULT_PAGE,
            maximum=MAX_PAGE,
            context=f"users('{user.key}')/messages",
            filterable=[
                "receivedDateTime",
                "sentDateTime",
                "isRead",
                "isDraft",
                "subject",
                "importance",
                "internetMessageId",
                "hasAttachments",
                "from/emailAddress/address",
                "categories",
            ],
        )

    def get_message(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item = _message(req, user)
        out = mm.render_message(t, item, body_text=prefer_text(req), immutable=imm(req))
        expand = req.query.get("$expand", "")
        if "attachments" in expand.lower():
            out["attachments"] = [
                _attachment_json(a, with_content=True) for a in mm.attachments_of(t, item)
            ]
        if "singlevalueextendedproperties" in expand.lower():
            out["singleValueExtendedProperties"] = list(item.data.get("_sv", []))
        return json_response(apply_select(out, parse_select(req)))

    def get_mime(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item = _message(req, user)
        doc = mm.message_mime(t, item)
        if isinstance(doc, MimeDoc):
            return Response(200, [("Content-Type", "text/plain")], doc.iter(), doc.length)
        return Response(200, [("Content-Type", "text/plain")], doc.iter_range(), doc.size)

    def create_message(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        folder = mm.resolve_folder(t, user, req.params.get("folder", "drafts"))
        ctype = req.header("Content-Type").lower()
        if ctype.startswith("text/plain"):
            try:
                raw = decode_base64_mime(req.read_body())
            except ValueError:
                raise GraphError(
                    400,
                    "ErrorMimeContentInvalidBase64String",
                    "Invalid base64 string for MIME content.",
                ) from None
            parsed = parse_mime(raw)
            with t.store.transaction() as tx:
                item = mm.create_message_mime(t, tx, user, folder, raw, parsed)
        elif ctype.startswith("application/json") or not ctype:
            payload = req.json()
            if not isinstance(payload, dict):
                raise bad_request("The request body must be a JSON object.")
            with t.store.transaction() as tx:
                item = mm.create_message_json(t, tx, user, folder, payload)
        else:
            raise GraphError(
                415, "UnsupportedMediaType", f"Content type '{ctype}' is not supported."
            )
        fresh = t.store.get(item.key)
        assert fresh is not None
        return json_response(mm.render_message(t, fresh, immutable=imm(req)), 201)

    def patch_message(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item = _message(req, user)
        patch = req.json()
        if not isinstance(patch, dict):
            raise bad_request("The request body must be a JSON object.")
        with t.store.transaction() as tx:
            mm.update_message(tx, item, patch)
        return json_response(mm.render_message(t, item, immutable=imm(req)))

    def delete_message(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item = _message(req, user)
        with t.store.transaction() as tx:
            mm.delete_message(t, tx, user, item)
        return empty_response()

    def move_message(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item = _message(req, user)
        dest_ref = str(req.json().get("destinationId", ""))
        if not dest_ref:
            raise bad_request("destinationId is required.", "ErrorInvalidIdMalformed")
        dest = mm.resolve_folder(t, user, dest_ref)
        with t.store.transaction() as tx:
            new = mm.move_message(t, tx, item, dest)
        return json_response(mm.render_message(t, new, immutable=imm(req)), 201)

    def copy_message(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item = _message(req, user)
        dest = mm.resolve_folder(t, user, str(req.json().get("destinationId", "")))
        with t.store.transaction() as tx:
            new = mm.copy_message(t, tx, item, dest)
        return json_response(mm.render_message(t, new, immutable=imm(req)), 201)

    def messages_delta(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        folder = mm.resolve_folder(t, user, req.params["folder"])
        state_extra: dict[str, Any] = {}
        if "changeType" in req.query:
            ct = req.query["changeType"]
            if ct not in ("created", "updated", "deleted"):
                raise bad_request(f"Invalid changeType '{ct}'.")
            state_extra["ct"] = ct
        if "$filter" in req.query:
            text = req.query["$filter"]
            if not re.match(r"^\s*receivedDateTime\s+(ge|gt)\s+\S+\s*$", text, re.I):
                raise GraphError(
                    400,
                    "ErrorInvalidUrlQueryFilter",
                    "The only supported $filter for message delta is receivedDateTime ge|gt.",
                )
            state_extra["filter"] = text
        if "$search" in req.query:
            raise GraphError(
                400, "ErrorInvalidUrlQuery", "$search is not supported with change tracking."
            )
        as_text = prefer_text(req)
        spec = DeltaSpec(
            service="mail",
            scope=folder.key,
            kinds=["message"],
            path=f"/users/{user.key}/mailFolders/{folder.key}/messages/delta",
            default_page=DEFAULT_PAGE,
            max_page=MAX_PAGE,
        )

        def accept(item: Item, state: dict[str, Any]) -> bool:
            ct = state.get("ct")
            since = int(state["since"])
            if ct == "created" and not (item.cseq > since and not item.deleted):
                return False
            if ct == "updated" and not (item.cseq <= since and not item.deleted):
                return False
            if ct == "deleted" and not item.deleted:
                return False
            if state.get("filter") and not item.deleted:
                pred = parse_filter(state["filter"], ["receivedDateTime"])
                assert pred is not None
                if not pred(item.data):
                    return False
            return True

        def render(item: Item, initial: bool) -> dict[str, Any] | None:
            if item.deleted:
                return {
                    "@odata.type": "#microsoft.graph.message",
                    "id": mm.message_id(item, imm(req)),
                    "@removed": {"reason": "deleted"},
                }
            return {
                "@odata.type": "#microsoft.graph.message",
                **mm.render_message(
                    t, item, body_text=as_text, select=req.delta_select, immutable=imm(req)
                ),
            }

        return delta_round(t, req, spec, render, extra_state=state_extra, accept=accept)

    # -- attachments -------------------------------------------------------------------------

    def list_attachments(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        msg = _message(req, user)
        return paged_list(
            req,
            t.tokens,
            f"/users/{user.key}/messages/{msg.key}/attachments",
            lambda after, limit: t.store.children(
                msg.key, ["attachment"], after_pk=after, limit=limit
            ),
            lambda a: _attachment_json(a, with_content=True),
            default=200,
            maximum=1000,
            context=f"users('{user.key}')/messages('{msg.key}')/attachments",
        )

    def _attachment(req: Request, user: Item) -> tuple[Item, Item]:
        msg = _message(req, user)
        att = require_item(t, req.params["attachment"], ["attachment"], user.key, "message")
        if att.parent != msg.key:
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return msg, att

    def get_attachment(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        _, att = _attachment(req, user)
        return json_response(
            apply_select(_attachment_json(att, with_content=True), parse_select(req))
        )

    def _attachment_json(att: Item, *, with_content: bool) -> dict[str, Any]:

        out = dict(att.data)
        if with_content and out.get("@odata.type") == "#microsoft.graph.fileAttachment":
            src = t.content.open(att.content)
            out["contentBytes"] = base64.b64encode(src.read()).decode()
        return out

    def attachment_value(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        _, att = _attachment(req, user)
        if att.data.get("@odata.type") != "#microsoft.graph.fileAttachment":
            raise GraphError(
                400,
                "ErrorInvalidRequest",
                "Only file attachments have raw content; this is a reference (cloud) attachment.",
            )
        src = t.content.open(att.content)
        ctype = str(att.data.get("contentType") or "application/octet-stream")
        return Response(200, [("Content-Type", ctype)], src.iter_range(), src.size)

    def add_attachment(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        msg = _message(req, user)
        payload = req.json()
        with t.store.transaction() as tx:
            att = mm.add_file_attachment(t, tx, msg, payload)
        out = _attachment_json(att, with_content=False)
        return json_response(out, 201)

    def delete_attachment(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        msg, att = _attachment(req, user)
        with t.store.transaction() as tx:
            mm.delete_attachment(tx, msg, att)
        return empty_response()

    def attachment_upload_session(req: Request) -> Response:
        """attachment-createuploadsession.md: 3 MB to 150 MB, fragments of at most 4 MB."""
        user = t.require_mailbox(req.params["user"])
        msg = _message(req, user)
        body = req.json()
        item = body.get("AttachmentItem") or body.get("attachmentItem") or {}
        if str(item.get("attachmentType", "file")).lower() != "file":
            raise GraphError(400, "ErrorInvalidRequest", "Only file attachments can be uploaded.")
        size = int(item.get("size") or 0)
        if size <= 0 or size > uploads.MAX_ATTACHMENT:
            raise GraphError(
                400, "ErrorInvalidRequest", "The attachment size must be between 1 byte and 150 MB."
            )
        props = {
            "name": item.get("name") or "attachment",
            "contentType": item.get("contentType") or "application/octet-stream",
            "isInline": bool(item.get("isInline", False)),
            "contentId": item.get("contentId"),
        }
        target = {"message": msg.key, "props": props}
        sess = uploads.new_session(t, "attachment", user.key, target, size)
        return json_response(
            {
                "@odata.context": f"{req.base_url}/v1.0/$metadata#microsoft.graph.uploadSession",
                "uploadUrl": uploads.upload_url(req, sess),
                "expirationDateTime": sess.expiration(),
                "nextExpectedRanges": ["0-"],
            },
            201,
        )

    # -- routes ------------------------------------------------------------------------

    add("GET", "/users/{user}/mailFolders", list_top_folders)
    add("POST", "/users/{user}/mailFolders", create_top_folder)
    add("GET", "/users/{user}/mailFolders/delta", folders_delta)
    add("GET", "/users/{user}/mailFolders/{folder}", get_folder)
    add("PATCH", "/users/{user}/mailFolders/{folder}", patch_folder)
    add("DELETE", "/users/{user}/mailFolders/{folder}", delete_folder)
    add("POST", "/users/{user}/mailFolders/{folder}/move", move_folder)
    add("POST", "/users/{user}/mailFolders/{folder}/childFolders/{child}/move", move_folder)
    add("GET", "/users/{user}/mailFolders/{folder}/childFolders", list_child_folders)
    add("POST", "/users/{user}/mailFolders/{folder}/childFolders", create_child_folder)
    add("GET", "/users/{user}/mailFolders/{folder}/childFolders/{child}", get_folder)
    add("PATCH", "/users/{user}/mailFolders/{folder}/childFolders/{child}", patch_folder)
    add("DELETE", "/users/{user}/mailFolders/{folder}/childFolders/{child}", delete_folder)
    add("GET", "/users/{user}/mailFolders/{folder}/messages/delta", messages_delta)
    for prefix in ("/users/{user}", "/users/{user}/mailFolders/{folder}"):
        add("GET", f"{prefix}/messages", list_messages)
        add("POST", f"{prefix}/messages", create_message)
        add("GET", f"{prefix}/messages/{{message}}", get_message)
        add("PATCH", f"{prefix}/messages/{{message}}", patch_message)
        add("DELETE", f"{prefix}/messages/{{message}}", delete_message)
        add("GET", f"{prefix}/messages/{{message}}/$value", get_mime, download=True)
        add("POST", f"{prefix}/messages/{{message}}/move", move_message)
        add("POST", f"{prefix}/messages/{{message}}/copy", copy_message)
        add("GET", f"{prefix}/messages/{{message}}/attachments", list_attachments)
        add("POST", f"{prefix}/messages/{{message}}/attachments", add_attachment)
        add("GET", f"{prefix}/messages/{{message}}/attachments/{{attachment}}", get_attachment)
        add(
            "DELETE", f"{prefix}/messages/{{message}}/attachments/{{attachment}}", delete_attachment
        )
        add(
            "POST",
            f"{prefix}/messages/{{message}}/attachments/createUploadSession",
            attachment_upload_session,
        )
        add(
            "GET",
            f"{prefix}/messages/{{message}}/attachments/{{attachment}}/$value",
            attachment_value,
            download=True,
        )
