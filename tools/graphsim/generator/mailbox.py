"""Generated Exchange content of one mailbox: folders, messages with attachments,
contacts, calendars and events.

Invariants (tested at several seeds): the Inbox holds at least 3 messages and its first
message has a file attachment; every internetMessageId is unique in the tenant; messages
mix plain text, HTML and multipart/alternative bodies, inline images (multipart/related),
file attachments (some shared byte-for-byte across mailboxes), cloud (reference)
attachments and non-ASCII subjects and names; calendars hold single events, an all-day
event, a meeting with attendees and recurring series with a changed and a cancelled
occurrence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..config import ScaleProfile
from ..httpcore import iso
from ..services import recurrence as rc
from ..services.mailmodel import ROOT, WELL_KNOWN
from ..store import NewItem
from . import names
from .base import Gen, content_spec, log_size

_ATT_EXT = [
    e
    for e in names.EXTENSIONS
    if e[0] in (".pdf", ".docx", ".xlsx", ".txt", ".csv", ".zip", ".jpg")
]


@dataclass
class Person:
    id: str
    name: str
    address: str


@dataclass
class MailboxOut:
    rows: list[NewItem] = field(default_factory=list)
    well_known: dict[str, str] = field(default_factory=dict)


def _addr(p: Person) -> dict[str, Any]:
    return {"emailAddress": {"name": p.name, "address": p.address}}


def shared_attachments(gen: Gen, count: int = 8) -> list[dict[str, Any]]:
    """A tenant-wide pool of attachments that several mailboxes receive byte-for-byte."""
    pool = []
    for i in range(count):
        rng = gen.rng("shared-att", i)
        ext, ctype, head, text = _ATT_EXT[i % len(_ATT_EXT)]
        size = log_size(rng, 2_000, 600_000)
        pool.append(
            {
                "name": f"Company {names.ATTACHMENT_NAMES[i % len(names.ATTACHMENT_NAMES)]} {2020 + i}{ext}",
                "contentType": ctype,
                "size": size,
                "content": content_spec(gen, rng, size, text, head, "shared-att", i),
            }
        )
    return pool


def generate_mailbox(
    gen: Gen,
    owner: Person,
    index: int,
    scale: ScaleProfile,
    people: list[Person],
    pool: list[dict[str, Any]],
    *,
    messages: int,
    big_attachment: int = 0,
    room: bool = False,
) -> MailboxOut:
    out = MailboxOut()
    uid = owner.id
    folder_scope = f"{uid}/mailFolders"
    root_id = gen.outlook_id("AAMkAF", uid, "root")
    out.well_known[ROOT] = root_id
    out.rows.append(
        NewItem(
            "mailFolder",
            uid,
            folder_scope,
            uid,
            {
                "id": root_id,
                "displayName": "Top of Information Store",
                "parentFolderId": None,
                "isHidden": True,
                "_wellKnown": ROOT,
            },
            name="Top of Information Store",
        )
    )
    folders: list[str] = []
    for wk, (display, hidden) in WELL_KNOWN.items():
        fid = gen.outlook_id("AAMkAF", uid, wk)
        out.well_known[wk] = fid
        out.rows.append(
            NewItem(
                "mailFolder",
                uid,
                folder_scope,
                root_id,
                {
                    "id": fid,
                    "displayName": display,
                    "parentFolderId": root_id,
                    "isHidden": hidden,
                    "_wellKnown": wk,
                },
                name=display,
            )
        )
    rng = gen.rng("mailbox", uid)
    custom: list[str] = []
    for i in range(scale.folders_per_user):
        name = names.MAIL_FOLDERS[i % len(names.MAIL_FOLDERS)] + (
            "" if i < len(names.MAIL_FOLDERS) else f" {i}"
        )
        # Every third folder goes under the Inbox, others at the top level; the first one
        # gets a nested chain so hierarchies are at least three levels deep.
        parent = out.well_known["inbox"] if i % 3 == 1 else root_id
        fid = gen.outlook_id("AAMkAF", uid, "custom", i)
        out.rows.append(
            NewItem(
                "mailFolder",
                uid,
                folder_scope,
                parent,
                {"id": fid, "displayName": name, "parentFolderId": parent, "isHidden": False},
                name=name,
            )
        )
        custom.append(fid)
        if i == 0:
            prev = fid
            for depth, sub in enumerate(names.SUB_FOLDERS[:2]):
                sid = gen.outlook_id("AAMkAF", uid, "sub", depth)
                out.rows.append(
                    NewItem(
                        "mailFolder",
                        uid,
                        folder_scope,
                        prev,
                        {"id": sid, "displayName": sub, "parentFolderId": prev, "isHidden": False},
                        name=sub,
                    )
                )
                custom.append(sid)
                prev = sid
    folders = custom
    # Distribution of messages: Inbox first (at least 3), then Sent Items, then the rest.
    plan: list[str] = []
    inbox_n = max(3, int(messages * 0.45))
    sent_n = int(messages * 0.15)
    drafts_n = max(1, messages // 30)
    deleted_n = max(1, messages // 30)
    plan += [out.well_known["inbox"]] * inbox_n
    plan += [out.well_known["sentitems"]] * sent_n
    plan += [out.well_known["drafts"]] * drafts_n
    plan += [out.well_known["deleteditems"]] * deleted_n
    rest = max(0, messages - len(plan))
    targets = folders + [out.well_known["archive"], out.well_known["junkemail"]]
    plan += [targets[i % len(targets)] for i in range(rest)]
    others = [p for p in people if p.id != uid] or [owner]
    for n, folder_id in enumerate(plan):
        out.rows.extend(
            _message(
                gen,
                owner,
                uid,
                n,
                folder_id,
                out.well_known,
                others,
                pool,
                big=(big_attachment if n == 4 else 0),
                max_attachment=scale.max_attachment,
            )
        )
    out.rows.extend(_contacts(gen, owner, scale, others))
    cal_rows, cal_wk = _calendars(gen, owner, scale, others, room)
    out.rows.extend(cal_rows)
    out.well_known.update(cal_wk)
    contacts_root = next(
        r for r in out.rows if r.kind == "contactFolder" and r.data.get("_wellKnown") == "contacts"
    )
    out.well_known["contacts"] = str(contacts_root.data["id"])
    return out


def _message(
    gen: Gen,
    owner: Person,
    uid: str,
    n: int,
    folder_id: str,
    wk: dict[str, str],
    others: list[Person],
    pool: list[dict[str, Any]],
    big: int,
    max_attachment: int,
) -> list[NewItem]:
    rng = gen.rng("msg", uid, n)
    mid = gen.outlook_id("AAMkAG", uid, "msg", n)
    sent = folder_id == wk["sentitems"]
    draft = folder_id == wk["drafts"]
    peer = others[rng.randrange(len(others))]
    if rng.random() < 0.25:
        first, last = rng.choice(names.FIRST), rng.choice(names.LAST)
        peer = Person(
            "",
            f"{first} {last}",
            f"{names.ascii_local(first, last)}@{rng.choice(names.EXTERNAL_DOMAINS)}",
        )
    sender, recipient = (owner, peer) if sent or draft else (peer, owner)
    intl = rng.random() < 0.25
    template = rng.choice(names.SUBJECTS_INTL if intl else names.SUBJECTS)
    subject = template.format(n=rng.randint(1, 999))
    received = gen.ago(rng, 365, 0.01)
    body_kind = rng.choice(["text", "html", "alternative", "alternative"])
    cc = (
        [_addr(p) for p in rng.sample(others, k=min(len(others), rng.randint(0, 2)))]
        if others
        else []
    )
    atts: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    inbox_first = folder_id == wk["inbox"] and n == 0
    if inbox_first or big or rng.random() < 0.35:
        for k in range(1 if inbox_first else rng.randint(1, 3)):
            if rng.random() < 0.3 or (inbox_first and k == 0 and gen.number("first", uid) % 2 == 0):
                shared = pool[rng.randrange(len(pool))]
                atts.append(
                    (
                        {
                            "name": shared["name"],
                            "contentType": shared["contentType"],
                            "size": shared["size"],
                            "isInline": False,
                        },
                        shared["content"],
                    )
                )
            else:
                ext, ctype, head, text = rng.choice(_ATT_EXT)
                size = log_size(rng, 200, max_attachment)
                name = f"{rng.choice(names.ATTACHMENT_NAMES)} {n}-{k}{ext}"
                atts.append(
                    (
                        {"name": name, "contentType": ctype, "size": size, "isInline": False},
                        content_spec(gen, rng, size, text, head, "att", uid, n, k),
                    )
                )
    if big:
        atts.append(
            (
                {
                    "name": f"large-export-{n}.zip",
                    "contentType": "application/zip",
                    "size": big,
                    "isInline": False,
                },
                content_spec(gen, rng, big, False, "PK\x03\x04", "big", uid, n),
            )
        )
    cids: list[str] = []
    # Every mailbox has at least one inline image (message 2) and one cloud attachment
    # (message 1); more appear at random.
    if n == 2 or (body_kind != "text" and rng.random() < 0.12):
        body_kind = "alternative"
        cid = f"image{n}@{gen.number('cid', uid, n):x}"
        cids.append(cid)
        size = log_size(rng, 500, 80_000)
        atts.append(
            (
                {
                    "name": f"image{n}.png",
                    "contentType": "image/png",
                    "size": size,
                    "isInline": True,
                    "contentId": cid,
                },
                content_spec(gen, rng, size, False, "\x89PNG\r\n\x1a\n", "inline", uid, n),
            )
        )
    reference = n == 1 or rng.random() < 0.03
    file_count = sum(1 for a, _ in atts if not a.get("isInline"))
    data: dict[str, Any] = {
        "id": mid,
        "createdDateTime": received,
        "lastModifiedDateTime": received,
        "changeKey": gen.change_key("msg", uid, n),
        "categories": ["Blue category"] if rng.random() < 0.1 else [],
        "receivedDateTime": received,
        "sentDateTime": received,
        "internetMessageId": f"<{gen.guid('imid', uid, n).replace('-', '')}@{sender.address.split('@')[-1]}>",
        "subject": subject,
        "importance": "high" if rng.random() < 0.08 else "normal",
        "parentFolderId": folder_id,
        "conversationId": "AAQkA" + gen.guid("conv", uid, n // 3).replace("-", ""),
        "isDeliveryReceiptRequested": False,
        "isReadReceiptRequested": False,
        "isRead": draft or sent or rng.random() < 0.7,
        "isDraft": draft,
        "inferenceClassification": "focused" if rng.random() < 0.85 else "other",
        "from": _addr(sender),
        "sender": _addr(sender),
        "toRecipients": [_addr(recipient)],
        "ccRecipients": cc,
        "bccRecipients": [],
        "replyTo": [],
        "flag": {"flagStatus": "flagged" if rng.random() < 0.1 else "notFlagged"},
        "_fileAttachments": file_count,
        "_body": {
            "gen": gen.number("body", uid, n),
            "type": body_kind,
            "greeting": recipient.name.split(" ")[0],
            "cids": cids,
        },
    }
    rows = [NewItem("message", uid, folder_id, folder_id, data)]
    for k, (props, spec) in enumerate(atts):
        aid = gen.outlook_id("AAMkAtt", uid, n, k)
        adata: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "id": aid,
            "lastModifiedDateTime": received,
            "name": props["name"],
            "contentType": props["contentType"],
            "size": props["size"],
            "isInline": props.get("isInline", False),
            "contentId": props.get("contentId"),
            "contentLocation": None,
        }
        rows.append(NewItem("attachment", uid, mid, mid, adata, content=spec))
    if reference:
        aid = gen.outlook_id("AAMkAtt", uid, n, "ref")
        rows.append(
            NewItem(
                "attachment",
                uid,
                mid,
                mid,
                {
                    "@odata.type": "#microsoft.graph.referenceAttachment",
                    "id": aid,
                    "lastModifiedDateTime": received,
                    "name": f"Shared plan {n}.docx",
                    "contentType": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    "size": 0,
                    "isInline": False,
                },
            )
        )
    return rows


def _contacts(gen: Gen, owner: Person, scale: ScaleProfile, others: list[Person]) -> list[NewItem]:
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
        data: dict[str, Any] = {
            "id": gen.outlook_id("AAMkAC", uid, n),
            "createdDateTime": stamp,
            "lastModifiedDateTime": stamp,
            "changeKey": gen.change_key("contact", uid, n),
            "categories": [],
            "parentFolderId": folder,
            "birthday": f"19{rng.randint(50, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T11:59:00Z"
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
                    "address": f"{names.ascii_local(first, last)}@{rng.choice(names.EXTERNAL_DOMAINS)}",
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


def _dtz(value: dt.datetime) -> dict[str, str]:
    return rc.to_dtz(value, "UTC")


def _calendars(
    gen: Gen, owner: Person, scale: ScaleProfile, others: list[Person], room: bool
) -> tuple[list[NewItem], dict[str, str]]:
    uid = owner.id
    scope = f"{uid}/calendars"
    primary = gen.outlook_id("AAMkACal", uid, "primary")
    extra = gen.outlook_id("AAMkACal", uid, "extra")
    owner_ref = {"name": owner.name, "address": owner.address}
    rows = [
        NewItem(
            "calendar",
            uid,
            scope,
            uid,
            {
                "id": primary,
                "name": "Calendar",
                "color": "auto",
                "hexColor": "",
                "isDefaultCalendar": True,
                "changeKey": gen.change_key("cal", uid),
                "canShare": True,
                "canViewPrivateItems": True,
                "canEdit": True,
                "owner": owner_ref,
            },
            name="Calendar",
        ),
        NewItem(
            "calendar",
            uid,
            scope,
            uid,
            {
                "id": extra,
                "name": "Team Calendar",
                "color": "lightGreen",
                "hexColor": "#87d28e",
                "isDefaultCalendar": False,
                "changeKey": gen.change_key("cal2", uid),
                "canShare": True,
                "canViewPrivateItems": True,
                "canEdit": True,
                "owner": owner_ref,
            },
            name="Team Calendar",
        ),
    ]
    organizer = {"emailAddress": {"name": owner.name, "address": owner.address}}

    def event(
        n: int, cal: str, subject: str, start: dt.datetime, minutes: int, **extra_props: Any
    ) -> dict[str, Any]:
        rng = gen.rng("event", uid, n)
        stamp = gen.ago(rng, 90, 1)
        data: dict[str, Any] = {
            "id": gen.outlook_id("AAMkAE", uid, n),
            "createdDateTime": stamp,
            "lastModifiedDateTime": stamp,
            "changeKey": gen.change_key("event", uid, n),
            "categories": [],
            "originalStartTimeZone": "UTC",
            "originalEndTimeZone": "UTC",
            "iCalUId": "040000008200E00074C5B7101A82E008"
            + gen.guid("ical", uid, n).replace("-", "").upper(),
            "reminderMinutesBeforeStart": 15,
            "isReminderOn": True,
            "hasAttachments": False,
            "subject": subject,
            "bodyPreview": f"Agenda for {subject}",
            "importance": "normal",
            "sensitivity": "normal",
            "isAllDay": False,
            "isCancelled": False,
            "isOrganizer": True,
            "responseRequested": True,
            "seriesMasterId": None,
            "showAs": "busy",
            "type": "singleInstance",
            "webLink": f"https://outlook.office365.com/owa/?itemid={n}&exvsurl=1&path=/calendar/item",
            "onlineMeetingUrl": None,
            "isOnlineMeeting": False,
            "allowNewTimeProposals": True,
            "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
            "body": {
                "contentType": "html",
                "content": f"<html><body><p>Agenda for {subject}</p></body></html>",
            },
            "start": _dtz(start),
            "end": _dtz(start + dt.timedelta(minutes=minutes)),
            "location": {
                "displayName": rng.choice(["Room 1", "Salle Bleue", "Teams", ""]),
                "locationType": "default",
            },
            "locations": [],
            "recurrence": None,
            "attendees": [],
            "organizer": organizer,
            "_cal": cal,
        }
        data.update(extra_props)
        return data

    events: list[dict[str, Any]] = []
    # A weekly series with one changed and one cancelled occurrence.
    series_start = gen.when(-21, 10)
    weekly = event(0, primary, "Weekly sync", series_start, 30, type="seriesMaster")
    weekly["recurrence"] = {
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
            "type": "endDate",
            "startDate": series_start.date().isoformat(),
            "endDate": (series_start + dt.timedelta(weeks=12)).date().isoformat(),
            "recurrenceTimeZone": "UTC",
            "numberOfOccurrences": 0,
        },
    }
    cancelled_day = (series_start + dt.timedelta(weeks=2)).date()
    weekly["_cancelled"] = [cancelled_day.isoformat()]
    events.append(weekly)
    changed_day = (series_start + dt.timedelta(weeks=3)).date()
    exc_start = dt.datetime.combine(changed_day, dt.time(14, 0), tzinfo=dt.UTC)
    exception = event(
        1,
        primary,
        "Weekly sync (moved)",
        exc_start,
        45,
        type="exception",
        seriesMasterId=weekly["id"],
    )
    exception["id"] = rc.occurrence_id(weekly["id"], changed_day)
    exception["originalStart"] = iso(
        dt.datetime.combine(changed_day, series_start.time(), tzinfo=dt.UTC)
    )
    exception["_originalDate"] = changed_day.isoformat()
    events.append(exception)
    daily = event(2, primary, "Daily stand-up", gen.when(-5, 9, 15), 15, type="seriesMaster")
    daily["recurrence"] = {
        "pattern": {
            "type": "daily",
            "interval": 1,
            "daysOfWeek": [],
            "firstDayOfWeek": "sunday",
            "month": 0,
            "dayOfMonth": 0,
            "index": "first",
        },
        "range": {
            "type": "numbered",
            "startDate": gen.when(-5).date().isoformat(),
            "numberOfOccurrences": 20,
            "recurrenceTimeZone": "UTC",
        },
    }
    events.append(daily)
    allday = event(
        3, primary, "Company holiday", gen.when(7, 0), 24 * 60, isAllDay=True, showAs="free"
    )
    events.append(allday)
    meeting = event(4, primary, "Planning meeting with the team", gen.when(2, 13), 60)
    meeting["attendees"] = [
        {
            "type": "required",
            "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
            "emailAddress": {"name": p.name, "address": p.address},
        }
        for p in others[:3]
    ]
    events.append(meeting)
    monthly = event(5, extra, "Monthly review", gen.when(-40, 15), 60, type="seriesMaster")
    monthly["recurrence"] = {
        "pattern": {
            "type": "absoluteMonthly",
            "interval": 1,
            "dayOfMonth": gen.when(-40).day,
            "daysOfWeek": [],
            "firstDayOfWeek": "sunday",
            "month": 0,
            "index": "first",
        },
        "range": {
            "type": "noEnd",
            "startDate": gen.when(-40).date().isoformat(),
            "recurrenceTimeZone": "UTC",
            "numberOfOccurrences": 0,
        },
    }
    events.append(monthly)
    for n in range(6, max(6, scale.events_per_user)):
        rng = gen.rng("single", uid, n)
        cal = primary if rng.random() < 0.8 else extra
        subject = ("Booking: " if room else "") + rng.choice(
            ["1:1", "Lunch", "Customer call", "Workshop", "Réunion d'équipe", "Review", "Interview"]
        )
        start = gen.when(rng.uniform(-120, 60), rng.randint(8, 17), rng.choice([0, 30]))
        events.append(event(n, cal, f"{subject} #{n}", start, rng.choice([30, 45, 60, 90])))
    for data in events:
        cal = data.pop("_cal")
        rows.append(NewItem("event", uid, cal, cal, data))
    return rows, {"calendar": primary}
