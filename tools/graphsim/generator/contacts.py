"""Generated contacts: the default Contacts folder, a subfolder or two, and people with
non-ASCII names, companies, phones, addresses and birthdays."""

from __future__ import annotations

from typing import Any

from ..config import ScaleProfile
from ..store import NewItem
from . import names
from .base import Gen
from .people import Person


def generate_contacts(
    gen: Gen, owner: Person, scale: ScaleProfile, others: list[Person]
) -> list[NewItem]:
    uid = owner.id
    scope = f"{uid}/contactFolders"
    root = gen.outlook_id("AAMkACF", uid, "contacts")
    rows = [
        NewItem(
            "contactFolder",
            uid,
            scope,
            uid,
            {
                "id": root,
                "displayName": "Contacts",
                "parentFolderId": None,
                "_wellKnown": "contacts",
            },
            name="Contacts",
        )
    ]
    folders = [root]
    for i, name in enumerate(
        ["Suppliers", "Family & Friends"][: 1 + scale.contacts_per_user // 40]
    ):
        fid = gen.outlook_id("AAMkACF", uid, "cf", i)
        rows.append(
            NewItem(
                "contactFolder",
                uid,
                scope,
                root,
                {"id": fid, "displayName": name, "parentFolderId": root},
                name=name,
            )
        )
        folders.append(fid)
    for n in range(scale.contacts_per_user):
        rng = gen.rng("contact", uid, n)
        if n < len(others) and rng.random() < 0.5:
            first, _, last = others[n].name.partition(" ")
        else:
            first, last = rng.choice(names.FIRST), rng.choice(names.LAST)
        folder = folders[0] if n % 4 else folders[n % len(folders)]
        stamp = gen.ago(rng, 700, 1)
        local = names.ascii_local(first, last)
        data: dict[str, Any] = {
            "id": gen.outlook_id("AAMkAC", uid, n),
            "createdDateTime": stamp,
            "lastModifiedDateTime": stamp,
            "changeKey": gen.change_key("contact", uid, n),
            "categories": [],
            "parentFolderId": folder,
            "birthday": f"19{rng.randint(50, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            "T11:59:00Z"
            if rng.random() < 0.3
            else None,
            "fileAs": f"{last}, {first}",
            "displayName": f"{first} {last}",
            "givenName": first,
            "surname": last,
            "jobTitle": rng.choice(
                ["Manager", "Engineer", "Designer", "Accountant", "Directrice", None]
            ),
            "companyName": rng.choice(names.COMPANIES),
            "department": rng.choice(["Sales", "R&D", "Finance", None]),
            "businessPhones": [f"+1 425 555 {rng.randint(1000, 9999)}"],
            "homePhones": [],
            "mobilePhone": f"+44 7700 {rng.randint(100000, 999999)}"
            if rng.random() < 0.6
            else None,
            "emailAddresses": [
                {
                    "name": f"{first} {last}",
                    "address": f"{local}@{rng.choice(names.EXTERNAL_DOMAINS)}",
                }
            ],
            "imAddresses": [],
            "children": [],
            "homeAddress": {},
            "businessAddress": {
                "street": f"{rng.randint(1, 300)} Main St",
                "city": rng.choice(["Redmond", "München", "Lyon", "大阪"]),
                "countryOrRegion": "",
                "postalCode": f"{rng.randint(10000, 99999)}",
            },
            "otherAddress": {},
            "personalNotes": "Met at the conference." if rng.random() < 0.2 else "",
        }
        rows.append(NewItem("contact", uid, folder, folder, data))
    return rows
