"""Generated SharePoint sites: the root site and team sites, each with a document library
(a drive, also listed among the lists) and a generic list with items."""

from __future__ import annotations

import uuid
from typing import Any

from ..config import ScaleProfile
from ..store import NewItem, Store
from . import names
from .base import Gen
from .drives import generate_drive
from .people import Person


def _site_data(
    gen: Gen,
    host: str,
    label: str,
    name: str,
    path: str,
    *,
    root: bool = False,
    parent: str | None = None,
) -> dict[str, Any]:
    # A subsite (web) shares its site collection's id: "{host},{collection},{web}".
    collection = parent.split(",")[1] if parent else gen.guid("site", label)
    site_id = f"{host},{collection},{gen.guid('web', label)}"
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
    if parent:
        data["_parent_site"] = parent
    if root:
        data["root"] = {}
        data["siteCollection"] = {"hostname": host, "dataLocationCode": "EUR", "root": {}}
    return data


def add_site(
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
    parent: str | None = None,
) -> tuple[str, dict[str, str]]:
    data = _site_data(gen, host, label, name, path, root=root, parent=parent)
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
    # The document library is also a list (template documentLibrary), as SharePoint
    # lists it; its items are the drive's items (services/sites.py).
    stamp = str(data["createdDateTime"])
    library = {
        "id": gen.guid("doclib", label),
        "name": "Shared Documents",
        "displayName": "Documents",
        "description": "",
        "createdDateTime": stamp,
        "lastModifiedDateTime": stamp,
        "webUrl": f"{data['webUrl']}/Shared%20Documents",
        "list": {"contentTypesEnabled": False, "hidden": False, "template": "documentLibrary"},
        "_drive": drive_key,
    }
    rows.append(NewItem("list", site_id, f"{site_id}/lists", site_id, library, name="Documents"))
    if items:
        rows.extend(_list_rows(gen, site_id, data, label, items))
    with store.transaction() as tx:
        tx.insert_many(rows)
    return site_id, folders


def _list_rows(
    gen: Gen, site_id: str, site: dict[str, Any], label: str, items: int
) -> list[NewItem]:
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
    list_url = f"{site['webUrl']}/Lists/{list_name.replace(' ', '')}"
    titles = ["Order", "Task", "Ticket", "Bestellung", "Tâche"]
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
                    "webUrl": f"{list_url}/DispForm.aspx?ID={n}",
                    "contentType": {
                        "id": "0x0100" + uuid.uuid5(uuid.NAMESPACE_OID, list_id).hex[:24].upper(),
                        "name": "Item",
                    },
                    "_fields": {
                        "Title": f"{rng.choice(titles)} {n}",
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


def generate_sites(
    store: Store, gen: Gen, profile: ScaleProfile, host: str, users: list[Person]
) -> str:
    root_id, _ = add_site(
        store, gen, profile, host, "root", "Contoso", "", root=True, files=4, items=3
    )
    for i in range(profile.sites):
        name = names.SITE_NAMES[i % len(names.SITE_NAMES)] + (
            "" if i < len(names.SITE_NAMES) else f" {i}"
        )
        path = "/sites/" + name.replace(" ", "")
        site_id, _ = add_site(
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
        if i == 0:
            # Classic sites keep content in subsites, nested: one, with one of its own.
            archive, _ = add_site(
                store,
                gen,
                profile,
                host,
                "sub0",
                "Archive",
                f"{path}/Archive",
                files=4,
                items=3,
                parent=site_id,
            )
            add_site(
                store,
                gen,
                profile,
                host,
                "sub0-2019",
                "Archive 2019",
                f"{path}/Archive/2019",
                files=4,
                items=2,
                parent=archive,
            )
    return root_id
