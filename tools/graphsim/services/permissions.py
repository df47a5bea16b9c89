"""Sharing permissions of drive items (behaviour; the endpoints are in drive.py).

Sources: api-reference/v1.0/api/driveitem-list-permissions.md (effective permissions:
those set on the item and those inherited from its ancestors; `$select`;
`If-None-Match`), permission-get.md, resources/permission.md (the `link`, `grantedToV2`,
`grantedToIdentitiesV2` facets; "OneDrive for Business and SharePoint document libraries
do not return the inheritedFrom property"), resources/shared.md (the `shared` facet:
"If a driveItem has a non-null shared facet, the item has been shared"; scope anonymous,
organization or users) and driveitem-delta.md, "Scanning permissions hierarchies"
(`Prefer: hierarchicalsharing`; `Prefer: deltashowsharingchanges`: "all items that
appear in the delta query response due to permission changes have the
@microsoft.graph.sharedChanged":"True" OData annotation").

Model (SharePoint's): an item has permissions of its own (`_perms`) or inherits all of
its parent's; the root always has its own. Effective permissions are those of the
nearest ancestor-or-self that has its own, so a moved item that inherits takes its new
parent's at once. Sharing an item that inherits gives it a copy of what it inherited
plus the new link (breaking inheritance, as SharePoint does).
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

from ..httpcore import GraphError
from ..store import Item, Transaction
from ..tenant import Tenant

_SCOPE_ORDER = ("users", "organization", "anonymous")


def owner_of_perms(t: Tenant, item: Item) -> Item:
    """The item whose own permissions `item` uses (itself, or an ancestor)."""
    cur: Item | None = item
    seen = 0
    while cur is not None and seen < 1000:
        if "_perms" in cur.data or "root" in cur.data or not cur.parent:
            return cur
        cur = t.store.get(cur.parent)
        seen += 1
    return item


def effective(t: Tenant, item: Item) -> list[dict[str, Any]]:
    """The item's effective permissions (a copy: callers may change it)."""
    source = owner_of_perms(t, item)
    return copy.deepcopy(list(source.data.get("_perms") or []))


def is_sharing(perm: dict[str, Any]) -> bool:
    """A sharing link or a grant to a user other than an owner (site groups are not
    sharing: they are the library's defaults)."""
    if perm.get("link"):
        return True
    roles = perm.get("roles") or []
    granted = perm.get("grantedToV2") or {}
    return "owner" not in roles and "user" in granted


def shared_facet(t: Tenant, item: Item, perms: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The `shared` facet for these effective permissions, or None when not shared."""
    scopes = set()
    for p in perms:
        if not is_sharing(p):
            continue
        link = p.get("link") or {}
        scopes.add(str(link.get("scope") or "users"))
    if not scopes:
        return None
    widest = max(scopes, key=lambda s: _SCOPE_ORDER.index(s) if s in _SCOPE_ORDER else 0)
    facet: dict[str, Any] = {"scope": widest}
    drive = t.store.get(item.scope)
    owner = (drive.data.get("owner") if drive is not None else None) or {}
    if "user" in owner:
        facet["owner"] = {"user": dict(owner["user"])}
    return facet


def sharing_json(t: Tenant, item: Item, *, in_delta: bool, hierarchical: bool) -> Any:
    """What the item shows as `shared`: a facet, `{}` or nothing (None).

    Outside delta and in delta without `Prefer: hierarchicalsharing`, every shared item
    shows the facet, inherited sharing included. With the header, only the roots of
    permission hierarchies show it: the facet if shared, an empty one if not
    (driveitem-delta.md, "Scanning permissions hierarchies")."""
    if in_delta and hierarchical:
        if "_perms" not in item.data and "root" not in item.data:
            return None
        return shared_facet(t, item, list(item.data.get("_perms") or [])) or {}
    return shared_facet(t, item, effective(t, item))


def wants_hierarchical(prefer: str) -> bool:
    return bool(re.search(r"(^|[,\s])hierarchicalsharing($|[,\s;])", prefer, re.I))


def share(
    t: Tenant,
    tx: Transaction,
    item: Item,
    *,
    kind: str = "view",
    scope: str = "organization",
) -> dict[str, Any]:
    """Add a sharing link to `item` (an admin mutation, as a user sharing it would).

    The item appears in the next delta round (its sharing changed) without a new eTag.
    Returns the new permission."""
    if kind not in ("view", "edit") or scope not in _SCOPE_ORDER:
        raise GraphError(400, "invalidRequest", "Unknown link type or scope.")
    own = list(item.data.get("_perms") or effective(t, item))
    pid = str(uuid.uuid4())
    drive = t.store.get(item.scope)
    base = str((drive.data.get("webUrl") if drive is not None else "") or "")
    origin = "/".join(base.split("/")[:3])
    letter = "f" if "folder" in item.data else "u"
    perm = {
        "id": pid,
        "roles": ["write"] if kind == "edit" else ["read"],
        "link": {
            "scope": scope,
            "type": kind,
            "webUrl": f"{origin}/:{letter}:/g/E{pid.replace('-', '')}",
            "preventsDownload": False,
        },
    }
    own.append(perm)
    item.data["_perms"] = own
    _sharing_changed(tx, item)
    return perm


def _sharing_changed(tx: Transaction, item: Item) -> None:
    """Store the item, remembering the change's sequence number: delta marks it
    ``@microsoft.graph.sharedChanged`` for ``Prefer: deltashowsharingchanges``."""
    tx.update(item)
    item.data["_sharingSeq"] = item.seq
    tx.update(item, bump=False)


def shared_changed(item: Item, since: int) -> bool:
    """True when the item's sharing changed after the delta watermark ``since``."""
    return int(item.data.get("_sharingSeq") or 0) > since


def wants_sharing_changes(prefer: str) -> bool:
    return bool(re.search(r"(^|[,\s])deltashowsharingchanges($|[,\s;])", prefer, re.I))


def unshare(t: Tenant, tx: Transaction, item: Item) -> None:
    """Remove the item's sharing links and grants. It keeps permissions of its own
    (without sharing), so delta shows it with an empty `shared` facet
    (driveitem-delta.md)."""
    own = [p for p in (item.data.get("_perms") or effective(t, item)) if not is_sharing(p)]
    item.data["_perms"] = own
    _sharing_changed(tx, item)
