"""Microsoft 365 group mailboxes (conversations, threads, posts) and group calendars.

Sources: group-list-conversations.md, conversation-list-threads.md, group-list-threads.md,
conversationthread-list-posts.md, post-list-attachments.md (file attachments carry their
``contentBytes``), resources/conversation.md, resources/conversationthread.md,
resources/post.md; group-list-calendarview.md (application permissions Calendars.ReadBasic
and Calendars.Read are supported) and group-list-events.md ("Application: Not supported":
an app-only token gets 403 ErrorAccessDenied).

Conversations, threads and posts have no delta (no ``delta`` function is documented for
them): clients list them every run. A new post moves its thread's and conversation's
``lastDeliveredDateTime`` (resources/conversationthread.md: "the last time a post was
delivered to this thread"). Only Microsoft 365 (Unified) groups have a group mailbox;
a security group answers 404.
"""

from __future__ import annotations

import base64
from typing import Any

from ..httpcore import GraphError, Request, Response, json_response
from ..odata import apply_select, collection, paged_list, parse_select
from ..router import Router
from ..store import Item
from ..tenant import Tenant
from . import calmodel as cm
from .common import public
from .groupsmodel import is_unified


def _attachment_json(att: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in att.items() if not k.startswith("_")}
    out["contentBytes"] = att.get("_bytes")
    return out


def register(router: Router, t: Tenant) -> None:
    def add(pattern: str, handler: Any) -> None:
        router.add("GET", pattern, handler, service="outlook", owner_param="group")

    def group(req: Request) -> Item:
        item = t.store.get(req.params["group"])
        if item is None or item.kind not in ("team", "group") or item.deleted:
            ref = req.params["group"]
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{ref}' does not exist.")
        if not is_unified(item):
            raise GraphError(
                404,
                "ErrorInvalidGroup",
                "The requested group is not a Microsoft 365 group and has no group mailbox.",
            )
        return item

    def child(parent: Item, key: str, kind: str, what: str) -> Item:
        item = t.store.get(key)
        if item is None or item.kind != kind or item.owner != parent.owner or item.deleted:
            raise GraphError(404, "ErrorItemNotFound", f"The specified {what} was not found.")
        return item

    def thread_of(req: Request) -> Item:
        g = group(req)
        thread = child(g, req.params["thread"], "conversationThread", "thread")
        if "conversation" in req.params and thread.parent != req.params["conversation"]:
            raise GraphError(404, "ErrorItemNotFound", "The specified thread was not found.")
        return thread

    def listing(req: Request, path: str, parent: str, kinds: list[str]) -> Response:
        return paged_list(
            req,
            t.tokens,
            path,
            lambda after, limit: t.store.children(parent, kinds, after_pk=after, limit=limit),
            lambda item: public(item.data),
            default=10,
            maximum=100,
        )

    def list_conversations(req: Request) -> Response:
        g = group(req)
        return listing(req, f"/groups/{g.key}/conversations", g.key, ["conversation"])

    def get_conversation(req: Request) -> Response:
        g = group(req)
        conv = child(g, req.params["conversation"], "conversation", "conversation")
        return json_response(apply_select(public(conv.data), parse_select(req)))

    def list_conversation_threads(req: Request) -> Response:
        g = group(req)
        conv = child(g, req.params["conversation"], "conversation", "conversation")
        path = f"/groups/{g.key}/conversations/{conv.key}/threads"
        return listing(req, path, conv.key, ["conversationThread"])

    def list_threads(req: Request) -> Response:
        g = group(req)
        threads = [
            th
            for conv in t.store.children(g.key, ["conversation"])
            for th in t.store.children(conv.key, ["conversationThread"])
        ]
        threads.sort(key=lambda th: th.pk)
        return paged_list(
            req,
            t.tokens,
            f"/groups/{g.key}/threads",
            lambda after, limit: [th for th in threads if th.pk > after][:limit],
            lambda item: public(item.data),
            default=10,
            maximum=100,
        )

    def get_thread(req: Request) -> Response:
        return json_response(apply_select(public(thread_of(req).data), parse_select(req)))

    def list_posts(req: Request) -> Response:
        thread = thread_of(req)
        path = f"/groups/{thread.owner}/threads/{thread.key}/posts"
        return listing(req, path, thread.key, ["groupPost"])

    def post_of(req: Request) -> Item:
        thread = thread_of(req)
        post = child(thread, req.params["post"], "groupPost", "post")
        if post.parent != thread.key:
            raise GraphError(404, "ErrorItemNotFound", "The specified post was not found.")
        return post

    def get_post(req: Request) -> Response:
        return json_response(apply_select(public(post_of(req).data), parse_select(req)))

    def list_attachments(req: Request) -> Response:
        post = post_of(req)
        values = [_attachment_json(a) for a in post.data.get("_attachments") or []]
        return collection(req, values)

    def calendar_view(req: Request) -> Response:
        g = group(req)
        start, end = cm.window(req.query)
        zone = cm.prefer_tz(req.header("Prefer"))
        values: list[dict[str, Any]] = []
        for item in t.store.children(g.key, ["groupEvent"]):
            values.extend(cm.view_entries(t, item, start, end, zone))
        values.sort(key=lambda e: (e["start"]["dateTime"], e["id"]))
        # The window is small (a group calendar); one page holds it.
        return collection(req, [apply_select(v, parse_select(req)) for v in values])

    def list_events(req: Request) -> Response:
        if req.auth is not None and not req.auth.delegated:
            # group-list-events.md: "Application: Not supported."
            raise GraphError(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        g = group(req)
        zone = cm.prefer_tz(req.header("Prefer"))
        values = [cm.render_event(e, zone) for e in t.store.children(g.key, ["groupEvent"])]
        return collection(req, values)

    add("/groups/{group}/conversations", list_conversations)
    add("/groups/{group}/conversations/{conversation}", get_conversation)
    add("/groups/{group}/conversations/{conversation}/threads", list_conversation_threads)
    add("/groups/{group}/threads", list_threads)
    for prefix in ("/groups/{group}", "/groups/{group}/conversations/{conversation}"):
        add(f"{prefix}/threads/{{thread}}", get_thread)
        add(f"{prefix}/threads/{{thread}}/posts", list_posts)
        add(f"{prefix}/threads/{{thread}}/posts/{{post}}", get_post)
        add(f"{prefix}/threads/{{thread}}/posts/{{post}}/attachments", list_attachments)
    add("/groups/{group}/calendarView", calendar_view)
    add("/groups/{group}/calendar/calendarView", calendar_view)
    add("/groups/{group}/events", list_events)


def attachment_bytes(att: dict[str, Any]) -> bytes:
    """The bytes of a generated post attachment (for the inventory and tests)."""
    return base64.b64decode(str(att.get("_bytes") or ""))
