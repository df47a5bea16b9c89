"""The Microsoft 365 restore part of the demo: lose a mail folder and a file, get them back.

With the simulator still running after the backups, a user "loses" a mail
folder (with its subfolders) and a OneDrive file: both are deleted through
Graph with the tenant's own app credentials, as a careless user's client
would. ``coffer restore latest --to original``, filtered to exactly those two,
puts them back; Graph then shows the messages in the folder again and the
file with its size and original last-modified time, and the restore's
report is shown as the repository stores it.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from tools.demo.steps import COFFER, run, say


class Tenant:
    """Graph as the tenant's app sees it (client credentials, the simulator's CA)."""

    def __init__(self, state: Path) -> None:
        info = json.loads((state / "connection.json").read_text())
        self.graph_url = str(info["graph_url"])
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(state / info["ca_file"])
        resp = self.session.post(
            f"{info['authority']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
                "scope": "https://graph.microsoft.com/.default",
            },
            timeout=60,
        )
        resp.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def get(self, path: str, **params: str) -> dict[str, Any]:
        resp = self.session.get(f"{self.graph_url}{path}", params=params or None, timeout=60)
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def all(self, path: str, **params: str) -> list[dict[str, Any]]:
        data = self.get(path, **params)
        out: list[dict[str, Any]] = list(data.get("value", []))
        while data.get("@odata.nextLink"):
            resp = self.session.get(str(data["@odata.nextLink"]), timeout=60)
            resp.raise_for_status()
            data = resp.json()
            out.extend(data.get("value", []))
        return out

    def delete(self, path: str) -> None:
        self.session.delete(f"{self.graph_url}{path}", timeout=60).raise_for_status()

    def messages_under(self, uid: str, folder: str) -> int:
        """Messages in a mail folder and all its subfolders."""
        count = int(self.get(f"/users/{uid}/mailFolders/{folder}")["totalItemCount"])
        for child in self.all(f"/users/{uid}/mailFolders/{folder}/childFolders"):
            count += self.messages_under(uid, str(child["id"]))
        return count


def _pick(tenant: Tenant, users: list[dict[str, Any]]) -> tuple[dict[str, Any], Any, Any]:
    """A user with a custom mail folder holding mail, and a modest file in a folder."""
    for user in users:
        if user["purpose"] != "user" or not user["mailbox"] or not user.get("drive"):
            continue
        uid = user["id"]
        well_known = set(user.get("wellKnownFolders", {}).values())
        folders = [
            f
            for f in tenant.all(f"/users/{uid}/mailFolders")
            if f["id"] not in well_known and f["displayName"] not in ("Deleted Items", "Archive")
        ]
        folder = next((f for f in folders if tenant.messages_under(uid, f["id"]) > 0), None)
        top = tenant.all(f"/drives/{user['drive']}/root/children")
        file = None
        for parent in (t for t in top if "folder" in t):
            file = next(
                (
                    c
                    for c in tenant.all(f"/drives/{user['drive']}/items/{parent['id']}/children")
                    if "file" in c and 0 < c["size"] < 20_000_000
                ),
                None,
            )
            if file is not None:
                file["parentName"] = parent["name"]
                break
        if folder is not None and file is not None:
            return user, folder, file
    raise SystemExit("demo: no user with a custom mail folder and a OneDrive file")


def demo_m365_restore(state: Path, env: dict[str, str], users: list[dict[str, Any]]) -> None:
    tenant = Tenant(state)
    user, folder, file = _pick(tenant, users)
    uid, upn, drive = user["id"], user["userPrincipalName"], user["drive"]
    count = tenant.messages_under(uid, folder["id"])
    path = f"{file['parentName']}/{file['name']}"
    stamp = file["fileSystemInfo"]["lastModifiedDateTime"]
    say(f"{upn} loses the mail folder {folder['displayName']!r} and the file {path!r}")
    print(f"  the folder holds {count} messages (with its subfolders)")
    print(f"  the file is {file['size']:,} bytes, last modified {stamp}")
    tenant.delete(f"/users/{uid}/mailFolders/{folder['id']}")
    tenant.delete(f"/drives/{drive}/items/{file['id']}")
    print("  both deleted through Microsoft Graph")

    say("Put exactly those back where they were, from the latest snapshot")
    # Paths in a snapshot are the names as Microsoft 365 gave them; globs are escaped.
    run(
        [
            COFFER,
            "restore",
            "latest",
            "--to",
            "original",
            "--owner",
            upn,
            "--include",
            f"mail/{glob.escape(folder['displayName'])}",
            "--include",
            f"onedrive/{glob.escape(path)}",
        ],
        env,
    )

    say("They are back (read through Microsoft Graph)")
    again = next(
        f
        for f in tenant.all(f"/users/{uid}/mailFolders")
        if f["displayName"] == folder["displayName"]
    )
    print(f"  {folder['displayName']!r}: {tenant.messages_under(uid, again['id'])} messages")
    back = tenant.get(f"/drives/{drive}/root:/{quote(path)}")
    print(
        f"  {path!r}: {back['size']:,} bytes, last modified "
        f"{back['fileSystemInfo']['lastModifiedDateTime']}"
    )
    say("The restore's report, as the repository keeps it")
    listing = json.loads(run([COFFER, "report", "--kind", "restore", "--json"], env, show=False))
    report = json.loads(run([COFFER, "report", listing[-1]["key"], "--json"], env, show=False))
    print(f"  {listing[-1]['key']}")
    for line in str(report["report"]["summary"]).splitlines():
        print(f"  {line}")
