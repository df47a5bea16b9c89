"""The seeded tenant generator.

`generate_tenant(store, seed, scale, users=None)` fills an empty store with a healthy
tenant: licensed users with mailboxes and OneDrives, a shared mailbox, a room (resource)
mailbox, a user without a mailbox (OneDrive only), SharePoint sites with a document
library and a list, and Teams teams (each with its group site) with channels, posts and
replies. Metadata goes into SQLite; file and attachment bytes are derived lazily from
their specs (content.py), so even the large scale costs little disk and no RAM.

Deterministic: the same seed and scale give the same ids, names, sizes and bytes; only
timestamps are relative to the generation day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from ..config import SCALES, ScaleProfile
from ..services import groupsmodel
from ..store import NewItem, Store
from . import names
from .base import Gen, content_spec, log_size
from .drives import generate_drive, personal_web_url
from .groups import generate_groups
from .mailbox import generate_mailbox, shared_attachments
from .people import Person
from .sites import generate_sites
from .teams import generate_teams

GENERATOR_VERSION = "1"


def generate_tenant(
    store: Store,
    *,
    seed: int,
    scale: str,
    users: int | None,
    domain: str,
    sharepoint_host: str,
    anchor: dt.datetime | None = None,
    lazy: bool = False,
) -> dict[str, Any]:
    """Fill the empty `store` with the tenant of (`seed`, `scale`, `users`).

    With `lazy`, the licensed users are stored without content (``_lazy`` in their
    data) and `materialize_user` generates a user's mail, contacts, calendar and drive
    on first access; the content is the same as the eager path's (every value derives
    from the seed and the user's index, not from generation order), only the store's
    sequence numbers differ. The eager path (the default) is unchanged.
    """
    profile = SCALES[scale]
    if users is not None:
        profile = replace(profile, users=users)
    anchor = anchor or dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    gen = Gen(seed, anchor)
    people = _people(gen, profile, domain)
    pool = shared_attachments(gen)
    specials = _specials(gen, domain)
    big_files = list(profile.big_files)
    regular = people[: profile.users]
    if lazy:
        _lazy_users(store, gen, regular, profile)
    for index, person in enumerate([] if lazy else regular):
        mine = [size for i, size in enumerate(big_files) if i % max(1, len(regular)) == index]
        _user(
            store,
            gen,
            person,
            index,
            profile,
            people,
            pool,
            domain,
            sharepoint_host,
            mine,
            mailbox=True,
            drive=True,
        )
    shared, room, no_mailbox = specials
    _user(
        store,
        gen,
        shared,
        1000,
        profile,
        people,
        pool,
        domain,
        sharepoint_host,
        [],
        mailbox=True,
        drive=False,
        purpose="shared",
        enabled=False,
        messages=max(4, profile.messages_per_user // 3),
    )
    _user(
        store,
        gen,
        room,
        1001,
        profile,
        people,
        pool,
        domain,
        sharepoint_host,
        [],
        mailbox=True,
        drive=False,
        purpose="room",
        enabled=False,
        messages=3,
        room=True,
    )
    _user(
        store,
        gen,
        no_mailbox,
        1002,
        profile,
        people,
        pool,
        domain,
        sharepoint_host,
        [],
        mailbox=False,
        drive=True,
    )
    root_site = generate_sites(store, gen, profile, sharepoint_host, regular)
    generate_teams(store, gen, profile, sharepoint_host, regular)
    generate_groups(store, gen, regular, no_mailbox)
    groupsmodel.generate(store, gen, regular, domain)
    with store.transaction() as tx:
        tx.set_meta("root_site", root_site)
        tx.set_meta("generator", GENERATOR_VERSION)
        tx.set_meta("seed", str(seed))
        tx.set_meta("scale", scale)
        tx.set_meta("users", str(profile.users))
        tx.set_meta("anchor", anchor.isoformat())
        if lazy:
            tx.set_meta("lazy", "1")
    return {"users": profile.users, "scale": scale, "seed": seed}


@dataclass(frozen=True)
class LazyPlan:
    """What generating one lazy user's content needs, rebuilt from the store's meta."""

    gen: Gen
    profile: ScaleProfile
    people: list[Person]
    index: dict[str, int]  # user id -> index among the licensed users
    pool: list[dict[str, Any]]
    sharepoint_host: str


def lazy_plan(store: Store, *, domain: str, sharepoint_host: str) -> LazyPlan | None:
    """The plan of a tenant generated with ``lazy=True``; None for an eager tenant."""
    if store.get_meta("lazy") != "1":
        return None
    scale = str(store.get_meta("scale"))
    profile = replace(SCALES[scale], users=int(store.get_meta("users") or 0))
    gen = Gen(
        int(store.get_meta("seed") or 0), dt.datetime.fromisoformat(str(store.get_meta("anchor")))
    )
    people = _people(gen, profile, domain)
    return LazyPlan(
        gen=gen,
        profile=profile,
        people=people,
        index={person.id: i for i, person in enumerate(people)},
        pool=shared_attachments(gen),
        sharepoint_host=sharepoint_host,
    )


def lazy_content(plan: LazyPlan, user_id: str) -> tuple[list[NewItem], dict[str, Any]]:
    """The content rows of the lazy user `user_id` and its ``_wk``/``_drive`` fields.

    The same rows the eager generator writes for that user (pure: no store access).
    Raises KeyError for an id that is not one of the plan's licensed users.
    """
    index = plan.index[user_id]
    regular = plan.people[: plan.profile.users]
    big_files = list(plan.profile.big_files)
    mine = [size for i, size in enumerate(big_files) if i % max(1, len(regular)) == index]
    rows, wk, drive_key = _content(
        plan.gen,
        plan.people[index],
        index,
        plan.profile,
        plan.people,
        plan.pool,
        plan.sharepoint_host,
        mine,
        mailbox=True,
        drive=True,
    )
    return rows, {"_wk": wk, "_drive": drive_key}


def _lazy_users(store: Store, gen: Gen, regular: list[Person], profile: ScaleProfile) -> None:
    """Store the licensed users without content (``_lazy``); see `lazy_content`."""
    rows = []
    for index, person in enumerate(regular):
        data = _user_data(gen, person, index, mailbox=True, drive=True)
        data.update({"_wk": {}, "_drive": None, "_lazy": True})
        rows.append(NewItem("user", person.id, "users", "tenant", data, name=person.address))
    with store.transaction() as tx:
        tx.insert_many(rows)


def _people(gen: Gen, profile: ScaleProfile, domain: str) -> list[Person]:
    out: list[Person] = []
    used: set[str] = set()
    for i in range(profile.users):
        rng = gen.rng("person", i)
        first, last = names.FIRST[(i + rng.randrange(3)) % len(names.FIRST)], rng.choice(names.LAST)
        local = names.ascii_local(first, last)
        while local in used:
            local += str(i)
        used.add(local)
        out.append(Person(gen.guid("user", i), f"{first} {last}", f"{local}@{domain}"))
    return out


def _specials(gen: Gen, domain: str) -> tuple[Person, Person, Person]:
    return (
        Person(gen.guid("user", "shared"), "Info Shared Mailbox", f"info@{domain}"),
        Person(gen.guid("user", "room"), "Board Room", f"boardroom@{domain}"),
        Person(gen.guid("user", "nomailbox"), "Contractor Without Mailbox", f"contractor@{domain}"),
    )


def _user(
    store: Store,
    gen: Gen,
    person: Person,
    index: int,
    profile: ScaleProfile,
    people: list[Person],
    pool: list[dict[str, Any]],
    domain: str,
    sharepoint_host: str,
    big_files: list[int],
    *,
    mailbox: bool,
    drive: bool,
    purpose: str = "user",
    enabled: bool = True,
    messages: int | None = None,
    room: bool = False,
) -> None:
    rows, wk, drive_key = _content(
        gen,
        person,
        index,
        profile,
        people,
        pool,
        sharepoint_host,
        big_files,
        mailbox=mailbox,
        drive=drive,
        messages=messages,
        room=room,
    )
    data = _user_data(
        gen, person, index, mailbox=mailbox, drive=drive, purpose=purpose, enabled=enabled
    )
    data["_wk"] = wk
    data["_drive"] = drive_key
    rows.insert(0, NewItem("user", person.id, "users", "tenant", data, name=person.address))
    with store.transaction() as tx:
        tx.insert_many(rows)


def _content(
    gen: Gen,
    person: Person,
    index: int,
    profile: ScaleProfile,
    people: list[Person],
    pool: list[dict[str, Any]],
    sharepoint_host: str,
    big_files: list[int],
    *,
    mailbox: bool,
    drive: bool,
    messages: int | None = None,
    room: bool = False,
) -> tuple[list[NewItem], dict[str, str], str | None]:
    """A user's mailbox and OneDrive rows, well-known folder ids and drive key."""
    rows: list[NewItem] = []
    wk: dict[str, str] = {}
    if mailbox:
        big = profile.big_attachment if index in (0, max(1, profile.users // 2)) else 0
        out = generate_mailbox(
            gen,
            person,
            index,
            profile,
            people,
            pool,
            messages=messages or profile.messages_per_user,
            big_attachment=big,
            room=room,
        )
        rows.extend(out.rows)
        wk = out.well_known
    drive_key = None
    if drive:
        drows, drive_key, _ = generate_drive(
            gen,
            drive_label=f"user-{person.id}",
            owner=person.id,
            drive_type="business",
            display_name="OneDrive",
            web_url=personal_web_url(person.address, sharepoint_host),
            owner_ref={
                "user": {"id": person.id, "displayName": person.name, "email": person.address}
            },
            files=profile.files_per_user,
            max_file=profile.max_file,
            big_files=big_files,
            hostile=True,
            colleagues=[p for p in people[: profile.users] if p.id != person.id][:4],
        )
        rows.extend(drows)
    return rows, wk, drive_key


def _user_data(
    gen: Gen,
    person: Person,
    index: int,
    *,
    mailbox: bool,
    drive: bool,
    purpose: str = "user",
    enabled: bool = True,
) -> dict[str, Any]:
    """The user object's properties (without ``_wk`` and ``_drive``)."""
    first, _, last = person.name.partition(" ")
    rng = gen.rng("user-props", person.id)
    data: dict[str, Any] = {
        "id": person.id,
        "displayName": person.name,
        "givenName": first if purpose == "user" else None,
        "surname": last if purpose == "user" else None,
        "userPrincipalName": person.address,
        "mail": person.address if mailbox else None,
        "jobTitle": rng.choice(
            ["Engineer", "Sales Manager", "Designer", "Accountant", "Support Lead", "Product Owner"]
        )
        if purpose == "user"
        else None,
        "mobilePhone": None,
        "businessPhones": [f"+1 425 555 {1000 + index % 9000:04d}"] if purpose == "user" else [],
        "officeLocation": rng.choice(["18/2111", "Paris", "Tokyo", None])
        if purpose == "user"
        else None,
        "preferredLanguage": rng.choice(["en-US", "de-DE", "fr-FR", "ja-JP"])
        if purpose == "user"
        else None,
        "accountEnabled": enabled,
        "userType": "Member",
        "createdDateTime": gen.ago(rng, 1500, 400),
        "assignedLicenses": [{"disabledPlans": [], "skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df"}]
        if (mailbox or drive) and purpose == "user"
        else [],
        "_mailbox": mailbox,
        "_purpose": purpose,
    }
    return data


__all__ = [
    "LazyPlan",
    "content_spec",
    "generate_tenant",
    "lazy_content",
    "lazy_plan",
    "log_size",
]
