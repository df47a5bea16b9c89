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
from dataclasses import replace
from typing import Any

from ..config import SCALES, ScaleProfile
from ..store import NewItem, Store
from . import names
from .base import Gen, content_spec, log_size
from .drives import generate_drive, personal_web_url
from .mailbox import Person, generate_mailbox, shared_attachments

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
) -> dict[str, Any]:
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
    for index, person in enumerate(regular):
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
    root_site = _sites(store, gen, profile, sharepoint_host, regular)
    _teams(store, gen, profile, sharepoint_host, regular)
    with store.transaction() as tx:
        tx.set_meta("root_site", root_site)
        tx.set_meta("generator", GENERATOR_VERSION)
        tx.set_meta("seed", str(seed))
        tx.set_meta("scale", scale)
        tx.set_meta("users", str(profile.users))
        tx.set_meta("anchor", anchor.isoformat())
    return {"users": profile.users, "scale": scale, "seed": seed}


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
    rows: list[NewItem] = []
    wk: dict[str, str] = {}
    first, _, last = person.name.partition(" ")
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
        )
        rows.extend(drows)
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
        "_wk": wk,
        "_drive": drive_key,
    }
    rows.insert(0, NewItem("user", person.id, "users", "tenant", data, name=person.address))
    with store.transaction() as tx:
        tx.insert_many(rows)


def _site_data(
    gen: Gen, host: str, label: str, name: str, path: str, *, root: bool = False
) -> dict[str, Any]:
    site_id = f"{host},{gen.guid('site', label)},{gen.guid('web', label)}"
    stamp = gen.ago(gen.rng("site", label), 1200, 300)
    data: dict[str, Any] = {
        "id": site_id,
        "name": name if not root else "Root Site",
        "displayName": name,
        "description": f"{name} site",
        "createdDateTime": stamp,
        "lastModifiedDateTime": stamp,
        "webUrl": f"https://{host}{path}",
        "siteCollection": {"hostname": host},
        "_path": path,
    }
    if root:
        data["root"] = {}
        data["siteCollection"] = {"hostname": host, "dataLocationCode": "EUR", "root": {}}
    return data


def _add_site(
    store: Store,
    gen: Gen,
    profile: ScaleProfile,
    host: str,
    label: str,
    name: str,
    path: str,
    *,
    root: bool = False,
    files: int = 0,
    items: int = 0,
    channels: list[str] | None = None,
) -> tuple[str, dict[str, str]]:
    data = _site_data(gen, host, label, name, path, root=root)
    site_id = str(data["id"])
    drows, drive_key, folders = generate_drive(
        gen,
        drive_label=f"site-{label}",
        owner=site_id,
        drive_type="documentLibrary",
        display_name="Documents",
        web_url=f"{data['webUrl']}/Shared%20Documents",
        owner_ref={"group": {"id": gen.guid("owner-group", label), "displayName": name}},
        files=max(4, files),
        max_file=profile.max_file,
        big_files=[],
        hostile=False,
        site_id=site_id,
        extra_folders=channels,
    )
    data["_drive"] = drive_key
    rows = [NewItem("site", site_id, "sites", "tenant", data, name=name), *drows]
    if items:
        rows.extend(_list_rows(gen, site_id, data, label, items))
    with store.transaction() as tx:
        tx.insert_many(rows)
    return site_id, folders


def _list_rows(
    gen: Gen, site_id: str, site: dict[str, Any], label: str, items: int
) -> list[NewItem]:
    import uuid

    list_name = names.LIST_NAMES[gen.number("listname", label) % len(names.LIST_NAMES)]
    list_id = gen.guid("list", label)
    stamp = gen.ago(gen.rng("list", label), 700, 100)
    rows = [
        NewItem(
            "list",
            site_id,
            f"{site_id}/lists",
            site_id,
            {
                "id": list_id,
                "name": list_name.replace(" ", ""),
                "displayName": list_name,
                "description": f"{list_name} for {site['displayName']}",
                "createdDateTime": stamp,
                "lastModifiedDateTime": stamp,
                "webUrl": f"{site['webUrl']}/Lists/{list_name.replace(' ', '')}",
                "list": {"contentTypesEnabled": False, "hidden": False, "template": "genericList"},
                "_next": items + 1,
            },
            name=list_name,
        )
    ]
    for n in range(1, items + 1):
        rng = gen.rng("listitem", label, n)
        istamp = gen.ago(rng, 300, 1)
        rows.append(
            NewItem(
                "listItem",
                site_id,
                list_id,
                list_id,
                {
                    "id": str(n),
                    "createdDateTime": istamp,
                    "lastModifiedDateTime": istamp,
                    "createdBy": {"user": {"displayName": "Adele Vance"}},
                    "lastModifiedBy": {"user": {"displayName": "Adele Vance"}},
                    "webUrl": f"{site['webUrl']}/Lists/{list_name.replace(' ', '')}/DispForm.aspx?ID={n}",
                    "contentType": {
                        "id": "0x0100" + uuid.uuid5(uuid.NAMESPACE_OID, list_id).hex[:24].upper(),
                        "name": "Item",
                    },
                    "_fields": {
                        "Title": f"{rng.choice(['Order', 'Task', 'Ticket', 'Bestellung', 'Tâche'])} {n}",
                        "Status": rng.choice(["Not started", "In progress", "Completed"]),
                        "DueDate": gen.ago(rng, 30, -30),
                        "Amount": round(rng.uniform(1, 5000), 2),
                        "Owner": rng.choice(names.FIRST),
                    },
                    "_guid": "{" + gen.guid("listitem-guid", label, n).upper() + "}",
                    "_ver": 1,
                },
                key=f"{list_id}/{n}",
            )
        )
    return rows


def _sites(store: Store, gen: Gen, profile: ScaleProfile, host: str, users: list[Person]) -> str:
    root_id, _ = _add_site(
        store, gen, profile, host, "root", "Contoso", "", root=True, files=4, items=3
    )
    for i in range(profile.sites):
        name = names.SITE_NAMES[i % len(names.SITE_NAMES)] + (
            "" if i < len(names.SITE_NAMES) else f" {i}"
        )
        path = "/sites/" + name.replace(" ", "")
        _add_site(
            store,
            gen,
            profile,
            host,
            f"site{i}",
            name,
            path,
            files=profile.files_per_site,
            items=profile.list_items_per_site,
        )
    return root_id


def _teams(store: Store, gen: Gen, profile: ScaleProfile, host: str, users: list[Person]) -> None:
    for i in range(profile.teams):
        name = names.TEAM_NAMES[i % len(names.TEAM_NAMES)] + (
            "" if i < len(names.TEAM_NAMES) else f" {i}"
        )
        team_id = gen.guid("team", i)
        channel_names = names.CHANNEL_NAMES[: profile.channels_per_team]
        site_path = "/sites/" + "".join(c for c in name if c.isalnum())
        site_id, folders = _add_site(
            store,
            gen,
            profile,
            host,
            f"team{i}",
            name,
            site_path,
            files=profile.files_per_site // 2,
            channels=channel_names,
        )
        stamp = gen.ago(gen.rng("team", i), 800, 400)
        nick = "".join(c for c in name if c.isalnum()).lower()
        rows = [
            NewItem(
                "team",
                team_id,
                "teams",
                "tenant",
                {
                    "id": team_id,
                    "displayName": name,
                    "description": f"Team for {name}",
                    "createdDateTime": stamp,
                    "visibility": "private",
                    "isArchived": False,
                    "webUrl": f"https://teams.microsoft.com/l/team/19%3a{team_id.replace('-', '')}%40thread.tacv2/conversations?groupId={team_id}",
                    "_site": site_id,
                    "_mail": f"{nick}@{host.split('.')[0]}.onmicrosoft.com",
                    "_mailNickname": nick,
                },
                name=name,
            )
        ]
        for c, cname in enumerate(channel_names):
            ch_id = f"19:{gen.guid('channel', i, c).replace('-', '')}@thread.tacv2"
            rows.append(
                NewItem(
                    "channel",
                    team_id,
                    f"{team_id}/channels",
                    team_id,
                    {
                        "id": ch_id,
                        "createdDateTime": stamp,
                        "displayName": cname,
                        "description": f"{cname} channel",
                        "email": "",
                        "membershipType": "standard",
                        "webUrl": f"https://teams.microsoft.com/l/channel/{ch_id}/{cname}?groupId={team_id}",
                        "_folder": folders.get(cname),
                    },
                    name=cname,
                )
            )
            rows.extend(
                _channel_messages(gen, team_id, ch_id, i, c, profile.posts_per_channel, users)
            )
        with store.transaction() as tx:
            tx.insert_many(rows)


def _channel_messages(
    gen: Gen, team_id: str, ch_id: str, i: int, c: int, posts: int, users: list[Person]
) -> list[NewItem]:
    rows: list[NewItem] = []
    base = gen.anchor
    for p in range(posts):
        rng = gen.rng("post", i, c, p)
        # Most posts are recent; every fourth is older than eight months (outside delta).
        days = rng.uniform(300, 600) if p % 4 == 3 else rng.uniform(0.5, 200)
        created = base - dt.timedelta(days=days, seconds=p)
        msg_id = str(int(created.timestamp() * 1000))
        author = users[rng.randrange(len(users))] if users else Person("", "Someone", "")
        deleted = p == 2 and posts > 3
        rows.append(
            _chat(
                gen,
                "chatMessage",
                team_id,
                ch_id,
                msg_id,
                None,
                created,
                author,
                rng,
                deleted=deleted,
            )
        )
        for r in range(rng.randint(0, 3)):
            rcreated = created + dt.timedelta(minutes=5 * (r + 1), seconds=r)
            reply_id = str(int(rcreated.timestamp() * 1000) + 1 + r)
            rauthor = users[rng.randrange(len(users))] if users else author
            rows.append(
                _chat(gen, "chatReply", team_id, ch_id, reply_id, msg_id, rcreated, rauthor, rng)
            )
    return rows


def _chat(
    gen: Gen,
    kind: str,
    team_id: str,
    ch_id: str,
    msg_id: str,
    reply_to: str | None,
    created: dt.datetime,
    author: Person,
    rng: Any,
    *,
    deleted: bool = False,
) -> NewItem:
    from ..httpcore import iso

    stamp = iso(created)
    text = rng.choice(
        [
            "Hello team!",
            "Can someone review the PR?",
            "Réunion à 15h 👍",
            "The build is green again.",
            "見積書を送りました。",
            "Who has the slides?",
        ]
    )
    data = {
        "id": msg_id,
        "replyToId": reply_to,
        "etag": msg_id,
        "messageType": "message",
        "createdDateTime": stamp,
        "lastModifiedDateTime": stamp,
        "lastEditedDateTime": None,
        "deletedDateTime": stamp if deleted else None,
        "subject": None if reply_to else rng.choice([None, "Weekly update", "Question"]),
        "summary": None,
        "chatId": None,
        "importance": "normal",
        "locale": "en-us",
        "webUrl": f"https://teams.microsoft.com/l/message/{ch_id}/{msg_id}?groupId={team_id}",
        "policyViolation": None,
        "eventDetail": None,
        "from": {
            "application": None,
            "device": None,
            "user": {
                "@odata.type": "#microsoft.graph.teamworkUserIdentity",
                "id": author.id,
                "displayName": author.name,
                "userIdentityType": "aadUser",
            },
        },
        "body": {"contentType": "html", "content": f"<p>{text}</p>"},
        "channelIdentity": {"teamId": team_id, "channelId": ch_id},
        "attachments": [],
        "mentions": [],
        "reactions": [],
        "messageHistory": [],
    }
    parent = f"{ch_id}/{reply_to}" if reply_to else ch_id
    scope = parent if reply_to else ch_id
    return NewItem(kind, team_id, scope, parent, data, key=f"{ch_id}/{msg_id}")


__all__ = ["generate_tenant", "content_spec", "log_size"]
