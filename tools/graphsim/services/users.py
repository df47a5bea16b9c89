"""Users and groups (api-reference/v1.0/api/user-list.md, user-get.md,
user-get-mailboxsettings.md, group-list.md, group-get.md, group-list-members.md,
group-list-transitivemembers.md, concepts/aad-advanced-queries.md).

- `GET /users` is paged (default 100, `$top` up to 999) and returns the default property
  set (user-list.md) unless `$select` asks for more (accountEnabled, userType,
  assignedLicenses, ...). Shared and resource mailboxes are users too (accountEnabled
  false); `mailboxSettings.userPurpose` tells them apart (user, shared, room).
- `GET /users/{id | userPrincipalName}`.
- `GET /users/{id}/mailboxSettings` answers 404 MailboxNotEnabledForRESTAPI for a user
  without a mailbox, as every Outlook endpoint does.
- `GET /groups` lists the teams' Microsoft 365 groups and the security groups;
  `/groups/{id}/members` the direct members, `/groups/{id}/transitiveMembers` the flat
  list of all nested members (nested groups included), each a directoryObject with its
  `@odata.type` (#microsoft.graph.user or #microsoft.graph.group); 100 per page by
  default, `$top` up to 999.
- The OData cast (`.../transitiveMembers/microsoft.graph.user`) is an advanced query
  (aad-advanced-queries.md, "Use of OData cast with transitive members list"): without
  the `ConsistencyLevel: eventual` header and `$count=true` it is 400
  Request_UnsupportedQuery. On `members` the cast works by default. `$count=true` adds
  `@odata.count` with the header and is silently ignored without it.
"""

from __future__ import annotations

from typing import Any

from ..httpcore import GraphError, Request, Response, json_response
from ..odata import apply_select, paged_list, parse_select
from ..router import Router
from ..store import Item
from ..tenant import Tenant
from .common import public

DEFAULT_PROPS = (
    "id",
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
)


def render_user(t: Tenant, item: Item, select: list[str] | None) -> dict[str, Any]:
    data = public(item.data)
    if item.key in t.switches.unlicensed:
        data["assignedLicenses"] = []
    if select:
        return apply_select(data, select)
    return {k: data.get(k) for k in DEFAULT_PROPS}


def register(router: Router, t: Tenant) -> None:
    def list_users(req: Request) -> Response:
        select = parse_select(req)
        return paged_list(
            req,
            t.tokens,
            "/users",
            lambda after, limit: t.store.by_kind(["user"], after_pk=after, limit=limit),
            lambda item: render_user(t, item, select),
            default=100,
            maximum=999,
            context="users",
            filterable=[
                "accountEnabled",
                "userType",
                "displayName",
                "mail",
                "userPrincipalName",
                "id",
            ],
        )

    def get_user(req: Request) -> Response:
        user = t.require_user(req.params["user"])
        out = render_user(t, user, parse_select(req))
        out["@odata.context"] = f"{req.base_url}/v1.0/$metadata#users/$entity"
        return json_response(out)

    def mailbox_settings(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        return json_response(
            {
                "@odata.context": (
                    f"{req.base_url}/v1.0/$metadata#users('{user.key}')/mailboxSettings"
                ),
                "timeZone": "UTC",
                "language": {"locale": "en-US", "displayName": "English (United States)"},
                "dateFormat": "yyyy-MM-dd",
                "timeFormat": "HH:mm",
                "userPurpose": user.data.get("_purpose", "user"),
                "automaticRepliesSetting": {"status": "disabled", "externalAudience": "none"},
            }
        )

    def list_groups(req: Request) -> Response:
        return paged_list(
            req,
            t.tokens,
            "/groups",
            lambda after, limit: t.store.by_kind(GROUP_KINDS, after_pk=after, limit=limit),
            _group_json,
            default=100,
            maximum=999,
            context="groups",
            filterable=["displayName", "mailNickname", "id", "groupTypes", "mail"],
        )

    def require_group(ref: str) -> Item:
        item = t.store.get(ref)
        if item is None or item.kind not in GROUP_KINDS:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{ref}' does not exist.")
        return item

    def get_group(req: Request) -> Response:
        return json_response(_group_json(require_group(req.params["group"])))

    def members(req: Request, *, transitive: bool, cast: str | None = None) -> Response:
        group = require_group(req.params["group"])
        advanced = req.header("ConsistencyLevel").strip().lower() == "eventual"
        count = req.query.get("$count", "").lower() == "true"  # rides along in nextLinks
        if cast and transitive and not (advanced and count):
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                "The OData cast on transitiveMembers is not supported because the required"
                " parameters might be missing. Try adding $count=true query parameter and"
                " ConsistencyLevel:eventual header. Refer to"
                " https://aka.ms/graph-docs/advanced-queries for more information",
            )
        found = _transitive_members(t, group) if transitive else _direct_members(t, group)
        if cast == "user":
            found = [m for m in found if m.kind == "user"]
        elif cast == "group":
            found = [m for m in found if m.kind in GROUP_KINDS]
        elif cast is not None:
            found = []  # devices, contacts, service principals: none are generated
        found.sort(key=lambda m: m.pk)
        select = parse_select(req)
        relation = "transitiveMembers" if transitive else "members"
        path = f"/groups/{group.key}/{relation}" + (f"/microsoft.graph.{cast}" if cast else "")

        def fetch(after: int, limit: int) -> list[Item]:
            return [m for m in found if m.pk > after][:limit]

        def render(member: Item) -> dict[str, Any]:
            if member.kind == "user":
                out = {"@odata.type": "#microsoft.graph.user", **render_user(t, member, select)}
            else:
                out = {"@odata.type": "#microsoft.graph.group", **_group_json(member)}
            return out

        return paged_list(
            req,
            t.tokens,
            path,
            fetch,
            render,
            default=100,
            maximum=999,
            context="directoryObjects",
            extra={"@odata.count": len(found)} if advanced and count else None,
        )

    def list_members(req: Request) -> Response:
        return members(req, transitive=False)

    def list_transitive(req: Request) -> Response:
        return members(req, transitive=True)

    def list_members_cast(req: Request) -> Response:
        return members(req, transitive=False, cast=req.params["cast"].lower())

    def list_transitive_cast(req: Request) -> Response:
        return members(req, transitive=True, cast=req.params["cast"].lower())

    router.add("GET", "/users", list_users, service="directory")
    router.add("GET", "/users/{user}", get_user, service="directory")
    router.add(
        "GET",
        "/users/{user}/mailboxSettings",
        mailbox_settings,
        service="outlook",
        owner_param="user",
    )
    router.add("GET", "/groups", list_groups, service="directory")
    router.add("GET", "/groups/{group}", get_group, service="directory")
    router.add("GET", "/groups/{group}/members", list_members, service="directory")
    router.add("GET", "/groups/{group}/transitiveMembers", list_transitive, service="directory")
    router.add("GET", "/groups/{group}/members/{cast}", list_members_cast, service="directory")
    router.add(
        "GET", "/groups/{group}/transitiveMembers/{cast}", list_transitive_cast, service="directory"
    )


GROUP_KINDS = ("team", "group")


def _direct_members(t: Tenant, group: Item) -> list[Item]:
    out = []
    for ref in group.data.get("_members") or []:
        member = t.store.get(str(ref))
        if member is not None and member.kind in ("user", *GROUP_KINDS):
            out.append(member)
    return out


def _transitive_members(t: Tenant, group: Item) -> list[Item]:
    """Every member of the group and of its nested groups, once (nested groups too)."""
    seen: dict[str, Item] = {}
    todo = [group]
    visited = {group.key}
    while todo:
        for member in _direct_members(t, todo.pop()):
            seen.setdefault(member.key, member)
            if member.kind in GROUP_KINDS and member.key not in visited:
                visited.add(member.key)
                todo.append(member)
    return list(seen.values())


def _group_json(item: Item) -> dict[str, Any]:
    d = item.data
    if item.kind == "group":
        return public(d)
    return {
        "id": item.key,
        "displayName": d.get("displayName"),
        "description": d.get("description"),
        "mail": d.get("_mail"),
        "mailNickname": d.get("_mailNickname"),
        "groupTypes": ["Unified"],
        "resourceProvisioningOptions": ["Team"],
        "visibility": d.get("visibility", "private"),
        "createdDateTime": d.get("createdDateTime"),
    }
