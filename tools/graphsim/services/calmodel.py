"""Calendar behaviour shared by the calendar endpoints, delta and the admin API.

Sources: resources/event.md (type singleInstance | occurrence | exception | seriesMaster,
seriesMasterId, originalStart), event-list-instances.md, calendar-list-calendarview.md,
user-post-events.md ("When an event is sent, the server sends invitations to all the
attendees"), event-update.md, event-delete.md (deleting a meeting from the organizer's
calendar sends a cancellation), event-cancel.md, event-list-attachments.md,
event-post-attachments.md, attachment-get.md (`/$value` of an event's file attachment).

Model: singles and series masters are rows; occurrences are computed from the master's
recurrence; a changed occurrence becomes an "exception" row whose id is the occurrence
id; a cancelled occurrence is a tombstone row with that id (so delta reports it). Every
invitation, update or cancellation that Exchange would send to attendees is appended to
the invitation log (`GET /_sim/invitations`) instead of being sent.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Any

from ..httpcore import GraphError, iso, parse_iso
from ..store import Item, NewItem, Transaction
from ..tenant import Tenant
from . import recurrence as rc
from .common import etag, public

WRITABLE = {
    "subject",
    "body",
    "start",
    "end",
    "isAllDay",
    "location",
    "locations",
    "attendees",
    "recurrence",
    "importance",
    "sensitivity",
    "showAs",
    "categories",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "allowNewTimeProposals",
    "isOnlineMeeting",
    "hideAttendees",
}
_INVITE_FIELDS = {
    "start",
    "end",
    "location",
    "locations",
    "attendees",
    "recurrence",
    "subject",
    "body",
    "isAllDay",
}


def calendar_scope(user_id: str) -> str:
    return f"{user_id}/calendars"


def primary_calendar(t: Tenant, user: Item) -> Item:
    cal = t.store.get(str(user.data.get("_wk", {}).get("calendar", "")))
    if cal is None:
        raise GraphError(404, "ErrorItemNotFound", "The default calendar was not found.")
    return cal


def resolve_calendar(t: Tenant, user: Item, ref: str | None) -> Item:
    if ref is None or ref.lower() in ("calendar", "primary"):
        return primary_calendar(t, user)
    cal = t.store.get(ref)
    if cal is None or cal.kind != "calendar" or cal.owner != user.key:
        raise GraphError(404, "ErrorItemNotFound", "The specified calendar could not be found.")
    return cal


def out_time(value: dict[str, Any] | None, prefer_tz: str | None) -> dict[str, Any] | None:
    """Graph returns start/end in UTC unless `Prefer: outlook.timezone` asks otherwise."""
    if not value:
        return value
    try:
        return rc.to_dtz(rc.parse_dtz(value), prefer_tz or "UTC")
    except ValueError:
        return value


def prefer_tz(header: str) -> str | None:
    m = re.search(r'outlook\.timezone\s*=\s*"([^"]+)"', header, re.I)
    return m.group(1) if m else None


def render_event(item: Item, tz: str | None = None) -> dict[str, Any]:
    d = public(item.data)
    d["start"] = out_time(d.get("start"), tz)
    d["end"] = out_time(d.get("end"), tz)
    d["@odata.etag"] = etag(str(item.data.get("changeKey", "")))
    return d


def render_occurrence(
    master: Item, day: dt.date, start: dt.datetime, end: dt.datetime, tz: str | None
) -> dict[str, Any]:
    d = public(master.data)
    d.pop("recurrence", None)
    d["recurrence"] = None
    d["id"] = rc.occurrence_id(master.key, day)
    d["type"] = "occurrence"
    d["seriesMasterId"] = master.key
    d["start"] = rc.to_dtz(start, tz or "UTC")
    d["end"] = rc.to_dtz(end, tz or "UTC")
    d["originalStart"] = iso(start)
    d["@odata.etag"] = etag(str(master.data.get("changeKey", "")))
    return d


def instances(
    t: Tenant, master: Item, start: dt.datetime, end: dt.datetime, tz: str | None
) -> list[dict[str, Any]]:
    """Occurrences and exceptions of a series overlapping [start, end)."""
    related = {
        r.key: r
        for r in t.store.by_json(
            master.scope, "event", "$.seriesMasterId", master.key, include_deleted=True
        )
    }
    out: list[dict[str, Any]] = []
    cancelled = set(master.data.get("_cancelled", []))
    seen: set[str] = set()
    for day, occ_start, occ_end in rc.occurrences(master.data, start, end):
        oid = rc.occurrence_id(master.key, day)
        seen.add(oid)
        row = related.get(oid)
        if day.isoformat() in cancelled or (row is not None and row.deleted):
            continue
        if row is not None:
            if _overlaps(row.data, start, end):
                out.append(render_event(row, tz))
            continue
        out.append(render_occurrence(master, day, occ_start, occ_end, tz))
    # Exceptions moved into the window from outside their original date.
    for key, row in related.items():
        if key not in seen and not row.deleted and _overlaps(row.data, start, end):
            out.append(render_event(row, tz))
    return out


def _overlaps(data: dict[str, Any], start: dt.datetime, end: dt.datetime) -> bool:
    try:
        s = rc.parse_dtz(data["start"])
        e = rc.parse_dtz(data["end"])
    except (KeyError, ValueError):
        return False
    return s < end and e > start


def view_entries(
    t: Tenant, item: Item, start: dt.datetime, end: dt.datetime, tz: str | None
) -> list[dict[str, Any]]:
    """What a calendar view shows for one stored row."""
    kind = item.data.get("type")
    if kind == "seriesMaster":
        return instances(t, item, start, end, tz)
    if kind == "exception":
        return []  # shown through its master
    return [render_event(item, tz)] if _overlaps(item.data, start, end) else []


def window(query: dict[str, str]) -> tuple[dt.datetime, dt.datetime]:
    s = query.get("startDateTime") or query.get("startdatetime")
    e = query.get("endDateTime") or query.get("enddatetime")
    if not s or not e:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters"
            " StartDateTime and EndDateTime.",
        )
    try:
        return parse_iso(s), parse_iso(e)
    except ValueError:
        raise GraphError(
            400, "ErrorInvalidParameter", "StartDateTime or EndDateTime is not a valid date."
        ) from None


def _addresses(attendees: list[dict[str, Any]] | None, organizer: str) -> list[str]:
    out = []
    for a in attendees or []:
        addr = str((a.get("emailAddress") or {}).get("address") or "")
        if addr and addr.lower() != organizer.lower():
            out.append(addr)
    return out


def record_invitation(
    tx: Transaction, kind: str, event: dict[str, Any], organizer: str, *, via: str = "graph"
) -> None:
    recipients = _addresses(event.get("attendees"), organizer)
    if not recipients:
        return
    tx.add_invitation(
        {
            "kind": kind,
            "at": Tenant.now(),
            "via": via,
            "organizer": organizer,
            "attendees": recipients,
            "eventId": event.get("id"),
            "subject": event.get("subject"),
            "start": event.get("start"),
            "end": event.get("end"),
        }
    )


def new_event_data(
    t: Tenant, user: Item, cal: Item, payload: dict[str, Any], eid: str | None = None
) -> dict[str, Any]:
    for key in ("start", "end"):
        if not isinstance(payload.get(key), dict) or "dateTime" not in payload[key]:
            raise GraphError(400, "ErrorInvalidRequest", f"The event {key} is required.")
        try:
            rc.parse_dtz(payload[key])
        except ValueError:
            raise GraphError(
                400, "ErrorInvalidRequest", f"The event {key} is not a valid dateTimeTimeZone."
            ) from None
    now = Tenant.now()
    address = str(user.data.get("mail") or "")
    data: dict[str, Any] = {
        "id": eid or Tenant.new_outlook_id("AAMkAE"),
        "createdDateTime": now,
        "lastModifiedDateTime": now,
        "changeKey": Tenant.change_key(),
        "categories": [],
        "originalStartTimeZone": payload["start"].get("timeZone", "UTC"),
        "originalEndTimeZone": payload["end"].get("timeZone", "UTC"),
        "iCalUId": "040000008200E00074C5B7101A82E008" + Tenant.new_guid().replace("-", "").upper(),
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": True,
        "hasAttachments": False,
        "subject": "",
        "bodyPreview": "",
        "importance": "normal",
        "sensitivity": "normal",
        "isAllDay": False,
        "isCancelled": False,
        "isOrganizer": True,
        "responseRequested": True,
        "seriesMasterId": None,
        "showAs": "busy",
        "type": "singleInstance",
        "webLink": "https://outlook.office365.com/owa/?itemid=x&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": False,
        "allowNewTimeProposals": True,
        "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "body": {"contentType": "html", "content": ""},
        "location": {"displayName": "", "locationType": "default"},
        "locations": [],
        "recurrence": None,
        "attendees": [],
        "organizer": {"emailAddress": {"name": user.data.get("displayName"), "address": address}},
    }
    for key in WRITABLE:
        if key in payload:
            data[key] = payload[key]
    if data.get("recurrence"):
        data["type"] = "seriesMaster"
    body = data.get("body") or {}
    data["bodyPreview"] = re.sub(r"<[^>]+>", " ", str(body.get("content", ""))).strip()[:255]
    return data


def create_event(
    t: Tenant, tx: Transaction, user: Item, cal: Item, payload: dict[str, Any]
) -> Item:
    data = new_event_data(t, user, cal, payload)
    item = tx.insert(NewItem("event", user.key, cal.key, cal.key, data))
    record_invitation(tx, "request", data, str(user.data.get("mail") or ""))
    return item


def update_event(t: Tenant, tx: Transaction, user: Item, item: Item, patch: dict[str, Any]) -> Item:
    changed = False
    for key, value in patch.items():
        if key in WRITABLE:
            item.data[key] = value
            changed = changed or key in _INVITE_FIELDS
    if item.data.get("type") in ("singleInstance", "seriesMaster"):
        item.data["type"] = "seriesMaster" if item.data.get("recurrence") else "singleInstance"
    item.data["changeKey"] = Tenant.change_key()
    item.data["lastModifiedDateTime"] = Tenant.now()
    tx.update(item)
    if changed and item.data.get("isOrganizer"):
        record_invitation(tx, "update", item.data, str(user.data.get("mail") or ""))
    return item


def event_attachments(t: Tenant, event: Item) -> list[Item]:
    """The event's attachments (event-list-attachments.md), in insertion order."""
    return t.store.children(event.key, ["eventAttachment"])


def add_event_attachment(t: Tenant, tx: Transaction, event: Item, payload: dict[str, Any]) -> Item:
    """POST .../events/{id}/attachments (event-post-attachments.md): a fileAttachment
    with up to 3 MB of contentBytes, or an itemAttachment (an attached contact, event
    or message; kept as metadata, it has no bytes); the event gets a new changeKey and
    hasAttachments."""
    if payload.get("@odata.type") == "#microsoft.graph.itemAttachment":
        props = {k: v for k, v in payload.items() if k not in ("item", "@odata.type")}
        return _insert_event_attachment(
            t, tx, event, props, None, 0, kind="#microsoft.graph.itemAttachment"
        )
    if payload.get("@odata.type") != "#microsoft.graph.fileAttachment":
        raise GraphError(
            400, "ErrorInvalidRequest", "Only file and item attachments are supported."
        )
    try:
        raw = base64.b64decode(str(payload.get("contentBytes", "")), validate=True)
    except (binascii.Error, ValueError):
        raise GraphError(
            400, "ErrorInvalidRequest", "The contentBytes value is not valid base64."
        ) from None
    if len(raw) > 3 * 1024 * 1024:
        raise GraphError(
            413,
            "ErrorRequestEntityTooLarge",
            "The attachment is larger than 3 MB; use attachments/createUploadSession.",
        )
    return _insert_event_attachment(t, tx, event, payload, t.content.put_bytes(raw), len(raw))


def insert_uploaded_event_attachment(
    t: Tenant,
    tx: Transaction,
    event: Item,
    props: dict[str, Any],
    content: dict[str, Any],
    size: int,
) -> Item:
    """The file attachment an upload session made (attachment-createuploadsession.md:
    "The item can be a message or an event")."""
    return _insert_event_attachment(t, tx, event, props, content, size)


def _insert_event_attachment(
    t: Tenant,
    tx: Transaction,
    event: Item,
    props: dict[str, Any],
    content: dict[str, Any] | None,
    size: int,
    *,
    kind: str = "#microsoft.graph.fileAttachment",
) -> Item:
    data = {
        "@odata.type": kind,
        "id": Tenant.new_outlook_id("AAMkAEAtt"),
        "lastModifiedDateTime": Tenant.now(),
        "name": str(props.get("name") or "attachment"),
        "contentType": str(props.get("contentType") or "application/octet-stream"),
        "size": size,
        "isInline": bool(props.get("isInline", False)),
        "contentId": props.get("contentId"),
        "contentLocation": None,
    }
    att = tx.insert(
        NewItem("eventAttachment", event.owner, event.key, event.key, data, content=content)
    )
    event.data["hasAttachments"] = True
    event.data["changeKey"] = Tenant.change_key()
    event.data["lastModifiedDateTime"] = Tenant.now()
    tx.update(event)
    return att


def delete_event(t: Tenant, tx: Transaction, user: Item, item: Item) -> None:
    if item.data.get("type") == "seriesMaster":
        for row in t.store.by_json(item.scope, "event", "$.seriesMasterId", item.key):
            tx.tombstone(row)
    for att in event_attachments(t, item):
        tx.tombstone(att)
    tx.tombstone(item)
    if item.data.get("isOrganizer") and not item.data.get("isCancelled"):
        record_invitation(tx, "cancellation", item.data, str(user.data.get("mail") or ""))


def occurrence_as_exception(t: Tenant, tx: Transaction, master: Item, day: dt.date) -> Item:
    """Materialise an occurrence as an exception row (before it is changed)."""
    oid = rc.occurrence_id(master.key, day)
    existing = t.store.get(oid, include_deleted=True)
    if existing is not None and not existing.deleted:
        return existing
    found = [
        o
        for o in rc.occurrences(
            master.data,
            _day_start(day) - dt.timedelta(days=1),
            _day_start(day) + dt.timedelta(days=2),
        )
        if o[0] == day
    ]
    if not found or day.isoformat() in master.data.get("_cancelled", []) or existing is not None:
        raise GraphError(404, "ErrorItemNotFound", "The occurrence could not be found.")
    _, start, end = found[0]
    data = render_occurrence(master, day, start, end, None)
    data.pop("@odata.etag", None)
    data["type"] = "exception"
    data["changeKey"] = Tenant.change_key()
    data["_originalDate"] = day.isoformat()
    return tx.insert(NewItem("event", master.owner, master.scope, master.parent, data))


def cancel_occurrence(t: Tenant, tx: Transaction, user: Item, master: Item, day: dt.date) -> None:
    oid = rc.occurrence_id(master.key, day)
    existing = t.store.get(oid, include_deleted=True)
    cancelled = list(master.data.get("_cancelled", []))
    if day.isoformat() not in cancelled:
        cancelled.append(day.isoformat())
    master.data["_cancelled"] = cancelled
    master.data["changeKey"] = Tenant.change_key()
    tx.update(master)
    if existing is not None:
        tx.tombstone(existing)
    else:
        row = tx.insert(
            NewItem(
                "event",
                master.owner,
                master.scope,
                master.parent,
                {"id": oid, "seriesMasterId": master.key, "type": "occurrence"},
            )
        )
        tx.tombstone(row)
    if master.data.get("isOrganizer"):
        record_invitation(
            tx, "cancellation", {**master.data, "id": oid}, str(user.data.get("mail") or "")
        )


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
