"""Finding the owners to back up: users (by UPN glob and group), sites and teams.

Discovery runs at the start of every run, so new users, sites and teams are
picked up without configuration changes. Guests (``userType`` Guest) have no
mailbox or OneDrive in the tenant and are left out (listed in the report's
``owners_skipped``). Personal OneDrive sites that ``getAllSites`` lists are left
to their users (the ``onedrive`` service). A tenant without SharePoint
(400 "Tenant does not have a SPO license": a mail-only tenant) has no sites to
back up: that is recorded as not applicable, not as a problem of the run.
Soft-deleted users are not listed by ``/users`` (they sit in
``/directory/deletedItems``): they are not backed up, their earlier snapshots
stay under the retention policy, and the run report lists them (runner.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sources.m365.backup.context import OwnerJob
from sources.m365.graph.client import GraphClient
from sources.m365.graph.errors import (
    AccessDenied,
    GraphError,
    M365ConfigError,
    MailboxUnavailable,
    TransientGraphError,
)
from sources.m365.graph.throttle import Resource
from sources.m365.services import USER_SERVICES
from sources.m365.settings import TenantSettings, matches_any

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
USER_SELECT = "id,userPrincipalName,displayName,mail,accountEnabled,userType"


def _escape(value: str) -> str:
    return value.replace("'", "''")


def group_members(client: GraphClient, res: Resource, ref: str) -> set[str]:
    """User IDs in group ``ref`` (an ID or a display name), nested groups included."""
    if _GUID.match(ref):
        gid = ref
    else:
        found = list(
            client.list_all(
                "/groups",
                res,
                params={"$filter": f"displayName eq '{_escape(ref)}'", "$select": "id,displayName"},
            )
        )
        if not found:
            raise M365ConfigError(f"[tenant] groups: no group named {ref!r}")
        gid = str(found[0]["id"])
    # The OData cast on transitiveMembers is an advanced query: Entra ID refuses it
    # (400 Request_UnsupportedQuery) without ConsistencyLevel: eventual and $count=true
    # (aad-advanced-queries.md, "Use of OData cast with transitive members list").
    members = client.list_all(
        f"/groups/{gid}/transitiveMembers/microsoft.graph.user",
        res,
        params={"$select": "id,userPrincipalName", "$count": "true", "$top": "999"},
        headers={"ConsistencyLevel": "eventual"},
    )
    return {str(m["id"]) for m in members if m.get("id")}


def _services(settings: TenantSettings, upn: str, only: tuple[str, ...]) -> tuple[str, ...]:
    services = settings.selection.services_for(upn)
    return tuple(s for s in services if not only or s in only)


def discover_users(
    client: GraphClient,
    settings: TenantSettings,
    *,
    only_users: tuple[str, ...] = (),
    only_services: tuple[str, ...] = (),
    skipped: list[dict[str, str]] | None = None,
) -> list[OwnerJob]:
    res = Resource.directory()
    sel = settings.selection
    in_groups: set[str] = set()
    for ref in sel.groups:
        in_groups |= group_members(client, res, ref)
    jobs: list[OwnerJob] = []
    params = {"$select": USER_SELECT, "$top": "999"}
    for user in client.list_all("/users", res, params=params):
        upn = str(user.get("userPrincipalName") or "")
        if not upn:
            continue
        if str(user.get("userType") or "Member") == "Guest":
            if skipped is not None and (not only_users or matches_any(upn, only_users)):
                reason = "guest user: no mailbox or OneDrive in this tenant (their home tenant's)"
                skipped.append({"kind": "users", "name": upn, "reason": reason})
            continue
        if not sel.user_selected(upn, in_groups=str(user.get("id")) in in_groups):
            continue
        if only_users and not matches_any(upn, only_users):
            continue
        services = _services(settings, upn, only_services)
        if services:
            jobs.append(OwnerJob("users", str(user["id"]), upn, services, user))
    return sorted(jobs, key=lambda j: j.name.lower())


def _site_job(site: dict[str, Any]) -> OwnerJob:
    url = str(site.get("webUrl") or "")
    name = url.split("://", 1)[-1].rstrip("/") or str(site["id"])
    return OwnerJob("sites", str(site["id"]), name, ("sharepoint",), site)


def _site_selected(settings: TenantSettings, site: dict[str, Any]) -> bool:
    names = (str(site.get("webUrl") or ""), str(site.get("displayName") or ""), str(site["id"]))
    return any(matches_any(n, settings.selection.sites) for n in names if n)


def discover_sites(client: GraphClient, settings: TenantSettings) -> list[OwnerJob]:
    """Every selected site collection and, below each, its subsites (webs) at any depth.

    ``getAllSites`` lists site collections only; a collection's subsites come from
    ``/sites/{id}/sites``, one level at a time (site-list-subsites.md), so each site costs
    one more request (2 SharePoint resource units) per run. A subsite is its own owner
    (restore finds it by its id like any site) and is selected when it matches the
    selection itself or when its parent is selected (backing up a site includes what
    lies below it).
    """
    res = Resource.sharepoint()
    jobs: list[OwnerJob] = []
    pending: list[tuple[dict[str, Any], bool]] = []
    for site in client.list_all("/sites/getAllSites", res, params={"$top": "999"}):
        url = str(site.get("webUrl") or "")
        if "-my.sharepoint." in url.lower() or not site.get("id"):
            continue  # personal OneDrive sites belong to their users
        pending.append((site, False))
    seen: set[str] = set()
    while pending:
        site, parent_selected = pending.pop()
        sid = str(site["id"])
        if sid in seen:
            continue  # a web listed twice (or a cycle in a hostile answer)
        seen.add(sid)
        selected = parent_selected or _site_selected(settings, site)
        if selected:
            jobs.append(_site_job(site))
        try:
            subsites = list(client.list_all(f"/sites/{sid}/sites", res, params={"$top": "999"}))
        except TransientGraphError:
            raise
        except GraphError:
            # A locked or inaccessible site refuses its subsites too: the site's own
            # backup reports why; its subsites wait until it opens again.
            continue
        pending.extend((sub, selected) for sub in subsites if sub.get("id"))
    return sorted(jobs, key=lambda j: j.name.lower())


def discover_teams(client: GraphClient, settings: TenantSettings) -> list[OwnerJob]:
    res = Resource.teams(None)
    jobs: list[OwnerJob] = []
    for team in client.list_all("/teams", res):
        tid = str(team.get("id") or "")
        display = str(team.get("displayName") or tid)
        if not any(matches_any(n, settings.selection.teams) for n in (display, tid) if n):
            continue
        # Team names are not unique: the short ID keeps owner names distinct.
        jobs.append(OwnerJob("teams", tid, f"{display} [{tid[:8]}]", ("teams",), team))
    return sorted(jobs, key=lambda j: j.name.lower())


def discover_groups(client: GraphClient, settings: TenantSettings) -> list[OwnerJob]:
    """Every selected Microsoft 365 group (``groupTypes`` holds "Unified"), teams' groups
    included: their group mailbox and calendar are not part of the Teams backup.

    ``m365_groups`` globs match the display name, the mail address or the id. The
    filter is Graph's own (group-list.md); the client checks ``groupTypes`` again.
    """
    res = Resource.directory()
    jobs: list[OwnerJob] = []
    params = {
        "$filter": "groupTypes/any(c:c eq 'Unified')",
        "$select": "id,displayName,mail,groupTypes,resourceProvisioningOptions",
        "$top": "999",
    }
    for group in client.list_all("/groups", res, params=params):
        gid = str(group.get("id") or "")
        if not gid or "Unified" not in (group.get("groupTypes") or []):
            continue
        display = str(group.get("displayName") or gid)
        names = (display, str(group.get("mail") or ""), gid)
        if not any(matches_any(n, settings.selection.m365_groups) for n in names if n):
            continue
        # Group names are not unique: the short ID keeps owner names distinct.
        jobs.append(OwnerJob("groups", gid, f"{display} [{gid[:8]}]", ("groups",), group))
    return sorted(jobs, key=lambda j: j.name.lower())


def discover(
    client: GraphClient,
    settings: TenantSettings,
    *,
    only_users: tuple[str, ...] = (),
    only_services: tuple[str, ...] = (),
    skipped: list[dict[str, str]] | None = None,
) -> tuple[list[OwnerJob], list[str]]:
    """Every owner the configuration selects (users, then sites, teams and Microsoft 365
    groups), and the problems met listing those (which do not stop the users' backup).
    Owners and services that do not apply (guests, a tenant without SharePoint) are
    appended to ``skipped`` (kind, name, reason), not to the problems.

    Raises what listing users raises: a run without its users is no run.
    """
    wanted = [s for s in settings.selection.services if not only_services or s in only_services]
    jobs: list[OwnerJob] = []
    problems: list[str] = []
    # [tenant.user_services] replaces `services` for the users it names, so
    # users are listed when it names any, and only --service narrows theirs.
    if any(s in USER_SERVICES for s in wanted) or settings.selection.user_services:
        jobs += discover_users(
            client,
            settings,
            only_users=only_users,
            only_services=only_services,
            skipped=skipped,
        )
    if only_users:
        return jobs, problems  # --user narrows the run to those users
    for service, find in (
        ("sharepoint", discover_sites),
        ("teams", discover_teams),
        ("groups", discover_groups),
    ):
        if service not in wanted:
            continue
        try:
            jobs += find(client, settings)
        except MailboxUnavailable as exc:
            if skipped is not None:
                reason = f"the tenant has no {service} ({exc.code}: {exc.message})"
                skipped.append({"kind": service, "name": "*", "reason": reason})
        except (AccessDenied, TransientGraphError, GraphError) as exc:
            problems.append(f"cannot list the {service} owners: {exc}")
    return jobs, problems


def signed_in_user(client: GraphClient, settings: TenantSettings, only: Iterable[str]) -> OwnerJob:
    """The owner of a delegated (device-code) run: the signed-in user, user services only."""
    params = {"$select": USER_SELECT}
    me: dict[str, Any] = client.get_json("/me", Resource.directory(), params=params)
    upn = str(me.get("userPrincipalName") or me.get("id"))
    wanted = tuple(only)
    services = tuple(s for s in settings.selection.services_for(upn) if not wanted or s in wanted)
    return OwnerJob("users", str(me["id"]), upn, services, me)
