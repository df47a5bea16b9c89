"""The Microsoft 365 mount part of the demo: browse a mailbox and a OneDrive as files.

After the backups, ``coffer mount`` shows the latest run read-only; the demo
lists a user's Inbox, copies one ``.eml`` and one OneDrive file out with
``cp -a``, and compares each, byte for byte, with what Microsoft Graph serves
for the same item (found by the Graph ID the mount exposes as the extended
attribute ``user.coffer.item_id``): the message's ``$value`` and the file's
content. Then it unmounts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tools.demo.m365restore import Tenant
from tools.demo.mount import unmount
from tools.demo.steps import COFFER, run, say


def _item_id(path: Path) -> str:
    return os.getxattr(path, "user.coffer.item_id").decode()


def _first_file(root: Path, suffix: str = "", smallest: int = 1) -> Path:
    """The first regular file under ``root`` (sorted walk) of a telling but modest size."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if name.endswith(suffix) and smallest <= path.stat().st_size <= 20_000_000:
                return path
    raise SystemExit(f"demo: no file{' ' + suffix if suffix else ''} under {root}")


def _graph_bytes(tenant: Tenant, path: str) -> bytes:
    resp = tenant.session.get(f"{tenant.graph_url}{path}", timeout=120)
    resp.raise_for_status()
    return resp.content


def _same(copy: Path, live: bytes, what: str) -> None:
    if copy.read_bytes() != live:
        raise SystemExit(f"demo: the copied {what} differs from what Microsoft Graph serves")
    print(f"  {copy.name}: {len(live):,} bytes, identical to Graph's copy")


def demo_m365_mount(
    workdir: Path, state: Path, env: dict[str, str], users: list[dict[str, Any]]
) -> None:
    tenant = Tenant(state)
    mountpoint = workdir / "mnt-m365"
    mountpoint.mkdir(exist_ok=True)
    say(f"Mount the backups read-only at {mountpoint}")
    run([COFFER, "mount", "--background", str(mountpoint)], env)
    try:
        latest = mountpoint / "snapshots" / "latest"
        run(["ls", str(latest), str(latest / "users")], env)
        user = next(
            u
            for u in users
            if (latest / "users" / u["userPrincipalName"] / "mail" / "Inbox").is_dir()
            and (latest / "users" / u["userPrincipalName"] / "onedrive").is_dir()
        )
        home = latest / "users" / user["userPrincipalName"]
        inbox = home / "mail" / "Inbox"
        say(f"Browse {user['userPrincipalName']}'s Inbox with ordinary tools")
        listing = run(["ls", "-l", str(inbox)], env, show=False).splitlines()
        for line in listing[:8]:
            print(f"  {line}")
        if len(listing) > 8:
            print(f"  ... {len(listing) - 8} more")
        out = workdir / "copied-out"
        out.mkdir(exist_ok=True)
        say("Copy one mail and one OneDrive file out, and compare them with Microsoft 365")
        eml = _first_file(inbox, ".eml")
        run(["cp", "-a", str(eml), str(out)], env)
        wanted = "user.coffer.(item_id|internetMessageId|subject|receivedDateTime|isRead)"
        run(["getfattr", "--absolute-names", "-d", "-e", "text", "-m", wanted, str(eml)], env)
        live_mime = _graph_bytes(tenant, f"/users/{user['id']}/messages/{_item_id(eml)}/$value")
        _same(out / eml.name, live_mime, "message")
        document = _first_file(home / "onedrive", smallest=10_000)
        run(["cp", "-a", str(document), str(out)], env)
        drive = tenant.get(f"/users/{user['id']}/drive")["id"]
        live_file = _graph_bytes(tenant, f"/drives/{drive}/items/{_item_id(document)}/content")
        _same(out / document.name, live_file, "file")
    finally:
        unmount(mountpoint, env)
