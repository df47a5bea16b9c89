"""Tenant preflight: can the configured backup work, before the first night?

`check_tenant()` signs in, then makes one small read-only request per configured
service and owner (``$top=1``, ``$select=id``) and classifies each answer:

- ``ok``: Graph answered; the app may read that service.
- not applicable (per user): ``MailboxNotEnabledForRESTAPI`` and its variants, or
  "User's mysite not found": the user has no mailbox or no OneDrive (no licence, not
  provisioned, mailbox on-premises). A backup skips such users without failing.
- ``missing_permission``: a 403 (``ErrorAccessDenied``, ``accessDenied``,
  ``Authorization_RequestDenied``, Teams' "Missing role permissions"): the application
  permission (or its admin consent) is missing. Probes of that service stop at the first
  such answer: permissions are granted to the app, not per user.
- ``not_approved``: Teams answered that channel messages are a protected API that
  Microsoft has not approved for this app (teams-protected-apis.md).
- ``not_licensed``: the tenant has no SharePoint Online ("Tenant does not have a SPO
  license"): SharePoint and OneDrive do not apply.
- ``error``: anything else (throttling that outlasted the retries, 5xx): the check could
  not tell; the message says what Graph answered.

The granted application permissions are read from the access token's ``roles`` claim
(delegated sign-ins: ``scp``), which Microsoft documents as the permissions the token
carries (access-token-claims-reference.md); it is decoded for display only, never trusted
for a decision: every verdict comes from Graph's own answer.

Read-only: nothing in the tenant or any repository is written. Cost: one request per
selected user and user service (threads share the client's per-mailbox limits), plus
two or three for sites and teams. Raises AuthError when sign-in fails and
M365ConfigError for an unusable configuration; everything else is in the result.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sources.m365.backup.discovery import (
    discover_groups,
    discover_sites,
    discover_teams,
    discover_users,
)
from sources.m365.graph.client import GraphClient, connect
from sources.m365.graph.errors import AccessDenied, GraphError, MailboxUnavailable
from sources.m365.graph.throttle import Meter, Resource
from sources.m365.services import SERVICES, USER_SERVICES
from sources.m365.settings import TenantSettings

# The least-privileged application permissions each service's backup needs, and the
# ones restore needs in addition (shown when one is missing). From the "Permissions"
# sections of the Graph API pages the backup calls; see also README, "Register an
# application".
BACKUP_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "directory": ("User.Read.All", "GroupMember.Read.All"),
    "mail": ("Mail.Read",),
    "contacts": ("Contacts.Read",),
    "calendar": ("Calendars.Read",),
    "onedrive": ("Files.Read.All",),
    "sharepoint": ("Sites.Read.All",),
    "teams": ("Team.ReadBasic.All", "Channel.ReadBasic.All", "ChannelMessage.Read.All"),
    # Listing the groups needs Group.Read.All (or GroupMember.Read.All, asked for above);
    # conversations: group-list-conversations.md; calendarView: group-list-calendarview.md.
    "groups": ("Group-Conversation.Read.All", "Calendars.Read"),
}
RESTORE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "mail": ("Mail.ReadWrite",),
    "contacts": ("Contacts.ReadWrite",),
    "calendar": ("Calendars.ReadWrite",),
    "onedrive": ("Files.ReadWrite.All",),
    "sharepoint": ("Sites.ReadWrite.All",),
    "teams": (),
    "groups": (),
}
PROTECTED_API_URL = "https://learn.microsoft.com/graph/teams-protected-apis"
_PROBES: dict[str, tuple[str, dict[str, str]]] = {
    "mail": ("/users/{id}/mailFolders/inbox", {"$select": "id"}),
    "contacts": ("/users/{id}/contactFolders", {"$top": "1", "$select": "id"}),
    "calendar": ("/users/{id}/calendars", {"$top": "1", "$select": "id"}),
    "onedrive": ("/users/{id}/drive", {"$select": "id"}),
}
_SPO_UNLICENSED = "does not have a spo license"

OK = "ok"
MISSING_PERMISSION = "missing_permission"
NOT_APPROVED = "not_approved"
NOT_LICENSED = "not_licensed"
ERROR = "error"
NOT_CONFIGURED = "not_configured"
# Verdicts that let a backup of the service run.
USABLE = (OK, NOT_CONFIGURED)


@dataclass
class ServiceCheck:
    """The verdict on one service (or on the directory, which every user service needs)."""

    name: str
    status: str = NOT_CONFIGURED
    message: str = ""
    needs: tuple[str, ...] = ()
    owners_checked: int = 0
    not_applicable: list[str] = field(default_factory=list)  # users without the service

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ok": self.status in USABLE,
            "message": self.message,
            "permissions_needed": list(self.needs),
            "restore_permissions": list(RESTORE_PERMISSIONS.get(self.name, ())),
            "owners_checked": self.owners_checked,
            "not_applicable": sorted(self.not_applicable),
        }


@dataclass
class TenantCheck:
    """Everything `coffer tenant check` reports."""

    auth: str
    granted: list[str]
    directory: ServiceCheck
    services: dict[str, ServiceCheck]
    users_selected: int = 0
    meter: Meter = field(default_factory=Meter)

    @property
    def ok(self) -> bool:
        return self.directory.status in USABLE and all(
            s.status in USABLE for s in self.services.values()
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "format": "coffer-tenant-check",
            "version": 1,
            "ok": self.ok,
            "auth": self.auth,
            "granted_permissions": sorted(self.granted),
            "directory": self.directory.as_json(),
            "services": {name: check.as_json() for name, check in self.services.items()},
            "users_selected": self.users_selected,
            "throttling": {
                "requests": self.meter.requests,
                "throttled_answers": self.meter.throttled,
                "throttled_seconds": round(self.meter.throttled_seconds, 3),
                "retries": self.meter.retries,
            },
        }


def token_permissions(token: str) -> list[str]:
    """The ``roles`` (app-only) or ``scp`` (delegated) of an access token, for display.

    The token is not verified here (Graph verifies it); an opaque or malformed token
    yields an empty list.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return []
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(claims, dict):
        return []
    roles = claims.get("roles")
    if isinstance(roles, list):
        return [str(r) for r in roles]
    scp = claims.get("scp")
    return str(scp).split() if isinstance(scp, str) else []


def _denied(check: ServiceCheck, exc: GraphError) -> None:
    if "protected api" in exc.message.lower():
        check.status = NOT_APPROVED
        check.message = (
            "Microsoft has not approved this app for the Teams protected API (channel "
            f"messages): request access at {PROTECTED_API_URL}"
        )
        return
    check.status = MISSING_PERMISSION
    check.message = (
        f"Graph refused ({exc.code}: {exc.message}): grant the application permission "
        f"{', '.join(check.needs)} and admin consent in Microsoft Entra ID"
    )


def _failed(check: ServiceCheck, exc: GraphError) -> None:
    if _SPO_UNLICENSED in exc.message.lower():
        check.status = NOT_LICENSED
        check.message = "the tenant has no SharePoint Online licence"
        return
    check.status = ERROR
    check.message = str(exc)


class _UserProbes:
    """Probes of the user services, one per user and service, in a few threads."""

    def __init__(self, client: GraphClient, checks: dict[str, ServiceCheck], meter: Meter):
        self.client = client
        self.checks = checks
        self.meter = meter
        self.lock = threading.Lock()

    def probe(self, user_id: str, upn: str, service: str) -> None:
        check = self.checks[service]
        with self.lock:
            if check.status in (MISSING_PERMISSION, NOT_APPROVED):
                return  # an app-wide refusal: more users would only say it again
        path, params = _PROBES[service]
        res = (
            Resource.sharepoint(self.meter)
            if service == "onedrive"
            else Resource.mailbox(user_id, self.meter)
        )
        outcome: GraphError | None = None
        try:
            self.client.get_json(path.format(id=user_id), res, params=params)
        except GraphError as exc:
            outcome = exc
        with self.lock:
            check.owners_checked += 1
            if isinstance(outcome, MailboxUnavailable):
                check.not_applicable.append(upn)
            elif isinstance(outcome, AccessDenied):
                _denied(check, outcome)
            elif outcome is not None and check.status == OK:
                _failed(check, outcome)


def check_tenant(
    settings: TenantSettings,
    *,
    only_users: tuple[str, ...] = (),
    only_services: tuple[str, ...] = (),
    prompt: Callable[[str], None] | None = None,
    client: GraphClient | None = None,
    threads: int = 8,
) -> TenantCheck:
    """Check sign-in, permissions and licences for the configured selection.

    ``prompt`` shows the device-code sign-in message. Retries are fewer than a backup's
    (a check should answer in seconds, not wait out a throttling storm).
    Raises AuthError (sign-in refused) and M365ConfigError; Graph's answers are verdicts.
    """
    if client is None:
        client = connect(settings.connection, prompt, max_attempts=4, throttle_budget=120.0)
    meter = Meter()
    token = client.tokens.token()
    auth = settings.connection.auth
    wanted = [s for s in settings.selection.services if not only_services or s in only_services]
    # GroupMember.Read.All only matters when the selection names groups.
    directory_needs = BACKUP_PERMISSIONS["directory"][: 2 if settings.selection.groups else 1]
    directory = ServiceCheck("directory", OK, needs=directory_needs)
    checks = {
        name: ServiceCheck(name, OK if name in wanted else NOT_CONFIGURED) for name in SERVICES
    }
    for name, check in checks.items():
        check.needs = BACKUP_PERMISSIONS[name]
    result = TenantCheck(auth, token_permissions(token), directory, checks, meter=meter)

    user_wanted = [s for s in wanted if s in USER_SERVICES]
    if user_wanted:
        try:
            jobs = discover_users(
                client, settings, only_users=only_users, only_services=tuple(user_wanted)
            )
        except AccessDenied as exc:
            _denied(directory, exc)
            for name in user_wanted:
                checks[name].status = ERROR
                checks[name].message = "cannot list the users (see directory)"
            jobs = []
        except GraphError as exc:
            _failed(directory, exc)
            jobs = []
        result.users_selected = len(jobs)
        probes = _UserProbes(client, checks, meter)
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            work = [
                pool.submit(probes.probe, job.key, job.name, service)
                for job in jobs
                for service in job.services
                if service in _PROBES
            ]
            for done in work:
                done.result()
        for name in user_wanted:
            check = checks[name]
            if check.status == OK and check.owners_checked == len(check.not_applicable):
                check.message = (
                    "no selected user has it" if check.owners_checked else "no user selected"
                )
    owner_probes = (
        ("sharepoint", _check_sites),
        ("teams", _check_teams),
        ("groups", _check_groups),
    )
    for name, probe in owner_probes:
        if name in wanted and not only_users:
            check = checks[name]
            try:
                probe(client, settings, check, meter)
            except AccessDenied as exc:
                _denied(check, exc)
            except GraphError as exc:
                _failed(check, exc)
    return result


def _check_sites(
    client: GraphClient, settings: TenantSettings, check: ServiceCheck, meter: Meter
) -> None:
    res = Resource.sharepoint(meter)
    sites = discover_sites(client, settings)
    check.owners_checked = len(sites)
    if sites:
        site = sites[0].key
        client.get_json(f"/sites/{site}/drives", res, params={"$top": "1", "$select": "id"})
        client.get_json(f"/sites/{site}/lists", res, params={"$top": "1", "$select": "id"})
    else:
        check.message = "no site matches the selection"


def _check_teams(
    client: GraphClient, settings: TenantSettings, check: ServiceCheck, meter: Meter
) -> None:
    teams = discover_teams(client, settings)
    check.owners_checked = len(teams)
    if not teams:
        check.message = "no team matches the selection"
        return
    team = teams[0].key
    channels = client.get_json(
        f"/teams/{team}/channels", Resource.teams(None, meter), params={"$select": "id"}
    )
    values = channels.get("value")
    if not isinstance(values, list) or not values:
        check.message = "the first team has no channel to try"
        return
    channel = str(values[0].get("id"))
    client.get_json(
        f"/teams/{team}/channels/{channel}/messages",
        Resource.teams(channel, meter),
        params={"$top": "1"},
    )


def _check_groups(
    client: GraphClient, settings: TenantSettings, check: ServiceCheck, meter: Meter
) -> None:
    """One probe: the first conversation of the first selected Microsoft 365 group."""
    groups = discover_groups(client, settings)
    check.owners_checked = len(groups)
    if not groups:
        check.message = "no Microsoft 365 group matches the selection"
        return
    client.get_json(
        f"/groups/{groups[0].key}/conversations",
        Resource.mailbox(groups[0].key, meter),
        params={"$top": "1"},
    )
