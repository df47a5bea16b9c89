"""Generated drives: a OneDrive per licensed user and a document library per site.

Every drive holds files (invariant), in nested folders, with sizes from 0 bytes to the
scale's ceiling (spread on a log scale, plus the exact edge sizes 1 byte, 320 KiB and
4 MiB + 1), a few very large files (the scale's `big_files`, streamed, never stored), a
OneNote notebook (`package` facet, no content stream), older versions on some files,
and a folder of hostile names. Some files are byte-identical across drives. Some folders
and files are shared (sharing.py): they carry permissions of their own (`_perms`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from ..store import NewItem
from . import names
from .base import Gen, content_spec, log_size
from .people import Person
from .sharing import maybe_share, root_permissions

EDGE_SIZES = (1, 327_680, 4 * 1024 * 1024 + 1)


def generate_drive(
    gen: Gen,
    *,
    drive_label: str,
    owner: str,
    drive_type: str,
    display_name: str,
    web_url: str,
    owner_ref: dict[str, Any],
    files: int,
    max_file: int,
    big_files: list[int],
    hostile: bool,
    site_id: str | None = None,
    extra_folders: list[str] | None = None,
    colleagues: Sequence[Person] = (),
) -> tuple[list[NewItem], str, dict[str, str]]:
    """Rows of one drive; returns (rows, drive id, {extra folder name: item id}).

    `colleagues` are the people sharing links and grants name (none: links only)."""
    drive_id = gen.drive_id("drive", drive_label)
    root_id = gen.drive_item_id("root", drive_label)
    anchor_stamp = gen.ago(gen.rng("drive-created", drive_label), 900, 400)
    drive_data: dict[str, Any] = {
        "id": drive_id,
        "name": display_name,
        "description": "",
        "driveType": drive_type,
        "createdDateTime": anchor_stamp,
        "lastModifiedDateTime": anchor_stamp,
        "webUrl": web_url,
        "owner": owner_ref,
        "_root": root_id,
    }
    if site_id:
        drive_data["_siteId"] = site_id
    rows = [NewItem("drive", owner, "drives", owner, drive_data, name=display_name)]
    owner_user = owner_ref.get("user")
    owner_person = (
        Person(str(owner_user["id"]), str(owner_user["displayName"]), str(owner_user["email"]))
        if owner_user
        else None
    )
    root_perms = root_permissions(owner_person, owner_ref.get("group", {}).get("displayName"))
    # Every drive shows a shared folder (whose subfolders inherit) and a shared file.
    force_share: dict[str, object] = {"folder": ("top", names.DRIVE_FOLDERS[2]), "file": "handbook"}
    who = {
        "user": {
            "displayName": owner_ref.get("user", owner_ref.get("group", {})).get(
                "displayName", "System"
            )
        }
    }
    rows.append(
        NewItem(
            "driveItem",
            owner,
            drive_id,
            "",
            {
                "id": root_id,
                "name": "root",
                "root": {},
                "folder": {},
                "createdDateTime": anchor_stamp,
                "lastModifiedDateTime": anchor_stamp,
                "createdBy": who,
                "lastModifiedBy": who,
                "fileSystemInfo": {
                    "createdDateTime": anchor_stamp,
                    "lastModifiedDateTime": anchor_stamp,
                },
                "_ver": 1,
                "_cver": 1,
                "_perms": root_perms,
            },
            name="root",
        )
    )
    rng = gen.rng("drive", drive_label)
    # Effective permissions of each generated folder (what its children inherit).
    effective: dict[str, list[dict[str, Any]]] = {root_id: root_perms}
    shared_kinds: set[str] = set()

    def share(data: dict[str, Any], parent: str, label: object, *, is_folder: bool) -> None:
        kind = "folder" if is_folder else "file"
        own = maybe_share(
            gen,
            drive_label,
            label,
            web_url=web_url,
            folder=is_folder,
            inherited=effective[parent],
            colleagues=colleagues,
            force=force_share.get(kind) == label,
        )
        if own is not None:
            data["_perms"] = own
            shared_kinds.add(kind)
        if is_folder:
            effective[str(data["id"])] = own if own is not None else effective[parent]

    def folder(parent: str, name: str, label: object) -> str:
        fid = gen.drive_item_id("folder", drive_label, label)
        stamp = gen.ago(rng, 400, 30)
        data: dict[str, Any] = {
            "id": fid,
            "name": name,
            "folder": {},
            "createdDateTime": stamp,
            "lastModifiedDateTime": stamp,
            "createdBy": who,
            "lastModifiedBy": who,
            "fileSystemInfo": {"createdDateTime": stamp, "lastModifiedDateTime": stamp},
            "_ver": 1,
            "_cver": 1,
        }
        share(data, parent, label, is_folder=True)
        rows.append(NewItem("driveItem", owner, drive_id, parent, data, name=name))
        return fid

    def file(parent: str, name: str, size: int, label: object, *, shared: bool = False) -> None:
        ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        info = next(
            (e for e in names.EXTENSIONS if e[0] == ext),
            (ext, "application/octet-stream", "", False),
        )
        frng = gen.rng("file", drive_label, label)
        parts: tuple[object, ...] = (
            ("shared-file", name, size) if shared else ("file", drive_label, label)
        )
        spec = content_spec(gen, frng, size, info[3] and size <= 8 * 1024 * 1024, info[2], *parts)
        stamp = gen.ago(frng, 365, 0.5)
        data: dict[str, Any] = {
            "id": gen.drive_item_id("file", drive_label, label),
            "name": name,
            "file": {"mimeType": info[1]},
            "size": size,
            "createdDateTime": stamp,
            "lastModifiedDateTime": stamp,
            "createdBy": who,
            "lastModifiedBy": who,
            "fileSystemInfo": {"createdDateTime": stamp, "lastModifiedDateTime": stamp},
            "_ver": 1,
            "_cver": 1,
        }
        if size and frng.random() < 0.2:
            versions = []
            for v in range(frng.randint(1, 3)):
                vsize = max(1, int(size * frng.uniform(0.5, 1.2)))
                versions.append(
                    {
                        "id": f"{v + 1}.0",
                        "lastModifiedDateTime": gen.ago(frng, 500, 366),
                        "lastModifiedBy": who,
                        "content": content_spec(
                            gen, frng, vsize, info[3], info[2], "version", drive_label, label, v
                        ),
                    }
                )
            data["_versions"] = versions
            data["_ver"] = data["_cver"] = len(versions) + 1
        share(data, parent, label, is_folder=False)
        rows.append(NewItem("driveItem", owner, drive_id, parent, data, name=name, content=spec))

    top = [folder(root_id, n, ("top", n)) for n in names.DRIVE_FOLDERS[:4]]
    nested = folder(top[2], "Apollo", "apollo")
    deep = folder(nested, "Specs", "specs")
    deeper = folder(deep, "Drafts 2024", "drafts")
    targets = [root_id, *top, nested, deep, deeper]
    extra_ids: dict[str, str] = {}
    for name in extra_folders or []:
        extra_ids[name] = folder(root_id, name, ("extra", name))
        targets.append(extra_ids[name])
    # Exact edge sizes first, so every drive exercises them.
    count = 0
    for i, size in enumerate(EDGE_SIZES):
        if count >= files:
            break
        file(targets[i % len(targets)], f"edge-{size}.bin", size, ("edge", i))
        count += 1
    file(top[0], "empty.txt", 0, "empty")
    count += 1
    # A file every drive shares byte-for-byte.
    file(top[0], "Company handbook.pdf", 180_000, "handbook", shared=True)
    count += 1
    while count < files:
        ext, _ctype, _head, _text = rng.choice(names.EXTENSIONS)
        size = log_size(rng, 10, max_file)
        stem = rng.choice(
            [
                "report",
                "notes",
                "budget",
                "photo",
                "scan",
                "minutes",
                "plan",
                "Übersicht",
                "presupuesto",
                "資料",
            ]
        )
        name = f"{stem} {count}{ext}"
        file(targets[rng.randrange(len(targets))], name, size, count)
        count += 1
    for i, size in enumerate(big_files):
        file(top[1 % len(top)], f"large-video-{i}.mp4", size, ("big", i))
    # OneNote notebook: a package with no content stream (resources/package.md).
    stamp = gen.ago(rng, 300, 10)
    rows.append(
        NewItem(
            "driveItem",
            owner,
            drive_id,
            top[0],
            {
                "id": gen.drive_item_id("notebook", drive_label),
                "name": "Notebook",
                "package": {"type": "oneNote"},
                "size": 0,
                "createdDateTime": stamp,
                "lastModifiedDateTime": stamp,
                "createdBy": who,
                "lastModifiedBy": who,
                "fileSystemInfo": {"createdDateTime": stamp, "lastModifiedDateTime": stamp},
                "_ver": 1,
                "_cver": 1,
            },
            name="Notebook",
        )
    )
    if hostile:
        hf = folder(root_id, "Hostile names ✓", "hostile")
        for i, name in enumerate(names.HOSTILE_NAMES):
            file(hf, name, 100 + i * 37, ("hostile", i))
    return rows, drive_id, extra_ids


def personal_web_url(upn: str, tenant_host: str) -> str:
    local = upn.replace("@", "_").replace(".", "_")
    host = tenant_host.replace(".sharepoint.com", "-my.sharepoint.com")
    return f"https://{host}/personal/{quote(local)}/Documents"
