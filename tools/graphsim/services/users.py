"""Users and groups (api-reference/v1.0/api/user-list.md, user-get.md,
user-get-mailboxsettings.md, group-list.md).

- `GET /users` is paged (default 100, `$top` up to 999) and returns the default property
  set (user-list.md) unless `$select` asks for more (accountEnabled, userType,
  assignedLicenses, ...). Shared and resource mailboxes are users too (accountEnabled
  false); `mailboxSettings.userPurpose` tells them apart (user, shared, room).
- `GET /users/{id | userPrincipalName}`.
- `GET /users/{id}/mailboxSettings` answers 404 MailboxNotEnabledForRESTAPI for a user
  without a mailbox, as every Outlook endpoint does.
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
            lambda after, limit: t.store.by_kind(["team"], after_pk=after, limit=limit),
            _group_json,
            default=100,
            maximum=999,
            context="groups",
            filterable=["displayName", "mailNickname", "id"],
        )

    def get_group(req: Request) -> Response:
        item = t.store.get(req.params["group"])
        if item is None or item.kind != "team":
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{req.params['group']}' does not exist.",
            )
        return json_response(_group_json(item))

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


def _group_json(item: Item) -> dict[str, Any]:
    d = item.data
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
