"""Shared helpers of the Microsoft 365 tests: repositories, runs, and counting trees.

Counting is done on the snapshots themselves (what a restore would see), never
on Coffer's own report, and compared with the simulator's inventory.
"""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

from sources.m365 import TenantBackup, TenantSettings, from_table
from sources.m365.graph.client import GraphClient, connect
from store import KdfParams, Repository, latest_per_owner, open_backend

PASSWORD = b"m365 tests"
FAST_KDF = KdfParams(iterations=1, lanes=1, memory_kib=8)


def init_repo(path: Path, cache: Path) -> Repository:
    return Repository.init(open_backend(str(path)), PASSWORD, kdf=FAST_KDF, cache_root=cache)


def open_repo(path: Path, cache: Path) -> Repository:
    return Repository.open(open_backend(str(path)), PASSWORD, cache_root=cache)


def sim_table(state_dir: Path, **overrides: Any) -> dict[str, Any]:
    """The simulator's generated [tenant] table, with ``overrides`` (None removes a key)."""
    table = dict(tomllib.loads((state_dir / "coffer.toml").read_text())["tenant"])
    for key, value in overrides.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


def settings_for(state_dir: Path, **overrides: Any) -> TenantSettings:
    return from_table(sim_table(state_dir, **overrides), state_dir)


# Retries of 5xx answers back off for seconds in production; tests make it brief.
QUICK_RETRIES = {"backoff_base": 0.05, "backoff_cap": 0.3}


def make_client(settings: TenantSettings, **options: Any) -> GraphClient:
    return connect(settings.connection, **options)


def backup(
    repo_path: Path,
    cache: Path,
    state_dir: Path,
    *,
    checkpoint: float = 300.0,
    client_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """One in-process run against the simulator (a fresh Repository object, like a new
    process); returns the run report."""
    repo = open_repo(repo_path, cache)
    settings = settings_for(state_dir, **overrides)
    client = make_client(settings, **(QUICK_RETRIES | (client_options or {})))
    try:
        report = TenantBackup(repo, settings, checkpoint_seconds=checkpoint, client=client).run()
        repo.save_report("backup", report)
        return report
    finally:
        repo.close()


def snapshot_counts(repo_path: Path, cache: Path) -> dict[str, Counter[str]]:
    """Per owner name: the items of each kind in its latest complete snapshot."""
    repo = open_repo(repo_path, cache)
    out: dict[str, Counter[str]] = {}
    try:
        for snap in latest_per_owner(repo.list_snapshots()):
            counts: Counter[str] = Counter()
            for path, entry in repo.reader(snap).walk(""):
                kind = entry.attrs.get("type")
                top = path.split("/", 1)[0]
                if top == "mail" and entry.is_dir and path != "mail":
                    counts["mailFolders"] += 1
                elif top == "mail" and path.endswith(".eml"):
                    counts["messages"] += 1
                elif kind == "contactFolder" and entry.item_id:
                    counts["contactFolders"] += 1
                elif kind == "contact":
                    counts["contacts"] += 1
                elif kind == "calendar":
                    counts["calendars"] += 1
                elif kind == "event":
                    sub = entry.attrs.get("eventType")
                    if sub == "exception":
                        counts["exceptions"] += 1
                    else:
                        counts["events"] += 1
                        counts["seriesMasters"] += sub == "seriesMaster"
                elif kind == "driveItem" and not path.startswith("versions/"):
                    counts["driveFiles"] += 1
                    counts["driveBytes"] += entry.size
                elif kind == "driveFolder":
                    counts["driveFolders"] += 1
                elif kind == "package":
                    counts["drivePackages"] += 1
                elif kind == "drive" or kind == "driveRoot":
                    counts["drives"] += path.count("/") == (1 if top == "libraries" else 0)
                elif kind == "list":
                    counts["lists"] += 1
                elif kind == "listItem":
                    counts["listItems"] += 1
                elif kind == "channel":
                    counts["channels"] += 1
                elif kind == "hostedContent":
                    counts["hostedContents"] += 1
                elif kind == "groupThread":
                    counts["groupThreads"] += 1
                    counts["groupPosts"] += int(entry.attrs.get("posts", "0"))
                elif kind == "postAttachment":
                    counts["postAttachments"] += 1
                elif kind == "chatThread":
                    counts["threads"] += 1
                    counts["replies"] += int(entry.attrs.get("replies", "0"))
            # A team's Microsoft 365 group has the team's name: its own key keeps it apart.
            name = snap.owner.name
            out[f"groups/{name}" if snap.owner.kind == "groups" else name] = counts
    finally:
        repo.close()
    return out


USER_KEYS = (
    "mailFolders",
    "messages",
    "contactFolders",
    "contacts",
    "calendars",
    "events",
    "seriesMasters",
    "exceptions",
)
DRIVE_KEYS = ("driveFiles", "driveFolders", "drivePackages", "driveBytes")


def expected_counts(inventory: dict[str, Any]) -> dict[str, dict[str, int]]:
    """The simulator's inventory in snapshot_counts' terms, per owner name."""
    out: dict[str, dict[str, int]] = {}
    for upn, user in inventory["users"].items():
        want: dict[str, int] = {}
        if user.get("mailbox") and user.get("licensed", True):
            want.update({k: int(user[k]) for k in USER_KEYS})
        if user.get("drive") and user.get("licensed", True):
            want.update({k: int(user[k]) for k in DRIVE_KEYS})
        out[upn] = want
    for site in inventory["sites"].values():
        name = str(site["webUrl"]).split("://", 1)[-1].rstrip("/")
        want = {k: int(site[k]) for k in DRIVE_KEYS}
        # Document libraries are lists too (template documentLibrary); Coffer keeps
        # them as files under libraries/, the other lists under lists/.
        want["lists"] = int(site["lists"]) - int(site["drives"])
        want["listItems"] = int(site["listItems"])
        out[name] = want
    for tid, team in inventory["teams"].items():
        out[f"{team['displayName']} [{tid[:8]}]"] = {
            "channels": int(team["channels"]),
            "threads": int(team["messages"]),
            "replies": int(team["replies"]),
            "hostedContents": int(team["hostedContents"]),
        }
    for gid, group in inventory["groups"].items():
        mailbox = group.get("mailbox")
        if mailbox:  # Microsoft 365 groups (teams' groups too); calendar entries as events
            out[f"groups/{group['displayName']} [{gid[:8]}]"] = {
                "groupThreads": int(mailbox["threads"]),
                "groupPosts": int(mailbox["posts"]),
                "postAttachments": int(mailbox["postAttachments"]),
                "events": int(mailbox["calendarViewItems"]),
            }
    return out


def compare(actual: dict[str, Counter[str]], expected: dict[str, dict[str, int]]) -> list[str]:
    """Differences between snapshot counts and the inventory (empty when equal)."""
    problems: list[str] = []
    for owner, want in sorted(expected.items()):
        have = actual.get(owner, Counter())
        for key, value in sorted(want.items()):
            if have.get(key, 0) != value:
                problems.append(f"{owner}: {key} {have.get(key, 0)} != {value}")
    return problems


def downloads(stats: dict[str, Any]) -> int:
    """Content downloads in simulator stats: MIME, file content and version content."""
    by_endpoint = stats.get("by_endpoint", {})
    return sum(
        n
        for name, n in by_endpoint.items()
        if name.endswith(("/$value", "/content")) or name.startswith("GET /_dl/")
    )


def dump(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=1)[:4000]
