"""Application permissions: which `roles` an app-only token needs for each Graph route.

Graph checks the `roles` claim of an app-only token against the permissions each API
page lists under "Permissions" (least to most privileged; any one of them is enough).
The sets below come from those pages (user-get.md, group-list-members.md,
user-list-messages.md, user-list-contacts.md, user-list-calendarview.md,
driveitem-get.md, site-getallsites.md, team-list.md / teams-list.md,
channel-list.md, channel-list-messages.md). Reads accept the read and the read-write
permission; writes only the read-write one.

A missing permission is answered the way each workload answers it (a 403 in every case,
with different codes and messages, seen in the field):

- directory (users, groups): `Authorization_RequestDenied` "Insufficient privileges to
  complete the operation." (resolve-auth-errors.md);
- Exchange (mail, contacts, calendars, mailbox settings): `ErrorAccessDenied` "Access is
  denied. Check credentials and try again.";
- SharePoint and OneDrive: `accessDenied`; "Either scp or roles claim need to be present
  in the token." when the token carries no roles at all (the PnP CLI's troubleshooting
  page), else "Access denied";
- Teams: `Forbidden` "Missing role permissions on the request. API requires one of
  '...'. Roles on the request '...'." (quoted in several clients' error handling).

Delegated tokens are scoped by the signed-in user elsewhere (app.py); only app-only
tokens are checked here. Pure functions; thread-safe.
"""

from __future__ import annotations

from .httpcore import GraphError
from .router import Route
from .tokens import AuthContext

_DIRECTORY_READ = ("Directory.Read.All", "Directory.ReadWrite.All")

READ: dict[str, tuple[str, ...]] = {
    "users": ("User.Read.All", "User.ReadWrite.All", *_DIRECTORY_READ),
    "groups": ("GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All", *_DIRECTORY_READ),
    "mailboxsettings": ("MailboxSettings.Read", "MailboxSettings.ReadWrite"),
    "mail": ("Mail.Read", "Mail.ReadWrite"),
    "contacts": ("Contacts.Read", "Contacts.ReadWrite"),
    "calendar": ("Calendars.Read", "Calendars.ReadWrite"),
    "files": (
        "Files.Read.All",
        "Files.ReadWrite.All",
        "Sites.Read.All",
        "Sites.ReadWrite.All",
        "Sites.FullControl.All",
    ),
    "sites": ("Sites.Read.All", "Sites.ReadWrite.All", "Sites.Manage.All", "Sites.FullControl.All"),
    "teams": (
        "Team.ReadBasic.All",
        "TeamSettings.Read.All",
        "TeamSettings.ReadWrite.All",
        *_DIRECTORY_READ,
    ),
    "channels": (
        "Channel.ReadBasic.All",
        "ChannelSettings.Read.All",
        "ChannelSettings.ReadWrite.All",
        *_DIRECTORY_READ,
    ),
    "channelmessages": ("ChannelMessage.Read.All",),
    # group-list-conversations.md, conversation-list-threads.md, conversationthread-list-posts.md
    "groupconversations": (
        "Group-Conversation.Read.All",
        "Group-Conversation.ReadWrite.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
    ),
    # group-list-calendarview.md (group-list-events.md refuses app-only tokens itself)
    "groupcalendar": ("Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite"),
}

WRITE: dict[str, tuple[str, ...]] = {
    "users": ("User.ReadWrite.All", "Directory.ReadWrite.All"),
    "groups": ("Group.ReadWrite.All", "Directory.ReadWrite.All"),
    "mailboxsettings": ("MailboxSettings.ReadWrite",),
    "mail": ("Mail.ReadWrite",),
    "contacts": ("Contacts.ReadWrite",),
    "calendar": ("Calendars.ReadWrite",),
    "files": ("Files.ReadWrite.All", "Sites.ReadWrite.All", "Sites.FullControl.All"),
    "sites": ("Sites.ReadWrite.All", "Sites.Manage.All", "Sites.FullControl.All"),
    "teams": ("TeamSettings.ReadWrite.All", "Directory.ReadWrite.All"),
    "channels": ("ChannelSettings.ReadWrite.All", "Directory.ReadWrite.All"),
    "channelmessages": ("ChannelMessage.ReadWrite.All",),
    "groupconversations": ("Group-Conversation.ReadWrite.All", "Group.ReadWrite.All"),
    "groupcalendar": ("Calendars.ReadWrite",),
}

_EXCHANGE = (
    "mail",
    "contacts",
    "calendar",
    "mailboxsettings",
    "groupconversations",
    "groupcalendar",
)
_SHAREPOINT = ("files", "sites")
_TEAMS = ("teams", "channels", "channelmessages")


def workload(pattern: str) -> str | None:
    """The permission family of a route pattern, or None when no role is needed
    (`$batch` checks each part on its own)."""
    segs = [s.lower() for s in pattern.strip("/").split("/") if s]
    if not segs or segs[0] == "$batch":
        return None
    head = segs[0]
    rest = segs[2:] if len(segs) > 1 else []
    if head == "users":
        if not rest:
            return "users"
        sub = rest[0]
        if sub == "mailboxsettings":
            return "mailboxsettings"
        if sub in ("mailfolders", "messages"):
            return "mail"
        if sub in ("contactfolders", "contacts"):
            return "contacts"
        if sub in ("calendar", "calendars", "calendarview", "events"):
            return "calendar"
        if sub in ("drive", "drives"):
            return "files"
        return "users"
    if head in ("drives", "shares") or "drive" in rest or "drives" in rest:
        return "files"
    if head == "groups":
        if rest and rest[0] in ("conversations", "threads"):
            return "groupconversations"
        if rest and rest[0] in ("calendarview", "calendar", "events"):
            return "groupcalendar"
        return "sites" if "sites" in rest else "groups"
    if head == "sites":
        return "sites"
    if head == "teams":
        if "messages" in rest:
            return "channelmessages"
        if "filesfolder" in rest:
            return "files"
        if "channels" in rest:
            return "channels"
        return "teams"
    return None


def required(route: Route) -> tuple[str, ...]:
    """The application permissions of which any one allows this route (empty: none)."""
    family = workload(route.pattern)
    if family is None:
        return ()
    table = READ if route.method in ("GET", "HEAD") else WRITE
    return table[family]


def check(route: Route, auth: AuthContext | None) -> None:
    """Raise Graph's 403 for an app-only token that lacks every permission the route
    accepts. Delegated tokens and routes that need no role pass."""
    if auth is None or auth.delegated:
        return
    needed = required(route)
    if not needed:
        return
    held = set(auth.scopes)
    if held.intersection(needed):
        return
    family = workload(route.pattern) or ""
    if family in ("users", "groups"):
        raise GraphError(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )
    if family in _EXCHANGE:
        raise GraphError(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        )
    if family in _SHAREPOINT:
        if not held:
            raise GraphError(
                403, "accessDenied", "Either scp or roles claim need to be present in the token."
            )
        raise GraphError(403, "accessDenied", "Access denied")
    raise GraphError(
        403,
        "Forbidden",
        f"Missing role permissions on the request. API requires one of '{', '.join(needed)}'."
        f" Roles on the request '{', '.join(sorted(held))}'.",
    )
