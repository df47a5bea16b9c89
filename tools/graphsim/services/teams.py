"""Microsoft Teams: teams, channels, channel messages, replies, message delta.

Sources: teams-list.md (`GET /teams` returns only id, displayName, description),
team-get.md, channel-list.md, channel-get.md, channel-get-filesfolder.md,
channel-list-messages.md (default page 20, `$top` up to 50, no replies), chatmessage-get.md,
chatmessage-list-replies.md, chatmessage-delta.md (root messages of the last eight months,
`$top` up to 50, `$skiptoken`/`$deltatoken`), concepts/teams-protected-apis.md (application
access to channel messages is a protected API), throttling-limits.md (Teams limits).

Quirks implemented: deleted messages stay, with `deletedDateTime` set and an empty body (no
`@removed`); a new or changed reply updates its root message's `lastModifiedDateTime` and
`etag`, so the root shows up in the next delta round (chatmessage-delta.md's `$filter`
describes "reply chains" as the unit of change); `$top` above 50 is a 400.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from typing import Any

from ..httpcore import (
    GraphError,
    Request,
    Response,
    bad_request,
    json_response,
    parse_iso,
    utc_now,
)
from ..odata import apply_select, paged_list, parse_select
from ..router import Router
from ..store import Item
from ..tenant import Tenant
from . import drivemodel as dm
from .common import DeltaSpec, delta_round, public

EIGHT_MONTHS = dt.timedelta(days=243)


def resolve_team(t: Tenant, ref: str) -> Item:
    team = t.store.get(ref)
    if team is None or team.kind != "team":
        raise GraphError(404, "NotFound", f"No team found with Group Id {ref}")
    return team


def resolve_channel(t: Tenant, team: Item, ref: str) -> Item:
    ch = t.store.get(ref)
    if ch is None or ch.kind != "channel" or ch.owner != team.key:
        raise GraphError(404, "NotFound", "Channel not found.")
    return ch


# Evolvable enums (channel.md membershipType: standard, private, unknownFutureValue,
# shared; chatmessage.md messageType: message, chatEvent, typing, unknownFutureValue,
# systemEventMessage): "you must use the Prefer: include-unknown-enum-members request
# header to get" the members after unknownFutureValue.
LATE_MEMBERS = {"membershipType": ("shared",), "messageType": ("systemEventMessage",)}


def render_message(item: Item) -> dict[str, Any]:
    d = public(item.data)
    if d.get("deletedDateTime"):
        d["body"] = {"contentType": "html", "content": ""}
    return d


def register(router: Router, t: Tenant) -> None:
    def add(method: str, pattern: str, handler: Any, *, messages: bool = False) -> None:
        router.add(
            method, pattern, handler, service="teams", owner_param="team", channel_get=messages
        )

    def enums(req: Request, value: dict[str, Any]) -> dict[str, Any]:
        """Switch ``evolvable_enums``: members added after ``unknownFutureValue`` come
        back as it unless the request has ``Prefer: include-unknown-enum-members``."""
        if not t.switches.evolvable_enums or re.search(
            r"include-unknown-enum-members", req.header("Prefer"), re.I
        ):
            return value
        for field, late in LATE_MEMBERS.items():
            if value.get(field) in late:
                value[field] = "unknownFutureValue"
        return value

    def rendered_message(req: Request, item: Item) -> dict[str, Any]:
        return enums(req, render_message(item))

    def protected(req: Request) -> None:
        if (
            not t.switches.protected_api_approved
            and req.auth is not None
            and not req.auth.delegated
        ):
            raise GraphError(
                403,
                "Forbidden",
                "Invoked API requires Protected API access in application-only context when not"
                " using Resource Specific Consent. Visit"
                " https://docs.microsoft.com/en-us/graph/teams-protected-apis for more details.",
            )

    def top_limit(req: Request) -> None:
        if "$top" in req.query:
            try:
                top = int(req.query["$top"])
            except ValueError:
                raise bad_request("Invalid $top.") from None
            if not 1 <= top <= 50:
                raise bad_request("The $top query option must be between 1 and 50.")

    def list_teams(req: Request) -> Response:
        return paged_list(
            req,
            t.tokens,
            "/teams",
            lambda after, limit: t.store.by_kind(["team"], after_pk=after, limit=limit),
            lambda team: {
                "id": team.key,
                "displayName": team.data.get("displayName"),
                "description": team.data.get("description"),
            },
            default=100,
            maximum=999,
            context="teams",
            filterable=["displayName", "description"],
        )

    def get_team(req: Request) -> Response:
        team = resolve_team(t, req.params["team"])
        return json_response(apply_select(public(team.data), parse_select(req)))

    def list_channels(req: Request) -> Response:
        team = resolve_team(t, req.params["team"])
        values = [enums(req, public(c.data)) for c in t.store.children(team.key, ["channel"])]
        return json_response(
            {
                "@odata.count": len(values),
                "value": [apply_select(v, parse_select(req)) for v in values],
            }
        )

    def get_channel(req: Request) -> Response:
        team = resolve_team(t, req.params["team"])
        ch = resolve_channel(t, team, req.params["channel"])
        return json_response(apply_select(enums(req, public(ch.data)), parse_select(req)))

    def files_folder(req: Request) -> Response:

        team = resolve_team(t, req.params["team"])
        ch = resolve_channel(t, team, req.params["channel"])
        folder = t.store.get(str(ch.data.get("_folder", "")))
        if folder is None:
            raise GraphError(404, "NotFound", "The channel has no files folder.")
        return json_response(dm.render_item(t, folder, req.base_url))

    def list_messages(req: Request) -> Response:
        protected(req)
        top_limit(req)
        team = resolve_team(t, req.params["team"])
        ch = resolve_channel(t, team, req.params["channel"])
        expand = "replies" in req.query.get("$expand", "").lower()

        def render(item: Item) -> dict[str, Any]:
            out = rendered_message(req, item)
            if expand:
                out["replies"] = [
                    rendered_message(req, r)
                    for r in t.store.children(item.key, ["chatReply"])[:1000]
                ]
            return out

        return paged_list(
            req,
            t.tokens,
            f"/teams/{team.key}/channels/{ch.key}/messages",
            lambda after, limit: t.store.children(
                ch.key, ["chatMessage"], after_pk=after, limit=limit
            ),
            render,
            default=20,
            maximum=50,
            context=f"teams('{team.key}')/channels('{ch.key}')/messages",
        )

    def _root(req: Request) -> tuple[Item, Item, Item]:
        team = resolve_team(t, req.params["team"])
        ch = resolve_channel(t, team, req.params["channel"])
        msg = t.store.get(f"{ch.key}/{req.params['message']}")
        if msg is None or msg.kind != "chatMessage":
            raise GraphError(404, "NotFound", "Message not found.")
        return team, ch, msg

    def get_message(req: Request) -> Response:
        protected(req)
        _, _, msg = _root(req)
        return json_response(apply_select(rendered_message(req, msg), parse_select(req)))

    def list_replies(req: Request) -> Response:
        protected(req)
        top_limit(req)
        team, ch, msg = _root(req)
        return paged_list(
            req,
            t.tokens,
            f"/teams/{team.key}/channels/{ch.key}/messages/{msg.data['id']}/replies",
            lambda after, limit: t.store.children(
                msg.key, ["chatReply"], after_pk=after, limit=limit
            ),
            lambda r: rendered_message(req, r),
            default=20,
            maximum=50,
        )

    def get_reply(req: Request) -> Response:
        protected(req)
        _, ch, msg = _root(req)
        reply = t.store.get(f"{ch.key}/{req.params['reply']}")
        if reply is None or reply.kind != "chatReply" or reply.parent != msg.key:
            raise GraphError(404, "NotFound", "Reply not found.")
        return json_response(apply_select(rendered_message(req, reply), parse_select(req)))

    def _message(req: Request) -> Item:
        """The root message, or the reply when the route names one."""
        _, ch, msg = _root(req)
        if "reply" not in req.params:
            return msg
        reply = t.store.get(f"{ch.key}/{req.params['reply']}")
        if reply is None or reply.kind != "chatReply" or reply.parent != msg.key:
            raise GraphError(404, "NotFound", "Reply not found.")
        return reply

    def _hosted(req: Request) -> list[dict[str, Any]]:
        item = _message(req)
        if item.data.get("deletedDateTime"):
            return []
        return list(item.data.get("_hosted") or [])

    def list_hosted(req: Request) -> Response:
        # contentBytes and contentType are write-only: the list names the objects only.
        protected(req)
        values = [{"id": h["id"], "contentBytes": None, "contentType": None} for h in _hosted(req)]
        return json_response({"value": values})

    def _one_hosted(req: Request) -> dict[str, Any]:
        for hosted in _hosted(req):
            if hosted["id"] == req.params["hosted"]:
                return hosted
        raise GraphError(404, "NotFound", "Hosted content not found.")

    def get_hosted(req: Request) -> Response:
        protected(req)
        hosted = _one_hosted(req)
        return json_response({"id": hosted["id"], "contentBytes": None, "contentType": None})

    def hosted_value(req: Request) -> Response:
        protected(req)
        hosted = _one_hosted(req)
        body = base64.b64decode(hosted["bytes"])
        return Response(200, [("Content-Type", str(hosted["contentType"]))], body)

    def messages_delta(req: Request) -> Response:
        protected(req)
        top_limit(req)
        team = resolve_team(t, req.params["team"])
        ch = resolve_channel(t, team, req.params["channel"])
        extra: dict[str, Any] = {}
        if "$filter" in req.query:
            text = req.query["$filter"]

            m = re.match(r"^\s*lastModifiedDateTime\s+gt\s+(\S+)\s*$", text, re.I)
            if not m:
                raise bad_request("Only 'lastModifiedDateTime gt <value>' is supported in $filter.")
            extra["after_time"] = m.group(1)
        spec = DeltaSpec(
            service="teams",
            scope=ch.key,
            kinds=["chatMessage"],
            path=f"/teams/{team.key}/channels/{ch.key}/messages/delta",
            default_page=20,
            max_page=50,
            gone_code="resyncRequired",
            gone_message="The delta token is no longer valid; the app must reset the sync state.",
        )
        cutoff = utc_now() - EIGHT_MONTHS

        def accept(item: Item, state: dict[str, Any]) -> bool:
            try:
                created = parse_iso(str(item.data.get("createdDateTime")))
            except ValueError:
                return False
            if created < cutoff:
                return False
            if state.get("after_time"):
                return parse_iso(str(item.data.get("lastModifiedDateTime"))) > parse_iso(
                    str(state["after_time"])
                )
            return True

        return delta_round(
            t,
            req,
            spec,
            lambda row, initial: rendered_message(req, row),
            extra_state=extra,
            accept=accept,
        )

    router.add("GET", "/teams", list_teams, service="teams")
    add("GET", "/teams/{team}", get_team)
    add("GET", "/teams/{team}/channels", list_channels)
    add("GET", "/teams/{team}/channels/{channel}", get_channel)
    add("GET", "/teams/{team}/channels/{channel}/filesFolder", files_folder)
    add("GET", "/teams/{team}/channels/{channel}/messages/delta", messages_delta, messages=True)
    add("GET", "/teams/{team}/channels/{channel}/messages", list_messages, messages=True)
    add("GET", "/teams/{team}/channels/{channel}/messages/{message}", get_message, messages=True)
    add(
        "GET",
        "/teams/{team}/channels/{channel}/messages/{message}/replies",
        list_replies,
        messages=True,
    )
    add(
        "GET",
        "/teams/{team}/channels/{channel}/messages/{message}/replies/{reply}",
        get_reply,
        messages=True,
    )
    for where in (
        "/teams/{team}/channels/{channel}/messages/{message}",
        "/teams/{team}/channels/{channel}/messages/{message}/replies/{reply}",
    ):
        add("GET", f"{where}/hostedContents", list_hosted, messages=True)
        add("GET", f"{where}/hostedContents/{{hosted}}", get_hosted, messages=True)
        add("GET", f"{where}/hostedContents/{{hosted}}/$value", hosted_value, messages=True)
