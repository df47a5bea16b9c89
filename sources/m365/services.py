"""The Microsoft 365 services Coffer knows, each described once.

Every other module reads this registry instead of spelling service names and
their properties: the ``[tenant]`` table's checks (settings), discovery and
``coffer tenant check`` (which services belong to a user), the backup runner
(which owners need a mailbox, which throttling resource a service draws on),
restore and ``find`` (which top-level directory of an owner's tree holds which
service, which entry types are items, where an item may be written back), and
the command line's ``--service`` choices. Adding a service: docs/layout.md
("The code, and adding a service").

The backup function and the restore writer of a service are bound by name in
the two runners (``backup/runner.py`` ``BACKUPS``, ``restore/runner.py``
``WRITERS``; a test checks both cover this registry): holding them here would
make this module import the service modules, which import the settings that
read this registry, a cycle.

Pure data; thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from sources.m365.graph.throttle import Resource

# Owner kinds (store Owner.kind) of a Microsoft 365 snapshot.
USERS = "users"
SITES = "sites"
TEAMS = "teams"
GROUPS = "groups"

# Restore target kinds (restore/target.py; repeated here so this module stays at the bottom).
TO_ORIGINAL = "original"
TO_USER = "user"
TO_SITE = "site"

# Which Graph limit a service's requests count against (graph/throttle.py).
MAILBOX = "mailbox"  # Exchange: 4 concurrent requests per mailbox (a group's too)
TEAMS_API = "teams"  # the Teams service's app-wide limits
SHAREPOINT = "sharepoint"  # SharePoint and OneDrive, tenant-wide


@dataclass(frozen=True)
class ServiceSpec:
    """One service: what it backs up, where it lives in the tree, where it restores to.

    ``tree_roots`` are the top-level directories of an owner's tree that hold
    the service (docs/layout.md), ``root_prefixes`` name families of them
    (``onedrive-<drive>``). ``item_kinds`` maps an entry's ``type`` attribute
    to the item kind ``--kind`` filters on (entry types not listed are not
    items of record). ``restore_to`` lists the restore target kinds its items
    can be written to (empty: restore only with ``--to-dir``).
    """

    name: str
    owner_kinds: tuple[str, ...]
    tree_roots: tuple[str, ...]
    throttle: str
    item_kinds: tuple[tuple[str, str], ...] = ()
    root_prefixes: tuple[str, ...] = ()
    needs_mailbox: bool = False  # skipped (not failed) for a user without an Exchange mailbox
    restore_to: tuple[str, ...] = ()
    mail_budget: bool = False  # restored items count against Exchange's upload budget (pacing)
    home: str = "mailbox"  # what a user lacks when Graph says MailboxUnavailable for it

    def holds(self, top: str) -> bool:
        """Whether a top-level directory of an owner's tree belongs to this service."""
        return top in self.tree_roots or any(top.startswith(p) for p in self.root_prefixes)

    def resource(self, key: str) -> Resource:
        """The throttling resource of this service for an owner (``key``: its mailbox)."""
        if self.throttle == MAILBOX:
            return Resource.mailbox(key)
        if self.throttle == TEAMS_API:
            return Resource.teams(None)
        return Resource.sharepoint()


_EVERYWHERE = (TO_ORIGINAL, TO_USER, TO_SITE)
_MAILBOXES = (TO_ORIGINAL, TO_USER)

# In the order backups run them and restores write them.
REGISTRY: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "mail",
        (USERS,),
        ("mail",),
        MAILBOX,
        (("message", "message"),),
        restore_to=_MAILBOXES,
        mail_budget=True,
    ),
    ServiceSpec(
        "contacts",
        (USERS,),
        ("contacts",),
        MAILBOX,
        (("contact", "contact"),),
        needs_mailbox=True,
        restore_to=_MAILBOXES,
    ),
    ServiceSpec(
        "calendar",
        (USERS,),
        ("calendar",),
        MAILBOX,
        (("event", "event"),),
        needs_mailbox=True,
        restore_to=_MAILBOXES,
    ),
    ServiceSpec(
        "onedrive",
        (USERS,),
        ("onedrive",),
        SHAREPOINT,
        (("driveItem", "file"),),
        root_prefixes=("onedrive-",),
        restore_to=_EVERYWHERE,
        home="OneDrive",
    ),
    ServiceSpec(
        "sharepoint",
        (SITES,),
        ("libraries", "lists"),
        SHAREPOINT,
        (("driveItem", "file"), ("listItem", "list-item")),
        restore_to=_EVERYWHERE,
        home="SharePoint",
    ),
    ServiceSpec("teams", (TEAMS,), ("channels",), TEAMS_API, (("chatThread", "post"),)),
    ServiceSpec("groups", (GROUPS,), ("conversations",), MAILBOX),
)

BY_NAME = {spec.name: spec for spec in REGISTRY}
SERVICES = tuple(spec.name for spec in REGISTRY)
USER_SERVICES = tuple(spec.name for spec in REGISTRY if USERS in spec.owner_kinds)
# Entry type -> item kind, over every service (an entry's kind does not depend on its service).
ITEM_KINDS = {t: kind for spec in REGISTRY for t, kind in spec.item_kinds}


def spec(name: str) -> ServiceSpec:
    """The service called ``name``; raises KeyError for an unknown one."""
    return BY_NAME[name]


def service_of(path: str) -> str | None:
    """The service an owner-tree path belongs to (None: not an item area)."""
    top = path.split("/", 1)[0]
    for candidate in REGISTRY:
        if candidate.holds(top):
            return candidate.name
    return None


def writable_to(target_kind: str) -> tuple[str, ...]:
    """The services whose items can be written to a restore target of this kind."""
    return tuple(s.name for s in REGISTRY if target_kind in s.restore_to)


def restorable_owner(owner_kind: str) -> bool:
    """Whether any service of an owner of this kind can be written back to Microsoft 365."""
    return any(s.restore_to for s in REGISTRY if owner_kind in s.owner_kinds)
