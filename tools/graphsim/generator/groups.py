"""Generated Microsoft Entra groups (resources/group.md) besides the teams' groups.

Two security groups, one nested in the other, so that direct and transitive membership
differ (group-list-members.md, group-list-transitivemembers.md):

- "All Staff": every licensed user but the last, and the group "Engineering";
- "Engineering": the first and the last licensed user, and the user without a mailbox.

So the last licensed user and the user without a mailbox belong to "All Staff" only
through "Engineering". Memberships are the private `_members` list (user and group ids);
team groups get theirs in teams.py.
"""

from __future__ import annotations

from typing import Any

from ..store import NewItem, Store
from .base import Gen
from .people import Person


def _group(gen: Gen, label: str, name: str, nick: str, members: list[str]) -> dict[str, Any]:
    return {
        "id": gen.guid("group", label),
        "displayName": name,
        "description": f"{name} (security group)",
        "groupTypes": [],
        "mail": None,
        "mailEnabled": False,
        "mailNickname": nick,
        "securityEnabled": True,
        "visibility": None,
        "createdDateTime": gen.ago(gen.rng("group", label), 1500, 500),
        "_members": members,
    }


def generate_groups(store: Store, gen: Gen, users: list[Person], no_mailbox: Person) -> None:
    if not users:
        return
    first, last = users[0], users[-1]
    engineering = _group(
        gen,
        "engineering",
        "Engineering",
        "engineering",
        list(dict.fromkeys([first.id, last.id, no_mailbox.id])),
    )
    staff_members = [p.id for p in users[:-1]] + [str(engineering["id"])]
    staff = _group(gen, "all-staff", "All Staff", "allstaff", staff_members)
    rows = [
        NewItem("group", str(g["id"]), "groups", "tenant", g, name=str(g["displayName"]))
        for g in (staff, engineering)
    ]
    with store.transaction() as tx:
        tx.insert_many(rows)
