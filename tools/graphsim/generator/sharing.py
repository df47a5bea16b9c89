"""Generated sharing permissions of drive items (resources/permission.md).

SharePoint and OneDrive for Business keep permissions per *permission hierarchy*: an
item either inherits everything from its parent or has permissions of its own. Sharing
an item breaks inheritance: the item takes a copy of what it inherited and gains the new
sharing link or grant. So a drive item's effective permissions (what `GET
.../permissions` lists) are those of its nearest ancestor-or-self with permissions of its
own (`_perms`), and the drive's root always has its own: the OneDrive's owner, or the
site's Owners, Members and Visitors groups for a document library.

A deterministic share of folders and files gets permissions of its own, each with one or
two of: an organization view link, an anonymous view link, a specific-people edit link,
a direct grant (read or write) to a colleague. Each drive gets at least one shared folder
and one shared file, so every drive shows both shapes. Business drives do not return
`inheritedFrom` (permission.md, "Remarks"): inherited permissions look the same on a
child as on the ancestor they come from.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from .base import Gen
from .people import Person

FOLDER_SHARE = 0.3
FILE_SHARE = 0.1


def membership_id(upn: str) -> str:
    """SharePoint's id of a user's permission: the base64 of the membership claim."""
    claim = f"i:0#.f|membership|{upn.lower()}"
    return base64.b64encode(claim.encode()).decode().rstrip("=")


def user_identity(person: Person, site_user_id: int) -> dict[str, Any]:
    """grantedToV2: a sharePointIdentitySet with the user and the site user."""
    user = {"displayName": person.name, "email": person.address, "id": person.id}
    site_user = {
        "displayName": person.name,
        "email": person.address,
        "id": str(site_user_id),
        "loginName": f"i:0#.f|membership|{person.address.lower()}",
    }
    return {"user": user, "siteUser": site_user}


def _user_grant(person: Person, site_user_id: int, roles: list[str]) -> dict[str, Any]:
    identity = user_identity(person, site_user_id)
    return {
        "id": membership_id(person.address),
        "roles": roles,
        "grantedTo": {"user": dict(identity["user"])},
        "grantedToV2": identity,
    }


def root_permissions(owner: Person | None, site_name: str | None = None) -> list[dict[str, Any]]:
    """The drive root's own permissions: the OneDrive's owner, or a library's site groups."""
    if owner is not None:
        return [_user_grant(owner, 3, ["owner"])]
    name = site_name or "Site"
    out = []
    for gid, (suffix, role) in enumerate(
        (("Owners", "owner"), ("Members", "write"), ("Visitors", "read")), start=3
    ):
        group = {"displayName": f"{name} {suffix}", "id": str(gid), "loginName": f"{name} {suffix}"}
        out.append(
            {
                "id": str(gid),
                "roles": [role],
                "grantedTo": {"user": {"displayName": group["displayName"]}},
                "grantedToV2": {"siteGroup": group},
            }
        )
    return out


def _link(
    gen: Gen,
    origin: str,
    label: tuple[object, ...],
    *,
    folder: bool,
    kind: str,
    scope: str,
    people: Sequence[tuple[Person, int]] = (),
) -> dict[str, Any]:
    raw = bytes.fromhex(gen.guid("link-token", *label).replace("-", ""))
    token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    letter = "f" if folder else "u"
    web_url = f"{origin}/:{letter}:/g/E{token}"
    share_id = "u!" + base64.urlsafe_b64encode(web_url.encode()).decode().rstrip("=")
    perm: dict[str, Any] = {
        "id": gen.guid("link", *label),
        "roles": ["write"] if kind == "edit" else ["read"],
        "shareId": share_id,
        "link": {"scope": scope, "type": kind, "webUrl": web_url, "preventsDownload": False},
    }
    if people:
        identities = [user_identity(p, uid) for p, uid in people]
        perm["grantedToIdentitiesV2"] = identities
        perm["grantedToIdentities"] = [{"user": dict(i["user"])} for i in identities]
    return perm


def maybe_share(
    gen: Gen,
    drive_label: str,
    label: object,
    *,
    web_url: str,
    folder: bool,
    inherited: list[dict[str, Any]],
    colleagues: Sequence[Person],
    force: bool = False,
) -> list[dict[str, Any]] | None:
    """The item's own permissions if it is shared, else None (it inherits).

    Uses its own random stream, so sharing never shifts any other generated value.
    """
    rng = gen.rng("sharing", drive_label, label)
    if not force and rng.random() >= (FOLDER_SHARE if folder else FILE_SHARE):
        return None
    parts = urlsplit(web_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    own = [dict(p) for p in inherited]
    shapes = ["organization", "anonymous", "people"] + (["grant"] if colleagues else [])
    for n, shape in enumerate(rng.sample(shapes, rng.randint(1, 2))):
        key = (drive_label, label, n)
        if shape == "grant":
            person = colleagues[rng.randrange(len(colleagues))]
            grant = _user_grant(person, 10 + rng.randrange(90), [rng.choice(["read", "write"])])
            own = [p for p in own if p["id"] != grant["id"]] + [grant]
        elif shape == "people" and colleagues:
            who = rng.sample(list(colleagues), min(len(colleagues), rng.randint(1, 2)))
            people = [(p, 10 + rng.randrange(90)) for p in who]
            own.append(
                _link(gen, origin, key, folder=folder, kind="edit", scope="users", people=people)
            )
        else:
            scope = "organization" if shape in ("organization", "people") else "anonymous"
            own.append(_link(gen, origin, key, folder=folder, kind="view", scope=scope))
    return own
