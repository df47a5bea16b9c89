"""Changes made "by users" through the admin API: churn and single mutations.

`churn(t, percent, seed)` changes about `percent`% of the tenant's items (messages,
contacts, events, drive files, list items, channel messages, custom mail folders and drive
folders) the way people do: create, edit, rename, move, delete. It returns the exact list
of changes, so a test knows what the next delta round must report. `mutate(t, op)`
applies one change (to simulate a user's mistake before a restore). Neither counts in
the stats nor records invitations: they are not requests from the app. Both are
deterministic for a given seed and tenant state.
"""

from __future__ import annotations

import math
import random
from typing import Any

from .httpcore import GraphError, iso, utc_now
from .services import calmodel as cm
from .services import drivemodel as dm
from .services import groupsmodel as gm
from .services import mailmodel as mm
from .services import permissions as sharing
from .services.contacts import new_contact_data
from .store import Item, NewItem, Transaction
from .tenant import Tenant

CHURN_KINDS = (
    "message",
    "contact",
    "event",
    "driveItem",
    "listItem",
    "chatMessage",
    "mailFolder",
    "driveFolder",
)


def _change(op: str, item: Item, **extra: Any) -> dict[str, Any]:
    return {
        "op": op,
        "kind": item.kind,
        "owner": item.owner,
        "scope": item.scope,
        "id": item.gid,
        "key": item.key,
        **extra,
    }


def churn(
    t: Tenant, percent: float, seed: int = 0, kinds: list[str] | None = None
) -> list[dict[str, Any]]:
    """Apply user-like changes to about `percent`% of the items; returns the changes."""
    chosen = set(kinds or CHURN_KINDS)
    unknown = chosen - set(CHURN_KINDS)
    if unknown:
        raise ValueError(f"unknown kinds {sorted(unknown)}; expected some of {CHURN_KINDS}")
    store_kinds = {"driveItem" if k == "driveFolder" else k for k in chosen}
    candidates: list[Item] = []
    for item in t.store.iter_live(sorted(store_kinds)):
        if item.kind == "event" and item.data.get("type") not in ("singleInstance",):
            continue
        if item.kind == "driveItem":
            is_folder = "folder" in item.data and "root" not in item.data
            if not (
                ("file" in item.data and "driveItem" in chosen)
                or (is_folder and "driveFolder" in chosen)
            ):
                continue
        if item.kind == "mailFolder" and item.data.get("_wellKnown"):
            continue
        if item.kind == "chatMessage" and item.data.get("deletedDateTime"):
            continue
        candidates.append(item)
    if not candidates:
        return []
    rng = random.Random(seed)
    count = max(1, math.ceil(len(candidates) * percent / 100.0))
    picked = rng.sample(candidates, min(count, len(candidates)))
    changes: list[dict[str, Any]] = []
    with t.store.transaction() as tx:
        for item in picked:
            fresh = t.store.get(item.key)
            if fresh is None:
                continue
            # A change Graph would refuse (a name clash, say) is undone and skipped, so the
            # list returned is exactly what happened.
            try:
                with tx.savepoint():
                    changes.extend(_churn_one(t, tx, fresh, rng))
            except GraphError:
                continue
    return changes


def _churn_folder(
    t: Tenant, tx: Transaction, item: Item, rng: random.Random
) -> list[dict[str, Any]]:
    """Rename, move (mail folders), add a subfolder to, or delete a custom mail folder or a
    drive folder."""
    roll = rng.random()
    tag = rng.randint(1, 10**6)
    if item.kind == "mailFolder":
        user = t.user(item.owner)
        assert user is not None
        if roll < 0.4:
            mm.rename_folder(t, tx, item, f"{item.data['displayName']} ({tag})")
            return [_change("rename", item)]
        if roll < 0.6:
            # Into another folder (custom or well-known) that is not below it.
            wk = user.data.get("_wk", {})
            choices = [
                f
                for f in t.store.in_scope(item.scope, ["mailFolder"])
                if f.key != item.parent
                and not f.data.get("isHidden")
                and (not f.data.get("_wellKnown") or f.key in (wk.get("inbox"), wk.get("archive")))
            ]
            rng.shuffle(choices)
            for dest in choices:
                try:
                    with tx.savepoint():
                        mm.move_folder(t, tx, item, dest)
                    return [_change("move", item, new_parent=dest.key)]
                except GraphError:
                    continue
            return []
        if roll < 0.8:
            new = mm.create_folder(t, tx, user, item, f"Subfolder {tag}")
            return [_change("create", new)]
        mm.delete_folder(t, tx, item)
        return [_change("delete", item)]
    if roll < 0.4:
        dm.update_item(t, tx, item, {"name": f"{str(item.data['name'])[:100]} {tag}"}, None)
        return [_change("rename", item)]
    if roll < 0.7:
        folder, _ = dm.create_folder(t, tx, item, f"New folder {tag}", "rename", None)
        spec = {"t": "rand", "seed": rng.randint(1, 2**40), "size": rng.randint(1, 100_000)}
        new, _ = dm.put_file(t, tx, folder, f"inside {tag}.bin", spec, "rename", None)
        return [_change("create", folder), _change("create", new)]
    dm.delete_item(t, tx, item)
    return [_change("delete", item)]


def _churn_one(t: Tenant, tx: Transaction, item: Item, rng: random.Random) -> list[dict[str, Any]]:
    if item.kind == "mailFolder" or (item.kind == "driveItem" and "folder" in item.data):
        return _churn_folder(t, tx, item, rng)
    roll = rng.random()
    if item.kind == "message":
        user = t.user(item.owner)
        assert user is not None
        if roll < 0.4:
            item.data["isRead"] = not item.data.get("isRead")
            mm.touch(item)
            tx.update(item)
            return [_change("update", item)]
        if roll < 0.6:
            folders: list[Item | None] = list(
                t.store.children(str(user.data["_wk"]["inbox"]), ["mailFolder"])
            ) or [t.store.get(str(user.data["_wk"]["archive"]))]
            dest = next((f for f in folders if f is not None and f.key != item.parent), None)
            if dest is not None:
                new = mm.move_message(t, tx, item, dest)
                return [_change("move", item, new_id=new.key, new_scope=dest.key)]
        if roll < 0.8:
            moved = mm.delete_message(t, tx, user, item)
            return [
                _change(
                    "delete",
                    item,
                    new_id=moved.key if moved else None,
                    new_scope=moved.scope if moved else None,
                )
            ]
        folder = t.store.get(item.parent)
        assert folder is not None
        new = mm.create_message_json(
            t,
            tx,
            user,
            folder,
            {
                "subject": f"New message {rng.randint(1, 10**6)}",
                "body": {"contentType": "text", "content": "A new message arrived during churn."},
                "from": {
                    "emailAddress": {"name": "Churn Sender", "address": "sender@fabrikam.com"}
                },
                "toRecipients": [
                    {
                        "emailAddress": {
                            "name": user.data.get("displayName"),
                            "address": user.data.get("mail"),
                        }
                    }
                ],
                "singleValueExtendedProperties": [
                    {"id": "Integer 0x0E07", "value": "0"},
                    {"id": "SystemTime 0x0E06", "value": iso(utc_now())},
                    {"id": "SystemTime 0x0039", "value": iso(utc_now())},
                ],
            },
        )
        return [_change("create", new)]
    if item.kind == "contact":
        if roll < 0.6:
            item.data["jobTitle"] = f"Title {rng.randint(1, 999)}"
            item.data["changeKey"] = Tenant.change_key()
            item.data["lastModifiedDateTime"] = Tenant.now()
            tx.update(item)
            return [_change("update", item)]
        if roll < 0.8:
            tx.tombstone(item)
            return [_change("delete", item)]

        folder = t.store.get(item.parent)
        assert folder is not None
        data = new_contact_data(
            folder, {"givenName": "Nova", "surname": f"Contact {rng.randint(1, 10**6)}"}
        )
        new = tx.insert(NewItem("contact", item.owner, folder.key, folder.key, data))
        return [_change("create", new)]
    if item.kind == "event":
        if roll < 0.6:
            item.data["subject"] = f"{item.data.get('subject', '')} (updated)"
            item.data["changeKey"] = Tenant.change_key()
            item.data["lastModifiedDateTime"] = Tenant.now()
            tx.update(item)
            return [_change("update", item)]
        if roll < 0.8:
            tx.tombstone(item)
            return [_change("delete", item)]
        user = t.user(item.owner)
        cal = t.store.get(item.parent)
        assert user is not None
        assert cal is not None
        start = utc_now().replace(minute=0, second=0, microsecond=0)
        data = cm.new_event_data(
            t,
            user,
            cal,
            {
                "subject": f"New appointment {rng.randint(1, 10**6)}",
                "start": {"dateTime": iso(start)[:-1], "timeZone": "UTC"},
                "end": {
                    "dateTime": iso(start.replace(hour=(start.hour + 1) % 24))[:-1],
                    "timeZone": "UTC",
                },
            },
        )
        new = tx.insert(NewItem("event", item.owner, cal.key, cal.key, data))
        return [_change("create", new)]
    if item.kind == "driveItem":
        if roll < 0.4:
            size = max(1, int(int(item.data.get("size", 1000)) * rng.uniform(0.5, 1.5)))
            spec = {"t": "rand", "seed": rng.randint(1, 2**40), "size": size}
            dm.replace_content(tx, item, spec, None)
            parent = t.store.get(item.parent)
            if parent is not None:
                dm.touch_folder(t, tx, parent)
            return [_change("update", item)]
        if roll < 0.55:
            stem, dot, ext = str(item.data["name"]).rpartition(".")
            suffix = f"{dot}{ext}" if stem else ""
            dm.update_item(
                t,
                tx,
                item,
                {"name": f"{(stem or ext)[:100]} renamed {rng.randint(1, 10**6)}{suffix}"},
                None,
            )
            return [_change("rename", item)]
        if roll < 0.7:
            drive_folders = [
                f
                for f in t.store.in_scope(item.scope, ["driveItem"])
                if "folder" in f.data and f.key != item.parent
            ]
            if drive_folders:
                dest = drive_folders[rng.randrange(len(drive_folders))]
                try:
                    dm.update_item(
                        t,
                        tx,
                        item,
                        {
                            "parentReference": {"id": dest.key},
                            "@microsoft.graph.conflictBehavior": "rename",
                        },
                        None,
                    )
                    return [_change("move", item, new_parent=dest.key)]
                except GraphError:
                    pass
        if roll < 0.85:
            dm.delete_item(t, tx, item)
            return [_change("delete", item)]
        parent = t.store.get(item.parent)
        assert parent is not None
        spec = {"t": "rand", "seed": rng.randint(1, 2**40), "size": rng.randint(1, 200_000)}
        new, _ = dm.put_file(
            t, tx, parent, f"new file {rng.randint(1, 10**9)}.bin", spec, "rename", None
        )
        return [_change("create", new)]
    if item.kind == "listItem":
        if roll < 0.7:
            fields = dict(item.data.get("_fields", {}))
            fields["Status"] = rng.choice(["Not started", "In progress", "Completed", "Blocked"])
            item.data["_fields"] = fields
            item.data["_ver"] = int(item.data.get("_ver", 1)) + 1
            item.data["lastModifiedDateTime"] = Tenant.now()
            tx.update(item)
            return [_change("update", item)]
        tx.tombstone(item)
        return [_change("delete", item)]
    if item.kind == "chatMessage":
        now = iso(utc_now())
        if roll < 0.6:
            reply_id = str(int(utc_now().timestamp() * 1000) + rng.randint(0, 999))
            channel_id = item.scope
            data = dict(item.data)
            data.update(
                {
                    "id": reply_id,
                    "replyToId": item.data["id"],
                    "etag": reply_id,
                    "createdDateTime": now,
                    "lastModifiedDateTime": now,
                    "subject": None,
                    "body": {"contentType": "html", "content": "<p>A new reply.</p>"},
                }
            )
            tx.insert(
                NewItem(
                    "chatReply",
                    item.owner,
                    item.key,
                    item.key,
                    data,
                    key=f"{channel_id}/{reply_id}",
                )
            )
            _touch_chat(tx, item, now)
            return [_change("reply", item, reply_id=reply_id)]
        if roll < 0.85:
            item.data["body"] = {"contentType": "html", "content": "<p>Edited.</p>"}
            item.data["lastEditedDateTime"] = now
            _touch_chat(tx, item, now)
            return [_change("update", item)]
        item.data["deletedDateTime"] = now
        _touch_chat(tx, item, now)
        return [_change("delete", item)]
    return []


def _touch_chat(tx: Transaction, item: Item, now: str) -> None:
    item.data["lastModifiedDateTime"] = now
    item.data["etag"] = str(int(utc_now().timestamp() * 1000))
    tx.update(item)


def wipe_messages(t: Tenant) -> int:
    """Remove every message of every mailbox at once (no Deleted Items); returns how many.

    Simulator mechanics, not a Microsoft behaviour: it stands for the loss a
    tenant-wide restore repairs, so that the scale-out benchmark's restore writes
    every message again instead of finding it there (tools/bench/scaleout.py).
    """
    count = 0
    with t.store.transaction() as tx:
        for item in list(t.store.iter_live(["message"])):
            for att in mm.attachments_of(t, item):
                tx.tombstone(att)
            tx.tombstone(item)
            count += 1
    return count


def mutate(t: Tenant, op: dict[str, Any]) -> dict[str, Any]:
    """One change. Raises GraphError (404 unknown item, 400 bad op)."""
    name = str(op.get("op", ""))
    if name == "create":
        return _create(t, op)
    key = str(op.get("id") or op.get("key") or "")
    item = t.store.get(key)
    if item is None:
        raise GraphError(404, "itemNotFound", f"No item {key!r}.")
    with t.store.transaction() as tx:
        if name == "delete":
            if item.kind == "message" and not op.get("hard"):
                user = t.user(item.owner)
                assert user is not None
                moved = mm.delete_message(t, tx, user, item)
                return _change("delete", item, new_id=moved.key if moved else None)
            if item.kind == "driveItem":
                dm.delete_item(t, tx, item)
            elif item.kind == "mailFolder":
                mm.delete_folder(t, tx, item)
            elif item.kind == "chatMessage" or item.kind == "chatReply":
                item.data["deletedDateTime"] = iso(utc_now())
                _touch_chat(tx, item, iso(utc_now()))
            else:
                for child in t.store.children(
                    item.key, ["attachment", "contact", "event", "listItem"]
                ):
                    tx.tombstone(child)
                tx.tombstone(item)
            return _change("delete", item)
        if name in ("share", "unshare") and item.kind == "driveItem":
            # A user shares the item with a link, or stops sharing it (permissions.py).
            if name == "share":
                perm = sharing.share(
                    t,
                    tx,
                    item,
                    kind=str(op.get("link", "view")),
                    scope=str(op.get("scope", "organization")),
                )
                return _change("share", item, permission=perm["id"])
            sharing.unshare(t, tx, item)
            return _change("unshare", item)
        if name == "update":
            changes = dict(op.get("changes") or {})
            if item.kind == "mailFolder" and set(changes) == {"displayName"}:
                mm.rename_folder(t, tx, item, str(changes["displayName"]))
                return _change("rename", item)
            if item.kind == "driveItem" and "content_size" in changes:
                spec = {
                    "t": "rand",
                    "seed": int(changes.pop("content_seed", random.randint(1, 2**40))),
                    "size": int(changes.pop("content_size")),
                }
                dm.replace_content(tx, item, spec, None)
            if item.kind == "driveItem" and changes:
                dm.update_item(t, tx, item, changes, None)
                return _change("update", item)
            if item.kind == "listItem" and "fields" in changes:
                fields = dict(item.data.get("_fields", {}))
                fields.update(changes.pop("fields"))
                item.data["_fields"] = fields
            for k, v in changes.items():
                if not k.startswith("_") and k != "id":
                    item.data[k] = v
            if "changeKey" in item.data:
                item.data["changeKey"] = Tenant.change_key()
            item.data["_ver"] = int(item.data.get("_ver", 1)) + 1
            if "lastModifiedDateTime" in item.data:
                item.data["lastModifiedDateTime"] = Tenant.now()
            tx.update(item)
            return _change("update", item)
        if name == "move":
            dest = t.store.get(str(op.get("destination", "")))
            if dest is None:
                raise GraphError(404, "itemNotFound", "No destination.")
            if item.kind == "message":
                new = mm.move_message(t, tx, item, dest)
                return _change("move", item, new_id=new.key)
            if item.kind == "driveItem":
                dm.update_item(
                    t,
                    tx,
                    item,
                    {
                        "parentReference": {"id": dest.key},
                        "@microsoft.graph.conflictBehavior": "rename",
                    },
                    None,
                )
                return _change("move", item, new_parent=dest.key)
            if item.kind == "mailFolder":
                mm.move_folder(t, tx, item, dest)
                return _change("move", item, new_parent=dest.key)
            raise GraphError(400, "invalidRequest", f"Cannot move a {item.kind}.")
    raise GraphError(
        400,
        "invalidRequest",
        f"Unknown op {name!r}; expected create, update, move, delete, share or unshare.",
    )


def _create(t: Tenant, op: dict[str, Any]) -> dict[str, Any]:
    kind = str(op.get("kind", ""))
    parent = t.store.get(str(op.get("parent", "")))
    if parent is None:
        raise GraphError(404, "itemNotFound", "No parent.")
    props = dict(op.get("props") or {})
    with t.store.transaction() as tx:
        if kind == "message":
            user = t.user(parent.owner)
            assert user is not None
            new = mm.create_message_json(t, tx, user, parent, props)
        elif kind == "file":
            spec = {
                "t": "rand",
                "seed": int(op.get("seed", random.randint(1, 2**40))),
                "size": int(op.get("size", 1000)),
            }
            new, _ = dm.put_file(
                t, tx, parent, str(op.get("name", "new.bin")), spec, "rename", None
            )
        elif kind == "folder" and parent.kind == "driveItem":
            new, _ = dm.create_folder(
                t, tx, parent, str(op.get("name", "New folder")), "rename", None
            )
        elif kind == "folder" and parent.kind == "mailFolder":
            user = t.user(parent.owner)
            assert user is not None
            new = mm.create_folder(t, tx, user, parent, str(op.get("name", "New folder")))
        elif kind == "contact":
            new = tx.insert(
                NewItem(
                    "contact", parent.owner, parent.key, parent.key, new_contact_data(parent, props)
                )
            )
        elif kind == "event":
            user = t.user(parent.owner)
            assert user is not None
            new = tx.insert(
                NewItem(
                    "event",
                    parent.owner,
                    parent.key,
                    parent.key,
                    cm.new_event_data(t, user, parent, props),
                )
            )
        elif kind == "post" and parent.kind == "conversationThread":
            new = gm.new_post(t, tx, parent, props)
        else:
            raise GraphError(
                400, "invalidRequest", f"Cannot create a {kind!r} under a {parent.kind}."
            )
    return _change("create", new)
