"""Restoring mail: each message back as a normal, non-draft message in its folder.

Graph makes every message created from MIME a draft, and a draft stays one.
So a message is created from JSON (user-post-messages.md) built from the
backup: subject, sender, recipients, internet message ID, importance,
categories, flag and receipts from its Graph metadata; body and attachments
from its MIME (mimeparts.py); and three extended properties set at creation
(singlevaluelegacyextendedproperty-post-singlevalueextendedproperties.md):
PR_MESSAGE_FLAGS (``Integer 0x0E07``: read bit as it was, unsent bit only for
drafts, so the message is not a draft), PR_MESSAGE_DELIVERY_TIME (``SystemTime
0x0E06``, the received date) and PR_CLIENT_SUBMIT_TIME (``SystemTime 0x0039``,
the sent date); Graph ignores receivedDateTime and sentDateTime themselves.
Small attachments ride in the create request as long as the whole request
(body included) stays under Graph's 4 MB request limit ("The maximum request
length supported is 4MB."); others follow, by upload session from 3 MB
(attachment-createuploadsession.md). A message whose body alone exceeds the
limit cannot be created through Graph, and one larger than the target
mailbox's maximum message size is refused by Exchange
(ErrorMessageSizeExceeded): both are reported with that reason, and a message
left half-made by the second is deleted. The ``$value`` of the
new message is Exchange's rendering, not the original bytes: byte-exact MIME
is what ``--to-dir`` restores.

Folders are found by their original names from the top of the mailbox
(``Inbox/Projects``), created when missing; for another mailbox, under the
restore folder. Conflicts are decided in the target folder only (a copy in
Deleted Items is no conflict for the Inbox): the same internet message ID
with the same subject, dates, read state, flag, importance, categories and
attachments is already there; the same internet message ID with something
else is another version (replace: metadata only -> PATCH; content -> create
the snapshot's, then delete the other, which goes to Deleted Items). A
message created by an interrupted run without all its large attachments is
completed, not duplicated.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from typing import Any

from sources.m365.graph.errors import GraphError, ItemGone
from sources.m365.names import parse_time
from sources.m365.restore.common import (
    KEEP_BOTH,
    OTHER,
    REPLACE,
    SAME,
    FolderIndex,
    FolderIndexes,
    ServiceRun,
    size_of,
)
from sources.m365.restore.items import SnapItem
from sources.m365.restore.mimeparts import Attachment, ParsedMessage, parse_message
from sources.m365.restore.uploads import ATTACHMENT_FRAGMENT, SessionLost, upload

SELECT = (
    "id,internetMessageId,subject,sentDateTime,receivedDateTime,isRead,isDraft,flag,"
    "importance,categories,hasAttachments"
)
SMALL_ATTACHMENT = (
    3_000_000  # larger ones need an upload session (attachment-createuploadsession.md)
)
MAX_ATTACHMENT = 150 * 1024 * 1024
INLINE_BUDGET = 2_500_000  # attachment bytes sent inside the create request at most
CHECK_ATTACHMENTS_ABOVE = INLINE_BUDGET  # smaller messages are created in one request
# The JSON body of one Graph request: 4 MB at most, counting everything in it
# (microsoft-graph-docs issue 11806); a margin stays for rounding of "MB".
REQUEST_BUDGET = 4 * 1024 * 1024 - 64 * 1024
TOO_LARGE_FOR_MAILBOX = "larger than the target mailbox's maximum message size"
MSGFLAG_READ = 0x1
MSGFLAG_UNSENT = 0x8
COPIED = (
    "subject",
    "importance",
    "categories",
    "flag",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "internetMessageId",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "inferenceClassification",
)
META = ("isRead", "flagStatus", "importance", "categories")


def _time(value: Any) -> str:
    parsed = parse_time(str(value)) if value else None
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else ""


def message_state(msg: dict[str, Any]) -> dict[str, Any]:
    """What "the same message" compares: content and the metadata restore sets."""
    flag = msg.get("flag") or {}
    return {
        "internetMessageId": str(msg.get("internetMessageId") or ""),
        "subject": str(msg.get("subject") or ""),
        "sent": _time(msg.get("sentDateTime")),
        "isDraft": bool(msg.get("isDraft")),
        "hasAttachments": bool(msg.get("hasAttachments")),
        "isRead": bool(msg.get("isRead")),
        "flagStatus": str(flag.get("flagStatus") or "notFlagged"),
        "importance": str(msg.get("importance") or "normal").lower(),
        "categories": sorted(str(c) for c in msg.get("categories") or []),
    }


def _content(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k not in META and k != "hasAttachments"}


class MessageKind:
    """How a message is recognised in a target folder (common.ItemKind): by its
    internet message ID, and equal when its state (module docstring) is."""

    def bucket(self, msg: dict[str, Any]) -> str:
        return str(msg.get("internetMessageId") or f"subject:{msg.get('subject') or ''}")

    def identities(self, msg: dict[str, Any]) -> list[str]:
        imid = msg.get("internetMessageId")
        return [f"imid:{imid}"] if imid else []

    def same(self, ours: dict[str, Any], row: dict[str, Any]) -> bool:
        return message_state(row) == message_state(ours)


def message_payload(graph: dict[str, Any], parsed: ParsedMessage) -> dict[str, Any]:
    """The JSON that creates the message (see the module docstring)."""
    payload: dict[str, Any] = {
        k: graph[k] for k in COPIED if graph.get(k) not in (None, "", [], {})
    }
    payload.setdefault("subject", "")
    payload["body"] = {"contentType": parsed.body_type, "content": parsed.body}
    flags = (MSGFLAG_READ if graph.get("isRead") else 0) | (
        MSGFLAG_UNSENT if graph.get("isDraft") else 0
    )
    props = [{"id": "Integer 0x0E07", "value": str(flags)}]
    if graph.get("receivedDateTime"):
        props.append({"id": "SystemTime 0x0E06", "value": _time(graph["receivedDateTime"])})
    if graph.get("sentDateTime"):
        props.append({"id": "SystemTime 0x0039", "value": _time(graph["sentDateTime"])})
    payload["singleValueExtendedProperties"] = props
    return payload


class TooLargeForGraph(Exception):
    """The message cannot be created through Graph (its reason is the message)."""


def _json_size(value: Any) -> int:
    """The bytes ``value`` takes as the JSON body GraphClient sends."""
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def split_attachments(
    payload: dict[str, Any], attachments: list[Attachment]
) -> tuple[list[Attachment], list[Attachment]]:
    """(inline, later): the attachments that fit in the create request with
    ``payload`` under REQUEST_BUDGET, and the others. Raises TooLargeForGraph when
    the payload alone does not fit."""
    used = _json_size({**payload, "attachments": []})
    if used > REQUEST_BUDGET:
        raise TooLargeForGraph(
            f"its body alone ({used} bytes as JSON) exceeds Graph's 4 MB request limit"
        )
    inline: list[Attachment] = []
    later: list[Attachment] = []
    budget = INLINE_BUDGET
    for att in attachments:
        if att.size <= budget and att.size < SMALL_ATTACHMENT:
            cost = _json_size(_attachment_json(att)) + 1  # and a comma
            if used + cost <= REQUEST_BUDGET:
                inline.append(att)
                budget -= att.size
                used += cost
                continue
        later.append(att)
    return inline, later


def _attachment_json(att: Attachment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": att.name,
        "contentType": att.content_type,
        "contentBytes": base64.b64encode(att.data).decode("ascii"),
        "isInline": att.inline,
    }
    if att.content_id:
        out["contentId"] = att.content_id
    return out


class MailWriter:
    """Restores the messages of one mailbox (see the module docstring)."""

    def __init__(self, run: ServiceRun) -> None:
        self.run = run
        self.uid = str(run.placement.user_id)
        self._folders: dict[tuple[str, ...], str | None] = {}
        self._indexes = FolderIndexes(MessageKind())
        self._lock = threading.RLock()

    # -- folders ---------------------------------------------------------------------------

    def _children(self, parent: str | None) -> list[dict[str, Any]]:
        url = (
            f"/users/{self.uid}/mailFolders"
            if parent is None
            else f"/users/{self.uid}/mailFolders/{parent}/childFolders"
        )
        params = {"includeHiddenFolders": "true", "$top": "250"}
        return list(self.run.client.list_all(url, self.run.res, params=params))

    def _find_child(self, parent: str | None, name: str) -> str | None:
        wanted = name.casefold()
        for folder in self._children(parent):
            if str(folder.get("displayName", "")).casefold() == wanted:
                return str(folder["id"])
        return None

    def folder_id(self, path: tuple[str, ...]) -> str | None:
        """The target folder at ``path`` (names from the top of the mailbox), created
        when missing; None in a dry run when it does not exist yet."""
        with self._lock:
            if path in self._folders:
                return self._folders[path]
            parent = self.folder_id(path[:-1]) if len(path) > 1 else None
            found: str | None = None
            if parent is not None or len(path) == 1:
                found = self._find_child(parent, path[-1])
            if found is None and not self.run.dry_run:
                found = self._create_folder(parent, path[-1])
            self._folders[path] = found
            return found

    def _create_folder(self, parent: str | None, name: str) -> str:
        url = (
            f"/users/{self.uid}/mailFolders"
            if parent is None
            else f"/users/{self.uid}/mailFolders/{parent}/childFolders"
        )

        def find() -> dict[str, Any] | None:
            fid = self._find_child(parent, name)
            return {"id": fid} if fid else None

        return self.run.create_container(
            url, {"displayName": name}, find, f"creating mail folder {name!r}"
        )

    def index(self, fid: str | None) -> FolderIndex:
        return self._indexes.get(
            fid,
            lambda key: self.run.client.list_all(
                f"/users/{self.uid}/mailFolders/{key}/messages",
                self.run.res,
                params={"$select": SELECT, "$top": "1000"},
            ),
        )

    # -- one message -------------------------------------------------------------------------

    def restore(self, item: SnapItem) -> None:
        run = self.run
        graph = item.graph
        path = (*run.placement.base, *item.folder_names)
        fid = self.folder_id(path)
        index = self.index(fid)
        state = message_state(graph)
        found, row = index.match(graph)
        big = item.entry.size > CHECK_ATTACHMENTS_ABOVE
        if found == SAME and not big:
            run.already_there(item.path)
            return
        if run.dry_run:
            if found == SAME:
                run.already_there(item.path)
            else:
                run.planned(item.path, found)
            return
        assert fid is not None
        parsed = self._parse(item)
        if parsed is None:
            return
        if row is not None and found in (SAME, OTHER) and big:
            other = message_state(row)
            if _content(other) == _content(state) and {k: other[k] for k in META} == {
                k: state[k] for k in META
            }:
                # Ours from an interrupted run, or complete: add what is missing.
                try:
                    added = self._complete(str(row["id"]), parsed)
                except GraphError as exc:
                    if not exc.has_code("ErrorMessageSizeExceeded"):
                        raise
                    self._failed(item, TOO_LARGE_FOR_MAILBOX)
                    return
                if added is None:
                    self._failed(item, "could not read the message's attachments")
                elif added:
                    run.done("created", item.path)
                else:
                    run.already_there(item.path)
                return
        action = run.act(item.path, found)
        if action is None:
            return
        try:
            self._write(item, action, fid, index, graph, state, parsed, row)
        except TooLargeForGraph as exc:
            self._failed(item, str(exc))
        except GraphError as exc:
            if not exc.has_code("ErrorMessageSizeExceeded"):
                raise
            self._failed(item, TOO_LARGE_FOR_MAILBOX)

    def _write(
        self,
        item: SnapItem,
        action: str,
        fid: str,
        index: FolderIndex,
        graph: dict[str, Any],
        state: dict[str, Any],
        parsed: ParsedMessage,
        row: dict[str, Any] | None,
    ) -> None:
        run = self.run
        try:
            if action == REPLACE and row is not None:
                other = message_state(row)
                if (
                    _content(other) == _content(state)
                    and other["hasAttachments"] == state["hasAttachments"]
                ):
                    self._patch_metadata(str(row["id"]), graph)
                else:
                    self._create(fid, index, graph, state, parsed)
                    self._delete(str(row["id"]))
                index.forget(str(row["id"]))
                run.done("replaced", item.path)
                return
            self._create(fid, index, graph, state, parsed)
        except SessionLost as exc:
            self._failed(item, str(exc))
            return
        run.done("kept_both" if action == KEEP_BOTH else "created", item.path)

    def _failed(self, item: SnapItem, reason: str) -> None:
        self.run.fail(item.path, reason)

    def _parse(self, item: SnapItem) -> ParsedMessage | None:
        try:
            raw = self.run.reader.open(item.entry).read()
            return parse_message(raw)
        except ValueError as exc:
            self._failed(item, f"the backed-up MIME cannot be read: {exc}")
            return None

    # -- writes ----------------------------------------------------------------------------

    def _create(
        self,
        fid: str,
        index: FolderIndex,
        graph: dict[str, Any],
        state: dict[str, Any],
        parsed: ParsedMessage,
    ) -> str:
        run = self.run
        for att in parsed.attachments:
            if att.size > MAX_ATTACHMENT:
                raise GraphError(
                    413, "attachmentTooLarge", f"attachment {att.name!r} is larger than 150 MB"
                )
        payload = message_payload(graph, parsed)
        inline, later = split_attachments(payload, parsed.attachments)
        if inline:
            payload["attachments"] = [_attachment_json(a) for a in inline]
        run.pace(len(parsed.body.encode("utf-8")) + sum(a.size for a in inline))
        url = f"/users/{self.uid}/mailFolders/{fid}/messages"
        known = index.ids()
        imid = graph.get("internetMessageId")

        def find() -> dict[str, Any] | None:
            if not imid:
                return None
            rows = run.client.list_all(
                url,
                run.res,
                params={
                    "$select": SELECT,
                    "$filter": f"internetMessageId eq '{str(imid).replace(chr(39), chr(39) * 2)}'",
                },
            )
            for candidate in rows:
                if str(candidate.get("id")) not in known:
                    return candidate
            return None

        made = run.create_once(
            lambda: run.client.send("POST", url, run.res, json_body=payload, idempotent=False),
            find,
            "creating the message",
        )
        mid = str(made["id"])
        run.result.uploaded(len(parsed.body.encode("utf-8")) + sum(a.size for a in inline))
        try:
            for att in later:
                self._add_attachment(mid, att)
        except GraphError as exc:
            if exc.has_code("ErrorMessageSizeExceeded"):
                self._delete(mid)  # not left half-made: the report says why
            raise
        index.add({**made, "id": mid, **{k: made.get(k) for k in ("internetMessageId",)}})
        return mid

    def _add_attachment(self, mid: str, att: Attachment) -> None:
        run = self.run
        base = f"/users/{self.uid}/messages/{mid}/attachments"
        if att.size < SMALL_ATTACHMENT:
            run.pace(att.size)

            def find() -> dict[str, Any] | None:
                for existing in self._attachments(mid):
                    if existing.get("name") == att.name and size_of(existing) == (att.size):
                        return existing
                return None

            run.create_once(
                lambda: run.client.send(
                    "POST", base, run.res, json_body=_attachment_json(att), idempotent=False
                ),
                find,
                f"attaching {att.name!r}",
            )
            run.result.uploaded(att.size)
            return
        for _attempt in range(3):
            item: dict[str, Any] = {
                "attachmentType": "file",
                "name": att.name,
                "size": att.size,
                "contentType": att.content_type,
                "isInline": att.inline,
            }
            if att.content_id:
                item["contentId"] = att.content_id
            session = run.client.send(
                "POST",
                f"{base}/createUploadSession",
                run.res,
                json_body={"AttachmentItem": item},
                idempotent=True,  # an unused session expires on its own
            )
            url = str(session.data["uploadUrl"])
            try:
                result = upload(
                    run,
                    url,
                    att.size,
                    lambda offset, length: att.data[offset : offset + length],
                    fragment=ATTACHMENT_FRAGMENT,
                    pace=True,
                )
            except SessionLost:
                continue
            if result is not None or any(
                a.get("name") == att.name and size_of(a) == att.size for a in self._attachments(mid)
            ):
                return
        raise SessionLost(f"the upload of attachment {att.name!r} kept failing")

    def _attachments(self, mid: str) -> list[dict[str, Any]]:
        return list(
            self.run.client.list_all(
                f"/users/{self.uid}/messages/{mid}/attachments",
                self.run.res,
                params={"$select": "id,name,size,isInline,contentType"},
            )
        )

    def _complete(self, mid: str, parsed: ParsedMessage) -> int | None:
        """Add the attachments a message created earlier lacks; returns how many."""
        try:
            have = Counter(str(a.get("name")) for a in self._attachments(mid))
        except ItemGone:
            return None
        added = 0
        for att in parsed.attachments:
            if have[att.name] > 0:
                have[att.name] -= 1
                continue
            self._add_attachment(mid, att)
            added += 1
        return added

    def _patch_metadata(self, mid: str, graph: dict[str, Any]) -> None:
        patch: dict[str, Any] = {
            "isRead": bool(graph.get("isRead")),
            "importance": graph.get("importance") or "normal",
            "categories": list(graph.get("categories") or []),
        }
        if graph.get("flag"):
            patch["flag"] = graph["flag"]
        self.run.client.send(
            "PATCH",
            f"/users/{self.uid}/messages/{mid}",
            self.run.res,
            json_body=patch,
            idempotent=True,
        )

    def _delete(self, mid: str) -> None:
        try:
            self.run.client.send(
                "DELETE", f"/users/{self.uid}/messages/{mid}", self.run.res, idempotent=True
            )
        except ItemGone:
            pass  # already gone: what replace wanted
