"""The tenant's exact contents, counted the way Graph shows them (`GET /_sim/inventory`).

Tests compare a backup against these numbers: per user (mail folders, messages per folder,
attachments by type, contact folders, contacts, calendars, events by type, drive files,
folders, packages, bytes and versions), per site (drive and list contents: `lists`
includes the document libraries, whose items are the drive's items, and `listItems`
counts the items of the other lists) and per team (channels, root messages, messages
inside the 8-month delta window, replies), and per group (teams' groups and security
groups) its direct and transitive members.
Counts exclude deleted items and the hidden folders Graph does not list.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from .httpcore import parse_iso, utc_now
from .services import groupsmodel as gm
from .tenant import Tenant

DRIVE_STATS = ("files", "folders", "packages", "bytes", "olderVersions", "uniquePermissions")


def _drive_stats(t: Tenant, drive_key: str) -> dict[str, int]:
    conn = t.store.conn()
    rows = conn.execute(
        "SELECT json_extract(data,'$.file') IS NOT NULL, json_extract(data,'$.folder') IS NOT NULL,"
        " json_extract(data,'$.package') IS NOT NULL, json_extract(data,'$.root') IS NOT NULL,"
        " COALESCE(json_extract(data,'$.size'),0),"
        " COALESCE(json_array_length(data,'$._versions'),0),"
        " json_extract(data,'$._perms') IS NOT NULL"
        " FROM items WHERE scope=? AND kind='driveItem' AND deleted=0",
        (drive_key,),
    )
    out = dict.fromkeys(DRIVE_STATS, 0)
    for is_file, is_folder, is_package, is_root, size, versions, own_perms in rows:
        # Items (the root aside) with permissions of their own: shared ones.
        out["uniquePermissions"] += int(bool(own_perms) and not is_root)
        if is_file:
            out["files"] += 1
            out["bytes"] += int(size)
            out["olderVersions"] += int(versions)
        elif is_package:
            out["packages"] += 1
        elif is_folder and not is_root:
            out["folders"] += 1
    return out


def inventory(t: Tenant, *, detail: bool = True) -> dict[str, Any]:
    conn = t.store.conn()
    users: dict[str, Any] = {}
    for user in t.store.iter_live(["user"]):
        d = user.data
        entry: dict[str, Any] = {
            "id": user.key,
            "userPrincipalName": d.get("userPrincipalName"),
            "displayName": d.get("displayName"),
            "purpose": d.get("_purpose", "user"),
            "mailbox": bool(d.get("_mailbox")),
            "drive": bool(d.get("_drive")),
            "licensed": user.key not in t.switches.unlicensed,
        }
        if d.get("_mailbox"):
            folders = {
                r[0]: (r[1], bool(r[2]), r[3])
                for r in conn.execute(
                    "SELECT key, json_extract(data,'$.displayName'),"
                    " json_extract(data,'$.isHidden'), json_extract(data,'$._wellKnown')"
                    " FROM items WHERE owner=? AND kind='mailFolder'"
                    " AND deleted=0",
                    (user.key,),
                )
            }
            per_folder = dict(
                conn.execute(
                    "SELECT parent, COUNT(*) FROM items"
                    " WHERE owner=? AND kind='message' AND deleted=0"
                    " GROUP BY parent",
                    (user.key,),
                ).fetchall()
            )
            att: defaultdict[str, int] = defaultdict(int)
            for kind, inline, n in conn.execute(
                "SELECT json_extract(data,'$.\"@odata.type\"'), json_extract(data,'$.isInline'),"
                " COUNT(*)"
                " FROM items WHERE owner=? AND kind='attachment' AND deleted=0 GROUP BY 1, 2",
                (user.key,),
            ):
                if kind == "#microsoft.graph.referenceAttachment":
                    att["referenceAttachments"] += n
                elif inline:
                    att["inlineAttachments"] += n
                else:
                    att["fileAttachments"] += n
            events = dict(
                conn.execute(
                    "SELECT json_extract(data,'$.type'), COUNT(*) FROM items WHERE owner=? AND"
                    " kind='event' AND deleted=0 GROUP BY 1",
                    (user.key,),
                ).fetchall()
            )
            contact_folders = conn.execute(
                "SELECT COUNT(*) FROM items WHERE owner=? AND kind='contactFolder' AND deleted=0"
                " AND json_extract(data,'$._wellKnown') IS NULL",
                (user.key,),
            ).fetchone()[0]
            entry.update(
                {
                    "mailFolders": sum(
                        1
                        for name, hidden, wk in folders.values()
                        if not hidden and wk != "msgfolderroot"
                    ),
                    "messages": sum(per_folder.values()),
                    "fileAttachments": att["fileAttachments"],
                    "inlineAttachments": att["inlineAttachments"],
                    "referenceAttachments": att["referenceAttachments"],
                    "contactFolders": contact_folders,
                    "contacts": t.store.count_owned(user.key, "contact"),
                    "calendars": t.store.count_owned(user.key, "calendar"),
                    "events": events.get("singleInstance", 0) + events.get("seriesMaster", 0),
                    "seriesMasters": events.get("seriesMaster", 0),
                    "exceptions": events.get("exception", 0),
                }
            )
            if detail:
                entry["messagesByFolder"] = {
                    folders[k][0]: n for k, n in per_folder.items() if k in folders
                }
                entry["wellKnownFolders"] = {wk: key for key, (_n, _h, wk) in folders.items() if wk}
        if d.get("_drive"):
            stats = _drive_stats(t, str(d["_drive"]))
            entry.update(
                {
                    "driveId": d["_drive"],
                    **{f"drive{k[0].upper()}{k[1:]}": v for k, v in stats.items()},
                }
            )
        users[str(d.get("userPrincipalName"))] = entry
    sites: dict[str, Any] = {}
    for site in t.store.iter_live(["site"]):
        drives = t.store.by_owner(site.key, ["drive"])
        lists = t.store.children(site.key, ["list"])
        stats = dict.fromkeys(DRIVE_STATS, 0)
        for drive in drives:
            for k, v in _drive_stats(t, drive.key).items():
                stats[k] += v
        sites[site.key] = {
            "name": site.data.get("displayName"),
            "webUrl": site.data.get("webUrl"),
            "parentSite": site.data.get("_parent_site"),
            "drives": len(drives),
            # Graph lists document libraries among the lists; their items are drive items.
            "lists": len(lists),
            "documentLibraries": sum(1 for lst in lists if lst.data.get("_drive")),
            "listItems": sum(t.store.count_children(lst.key, ["listItem"]) for lst in lists),
            **{f"drive{k[0].upper()}{k[1:]}": v for k, v in stats.items()},
        }
    teams: dict[str, Any] = {}
    cutoff = utc_now() - dt.timedelta(days=243)
    for team in t.store.iter_live(["team"]):
        channels = t.store.children(team.key, ["channel"])
        roots = recent = replies = hosted = 0
        for ch in channels:
            for msg in t.store.children(ch.key, ["chatMessage"]):
                roots += 1
                if parse_iso(str(msg.data["createdDateTime"])) >= cutoff:
                    recent += 1
                replies += t.store.count_children(msg.key, ["chatReply"])
                for one in [msg, *t.store.children(msg.key, ["chatReply"])]:
                    if not one.data.get("deletedDateTime"):
                        hosted += len(one.data.get("_hosted") or [])
        teams[team.key] = {
            "displayName": team.data.get("displayName"),
            "siteId": team.data.get("_site"),
            "channels": len(channels),
            "messages": roots,
            "messagesInDeltaWindow": recent,
            "replies": replies,
            "hostedContents": hosted,
        }
    groups: dict[str, Any] = {}
    for group in t.store.iter_live(["team", "group"]):
        direct = [str(m) for m in group.data.get("_members") or []]
        nested = _transitive(t, group.key)
        groups[group.key] = {
            "displayName": group.data.get("displayName"),
            "members": direct,
            "transitiveMembers": sorted(nested),
            "transitiveUsers": sorted(
                str(u.data.get("userPrincipalName"))
                for k in nested
                if (u := t.store.get(k)) is not None and u.kind == "user"
            ),
        }
        if gm.is_unified(group):
            # What a backup of its group mailbox and calendar holds (calendar view of
            # the two years before and after now, Coffer's default window).
            now = utc_now()
            window = (now - dt.timedelta(days=730), now + dt.timedelta(days=730))
            groups[group.key]["mailbox"] = gm.counts(t, group, *window)
    totals: dict[str, int] = defaultdict(int)
    for entry in users.values():
        for k, v in entry.items():
            if isinstance(v, int) and not isinstance(v, bool):
                totals[k] += v
    for entry in sites.values():
        for k, v in entry.items():
            if isinstance(v, int) and not isinstance(v, bool):
                totals[f"site_{k}"] += v
    for entry in teams.values():
        for k, v in entry.items():
            if isinstance(v, int) and not isinstance(v, bool):
                totals[f"team_{k}"] += v
    items = sum(
        n
        for _owner, kind, n in t.store.count_by_owner_kind()
        if kind
        in (
            "message",
            "contact",
            "event",
            "driveItem",
            "listItem",
            "chatMessage",
            "chatReply",
            "attachment",
        )
    )
    totals["items"] = items
    totals["content_bytes"] = (
        totals.get("driveBytes", 0) + totals.get("site_driveBytes", 0) + _attachment_bytes(t)
    )
    return {
        "users": users,
        "sites": sites,
        "teams": teams,
        "groups": groups,
        "totals": dict(totals),
    }


def _transitive(t: Tenant, group_key: str) -> set[str]:
    """Ids of every direct and nested member of a group (nested groups included)."""
    out: set[str] = set()
    todo = [group_key]
    while todo:
        group = t.store.get(todo.pop())
        for ref in (group.data.get("_members") or []) if group is not None else []:
            if str(ref) not in out:
                out.add(str(ref))
                todo.append(str(ref))
    return out


def _attachment_bytes(t: Tenant) -> int:
    row = (
        t.store.conn()
        .execute(
            "SELECT COALESCE(SUM(json_extract(data,'$.size')),0) FROM items"
            " WHERE kind='attachment' AND deleted=0"
        )
        .fetchone()
    )
    return int(row[0] or 0)
