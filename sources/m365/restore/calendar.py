"""Restoring calendars: events and recurring series with their exceptions, sending nothing.

**Invitations.** Creating an event with attendees makes Exchange send them an
invitation ("When an event is sent, the server sends invitations to all the
attendees", user-post-events.md); changing or deleting a meeting as its
organizer sends updates and cancellations (event-update.md,
event-delete.md). Graph has no "don't notify" switch. A restore therefore
never writes attendees: each event is created without them, and the list
of attendees (name, address, type, response) is written at the top of its
body, so nothing is lost and nobody is mailed. The event's Graph JSON, with
attendees, stays in the snapshot (and ``--to-dir`` writes it with an .ics).
Replacing a live meeting that has attendees would cancel it for them:
``replace`` then keeps both and says so in the report.

**Series.** A series master is created with its recurrence; each exception
in the snapshot (an occurrence that was moved or changed, with its
``originalStart``) is then applied to the matching occurrence of the new
series with a PATCH (which turns an occurrence into an exception,
event-update.md). A series is restored as a whole: selecting one exception
restores its series. Graph v1.0 lists no cancelled occurrences, so the
backup records on the master the original start day of every occurrence in
its window; the occurrences of the new series missing from that record are
cancelled again (a series backed up before that record existed comes back
with them, and the report says so).

**Attachments.** The file attachments backed up beside an event are attached
to the restored event (and to a restored exception): under 3 MB in one POST,
larger ones by upload session (attachment-createuploadsession.md: "the item
can be a message or an event"). An event found already there gets the ones it
lacks (by name and size), so an interrupted restore is completed, not
duplicated; a live meeting with attendees is left alone (changing it would
notify them). Item and reference attachments carry no bytes and were not
backed up: each is reported as skipped, with that reason.

**Time zones.** An event is created in its own zone: its start and end
(backed up in UTC) are sent as the wall-clock times in ``originalStartTimeZone``
and ``originalEndTimeZone`` (timezones.py), so a weekly meeting at 09:00 in
Berlin stays at 09:00 on both sides of a daylight saving change; pinned to
UTC it would move by an hour for half the year. An event whose zone Coffer
cannot read (a legacy custom zone) is created in UTC, and the report says so.

Calendars are found by name (the default calendar as the default), created
when missing; for another mailbox a calendar named ``<restore folder> -
<calendar>``. An event is already there when an event of the target calendar
has the same subject, start, end, recurrence, location and settings; another
version when the event with its own Graph ID is there with others.
"""

from __future__ import annotations

import base64
import html
import json
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sources.m365.graph.errors import ItemGone
from sources.m365.names import parse_time
from sources.m365.restore.common import (
    ABSENT,
    KEEP_BOTH,
    OTHER,
    REPLACE,
    SAME,
    SKIP,
    FolderIndex,
    FolderIndexes,
    ServiceRun,
    by_graph_id,
    meaningful,
    same_values,
)
from sources.m365.restore.items import SnapItem, item_of, read_json
from sources.m365.restore.uploads import ATTACHMENT_FRAGMENT, SessionLost, upload
from sources.m365.timezones import instant, own_zone_times
from store import PathNotFound

HEADERS = {"Prefer": 'outlook.timezone="UTC"'}
SMALL_ATTACHMENT = 3_000_000  # larger ones need an upload session
NO_BYTES = (
    "{kind} {name!r} of the event was not restored: it carries no bytes in Graph, so only "
    "its name was backed up"
)
WRITABLE = (
    "subject",
    "body",
    "start",
    "end",
    "isAllDay",
    "location",
    "locations",
    "recurrence",
    "importance",
    "sensitivity",
    "showAs",
    "categories",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "allowNewTimeProposals",
    "hideAttendees",
)
# What "the same event" compares (not the body, which carries the attendees
# note, and which Exchange rewrites; not reminders, which users change).
COMPARED = (
    "subject",
    "start",
    "end",
    "isAllDay",
    "location",
    "recurrence",
    "importance",
    "sensitivity",
    "showAs",
    "categories",
)
EXCEPTION_FIELDS = tuple(f for f in WRITABLE if f != "recurrence")


def _instant(value: Any) -> str | None:
    """A dateTimeTimeZone as a UTC instant string (None if unreadable)."""
    moment = instant(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def zone_unknown(event: dict[str, Any]) -> bool:
    """True when the event names a zone its times cannot be converted to."""
    wanted = [f for f in ("start", "end") if event.get(f"original{f.title()}TimeZone")]
    return bool(set(wanted) - set(own_zone_times(event)))


def _recurrence(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    pattern = value.get("pattern") or {}
    rng = value.get("range") or {}
    kind = str(pattern.get("type") or "")
    out: dict[str, Any] = {
        "type": kind,
        "interval": int(pattern.get("interval") or 1),
        "range": str(rng.get("type") or ""),
        "startDate": str(rng.get("startDate") or ""),
    }
    if kind in ("weekly", "relativeMonthly", "relativeYearly"):
        out["daysOfWeek"] = sorted(str(d).lower() for d in pattern.get("daysOfWeek") or [])
    if kind in ("relativeMonthly", "relativeYearly"):
        out["index"] = str(pattern.get("index") or "first")
    if kind in ("absoluteMonthly", "absoluteYearly"):
        out["dayOfMonth"] = int(pattern.get("dayOfMonth") or 0)
    if kind in ("absoluteYearly", "relativeYearly"):
        out["month"] = int(pattern.get("month") or 0)
    if out["range"] == "endDate":
        out["endDate"] = str(rng.get("endDate") or "")
    if out["range"] == "numbered":
        out["numberOfOccurrences"] = int(rng.get("numberOfOccurrences") or 0)
    return out


def _normal(name: str, value: Any) -> Any:
    if name in ("start", "end"):
        return _instant(value)
    if name == "recurrence":
        return _recurrence(value)
    if name == "location":
        return str((value or {}).get("displayName") or "") if isinstance(value, dict) else ""
    if name == "categories":
        return sorted(str(c) for c in value or [])
    if name in ("importance", "sensitivity", "showAs"):
        return str(value or "").lower() or None
    if name == "isAllDay":
        return bool(value)
    if name == "subject":
        return str(value or "")
    return value if meaningful(value) else None


def _compared(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event.get(k) for k in COMPARED}


def is_same(ours: dict[str, Any], row: dict[str, Any]) -> bool:
    return same_values(_compared(ours), row, _normal)


def _live_meeting(row: dict[str, Any]) -> bool:
    """A meeting organised from this calendar with attendees: writing to it mails them."""
    return bool(row.get("attendees")) and row.get("isOrganizer") is not False


class EventKind:
    """How an event is recognised in a target calendar (common.ItemKind): subject
    and start, then the compared properties."""

    def bucket(self, event: dict[str, Any]) -> str:
        return f"{str(event.get('subject') or '').casefold()}|{_instant(event.get('start'))}"

    def identities(self, event: dict[str, Any]) -> list[str]:
        return by_graph_id(event)

    def same(self, ours: dict[str, Any], row: dict[str, Any]) -> bool:
        return is_same(ours, row)


def attendees_note(event: dict[str, Any]) -> str:
    """The attendee list as the text put at the top of the restored body."""
    people = []
    for attendee in event.get("attendees") or []:
        address = (attendee or {}).get("emailAddress") or {}
        who = str(address.get("name") or address.get("address") or "?")
        if address.get("address") and address.get("name"):
            who += f" <{address['address']}>"
        kind = str((attendee or {}).get("type") or "required")
        status = ((attendee or {}).get("status") or {}).get("response")
        people.append(f"{who} ({kind}{', ' + str(status) if status and status != 'none' else ''})")
    return "Attendees when backed up (restored without invitations): " + "; ".join(people)


def event_payload(event: dict[str, Any], fields: tuple[str, ...] = WRITABLE) -> dict[str, Any]:
    """The JSON that creates (or patches) the event: no attendees, times in the
    event's own zone (module docstring)."""
    payload = {k: event[k] for k in fields if k in event and event[k] is not None}
    payload.update({k: v for k, v in own_zone_times(event).items() if k in payload})
    if event.get("attendees"):
        note = attendees_note(event)
        body = dict(event.get("body") or {"contentType": "text", "content": ""})
        if str(body.get("contentType", "")).lower() == "html":
            block = f"<p>{html.escape(note)}</p>"
            content = str(body.get("content") or "")
            lower = content.lower()
            at = lower.find("<body")
            if at >= 0 and lower.find(">", at) >= 0:
                cut = lower.find(">", at) + 1
                body["content"] = content[:cut] + block + content[cut:]
            else:
                body["content"] = block + content
        else:
            body["content"] = f"{note}\n\n{body.get('content') or ''}"
        payload["body"] = body
    return payload


class CalendarWriter:
    """Restores the events of one mailbox (see the module docstring).

    ``selected(item)`` tells whether the restore's filter chose an item: an
    exception whose series master is chosen too is restored with the master.
    """

    def __init__(self, run: ServiceRun, selected: Callable[[SnapItem], bool]) -> None:
        self.run = run
        self.selected = selected
        self.uid = str(run.placement.user_id)
        self._calendars: dict[str, str | None] = {}
        self._indexes = FolderIndexes(EventKind())
        self._listed: list[dict[str, Any]] | None = None
        self._done_series: set[str] = set()
        self._lock = threading.RLock()

    # -- calendars ---------------------------------------------------------------------------

    def _all_calendars(self) -> list[dict[str, Any]]:
        if self._listed is None:
            self._listed = list(
                self.run.client.list_all(
                    f"/users/{self.uid}/calendars", self.run.res, params={"$top": "250"}
                )
            )
        return self._listed

    def calendar_id(self, item: SnapItem) -> str | None:
        folder = item.parents[1] if len(item.parents) > 1 else None
        name = item.folder_names[0] if item.folder_names else "Calendar"
        is_default = False
        if folder is not None:
            try:
                graph = json.loads(folder.attrs.get("graph") or "{}")
                is_default = bool(graph.get("isDefaultCalendar"))
            except (ValueError, AttributeError):
                is_default = False
        placement = self.run.placement
        if placement.base:
            name = " - ".join((*placement.base, name))
            is_default = False
        key = f"{'default' if is_default else 'named'}:{name.casefold()}"
        with self._lock:
            if key in self._calendars:
                return self._calendars[key]
            found: str | None = None
            for cal in self._all_calendars():
                if (is_default and cal.get("isDefaultCalendar")) or (
                    not is_default and str(cal.get("name", "")).casefold() == name.casefold()
                ):
                    found = str(cal["id"])
                    break
            if found is None and not self.run.dry_run:
                found = self._create_calendar(name)
            self._calendars[key] = found
            return found

    def _create_calendar(self, name: str) -> str:
        def find() -> dict[str, Any] | None:
            self._listed = None
            for cal in self._all_calendars():
                if str(cal.get("name", "")).casefold() == name.casefold():
                    return cal
            return None

        return self.run.create_container(
            f"/users/{self.uid}/calendars", {"name": name}, find, f"creating calendar {name!r}"
        )

    def index(self, cid: str | None) -> FolderIndex:
        return self._indexes.get(
            cid,
            lambda key: self.run.client.list_all(
                f"/users/{self.uid}/calendars/{key}/events",
                self.run.res,
                params={"$top": "1000"},
                headers=HEADERS,
            ),
        )

    # -- items -------------------------------------------------------------------------------

    def restore(self, item: SnapItem) -> None:
        kind = item.attrs.get("eventType", "singleInstance")
        if kind == "exception":
            master = self._master_of(item)
            if master is None:
                self.run.fail(item.path, "its series master is not in the snapshot")
                return
            if self.selected(master):
                return  # restored with its master
            self._series(master, only=item)
            return
        if kind == "seriesMaster":
            self._series(item)
            return
        self._single(item)

    def _master_of(self, item: SnapItem) -> SnapItem | None:
        master_id = item.attrs.get("seriesMasterId")
        folder = item.parent_paths[-1]
        for entry in self.run.reader.listdir(folder):
            if entry.item_id == master_id and entry.is_file:
                return item_of(
                    f"{folder}/{entry.display_name}", entry, item.parents, item.parent_paths
                )
        return None

    def _exceptions_of(self, master: SnapItem) -> list[SnapItem]:
        try:
            stems = json.loads(master.attrs.get("exceptions") or "{}")
        except ValueError:
            stems = {}
        folder = master.parent_paths[-1]
        out = []
        for stem in sorted(stems):
            path = f"{folder}/{stem}.json"
            try:
                entry = self.run.reader.stat(path)
            except PathNotFound:
                continue  # listed by the master but not stored (skipped by the backup)
            found = item_of(path, entry, master.parents, master.parent_paths)
            if found is not None:
                out.append(found)
        return out

    def _read(self, item: SnapItem) -> dict[str, Any] | None:
        try:
            return read_json(self.run.reader, item)
        except ValueError as exc:
            self.run.fail(item.path, f"the backed-up event cannot be read: {exc}")
            return None

    def _single(self, item: SnapItem) -> None:
        event = self._read(item)
        if event is None:
            return
        self._place(item, event)

    def _place(self, item: SnapItem, event: dict[str, Any]) -> tuple[str, bool, bool] | None:
        """Create (or find) the event; returns the target event's ID, whether it is a
        live meeting with attendees (then nothing in it is changed) and whether it
        was created now; None when the event is not in the target."""
        run = self.run
        cid = self.calendar_id(item)
        index = self.index(cid)
        found, row = index.match(event)
        if run.dry_run:
            run.planned(item.path, found)
            if row is not None and found == SAME:
                return str(row["id"]), _live_meeting(row), False
            return None
        assert cid is not None
        if found == SAME and row is not None:
            run.already_there(item.path)
            self.attachments(item, str(row["id"]), live=_live_meeting(row))
            return str(row["id"]), _live_meeting(row), False
        action = run.decide(found)
        if action == SKIP:
            run.skipped_other_version(item.path)
            return None
        if action == REPLACE and row is not None and _live_meeting(row):
            # Deleting a meeting as its organizer sends cancellations: keep both.
            action = KEEP_BOTH
            run.result.note(
                "a live meeting with attendees was kept beside its restored copy: "
                "replacing it would have sent them cancellations"
            )
        new_id = self._create(cid, index, event)
        self.attachments(item, new_id, live=False)
        if action == REPLACE and row is not None:
            self._delete(str(row["id"]))
            index.forget(str(row["id"]))
            run.done("replaced", item.path)
        else:
            run.done("kept_both" if action == KEEP_BOTH else "created", item.path)
        return new_id, False, True

    # -- attachments -------------------------------------------------------------------------

    def attachments(self, item: SnapItem, event_id: str, *, live: bool) -> None:
        """Attach the event's backed-up file attachments that ``event_id`` lacks;
        report the item and reference attachments (module docstring)."""
        run = self.run
        try:
            names = [str(n) for n in json.loads(item.attrs.get("attachments") or "[]")]
            others = list(json.loads(item.attrs.get("otherAttachments") or "[]"))
        except ValueError:
            names, others = [], []
        for other in others:
            kind = str((other or {}).get("type") or "attachment")
            label = str((other or {}).get("name") or "")
            run.done(
                "skipped", f"{item.path} ({kind} {label})", NO_BYTES.format(kind=kind, name=label)
            )
        if not names or run.dry_run:
            return
        if live:
            run.result.note(
                "attachments of live meetings were not added: changing a meeting notifies "
                "its attendees"
            )
            return
        try:
            have = Counter(
                (str(a.get("name")), int(a.get("size") or 0))
                for a in self._listed_attachments(event_id)
            )
        except ItemGone:
            return
        folder = item.parent_paths[-1]
        for name in names:
            path = f"{folder}/{name}"
            try:
                entry = run.reader.stat(path)
            except PathNotFound:
                run.fail(path, "the attachment is listed by its event but not in the snapshot")
                continue
            try:
                graph = json.loads(entry.attrs.get("graph") or "{}")
            except ValueError:
                graph = {}
            label = str(graph.get("name") or entry.attrs.get("name") or name)
            key = (label, int(entry.size))
            if have[key] > 0:
                have[key] -= 1
                continue
            data = run.reader.open(entry).read()
            try:
                self._attach(event_id, label, data, graph)
            except SessionLost as exc:
                run.fail(path, str(exc))

    def _listed_attachments(self, event_id: str) -> list[dict[str, Any]]:
        return list(
            self.run.client.list_all(
                f"/users/{self.uid}/events/{event_id}/attachments",
                self.run.res,
                params={"$select": "id,name,size"},
            )
        )

    def _attach(self, event_id: str, name: str, data: bytes, graph: dict[str, Any]) -> None:
        """One file attachment: a POST under 3 MB, an upload session from 3 MB.
        Raises SessionLost when upload sessions keep failing, GraphError otherwise."""
        run = self.run
        base = f"/users/{self.uid}/events/{event_id}/attachments"
        content_type = str(graph.get("contentType") or "application/octet-stream")
        run.pace(len(data))
        if len(data) < SMALL_ATTACHMENT:
            body: dict[str, Any] = {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": name,
                "contentType": content_type,
                "contentBytes": base64.b64encode(data).decode("ascii"),
                "isInline": bool(graph.get("isInline")),
            }
            if graph.get("contentId"):
                body["contentId"] = graph["contentId"]

            def find() -> dict[str, Any] | None:
                for existing in self._listed_attachments(event_id):
                    if existing.get("name") == name and int(existing.get("size") or 0) == len(data):
                        return existing
                return None

            run.create_once(
                lambda: run.client.send("POST", base, run.res, json_body=body, idempotent=False),
                find,
                f"attaching {name!r}",
            )
            run.result.uploaded(len(data))
            return
        spec: dict[str, Any] = {
            "attachmentType": "file",
            "name": name,
            "size": len(data),
            "contentType": content_type,
            "isInline": bool(graph.get("isInline")),
        }
        if graph.get("contentId"):
            spec["contentId"] = graph["contentId"]
        for _attempt in range(3):
            session = run.client.send(
                "POST",
                f"{base}/createUploadSession",
                run.res,
                json_body={"AttachmentItem": spec},
                idempotent=True,  # an unused session expires on its own
            )
            try:
                upload(
                    run,
                    str(session.data["uploadUrl"]),
                    len(data),
                    lambda offset, length: data[offset : offset + length],
                    fragment=ATTACHMENT_FRAGMENT,
                )
            except SessionLost:
                continue
            return
        raise SessionLost(f"the upload of attachment {name!r} kept failing")

    def _create(self, cid: str, index: FolderIndex, event: dict[str, Any]) -> str:
        run = self.run
        payload = event_payload(event)
        if zone_unknown(event):
            run.result.note(
                "events in a time zone Coffer cannot read (a custom zone of desktop Outlook) "
                "were restored in UTC"
            )
        url = f"/users/{self.uid}/calendars/{cid}/events"
        known = index.ids()

        def find() -> dict[str, Any] | None:
            for row in run.client.list_all(url, run.res, params={"$top": "1000"}, headers=HEADERS):
                if str(row.get("id")) not in known and is_same(event, row):
                    return row
            return None

        made = run.create_once(
            lambda: run.client.send(
                "POST", url, run.res, json_body=payload, headers=HEADERS, idempotent=False
            ),
            find,
            "creating the event",
        )
        index.add(made)
        return str(made["id"])

    def _delete(self, eid: str) -> None:
        try:
            self.run.client.send(
                "DELETE", f"/users/{self.uid}/events/{eid}", self.run.res, idempotent=True
            )
        except ItemGone:
            pass

    # -- series ------------------------------------------------------------------------------

    def _series(self, master: SnapItem, only: SnapItem | None = None) -> None:
        with self._lock:
            if master.path in self._done_series:
                return
            self._done_series.add(master.path)
        exceptions = self._exceptions_of(master)
        event = self._read(master)
        if event is None:
            for exc in exceptions:
                self.run.fail(exc.path, "its series master cannot be read")
            return
        target = self._place(master, event)
        if target is None:
            for exc in exceptions:
                if self.run.dry_run:
                    self.run.done("created", exc.path)
                else:
                    self.run.done("skipped", exc.path, "its series was not restored")
            return
        series_id, live, created = target
        if created:
            self._cancel_cancelled(series_id, master)
        for exc in exceptions:
            self._exception(series_id, exc, live=live)

    def _cancel_cancelled(self, series_id: str, master: SnapItem) -> None:
        """Cancel the occurrences of a new series that had been cancelled when it was
        backed up (the master's ``occurrences`` attribute lists the others)."""
        run = self.run
        try:
            recorded = json.loads(master.attrs.get("occurrences") or "null")
        except ValueError:
            recorded = None
        if not isinstance(recorded, dict) or not isinstance(recorded.get("days"), list):
            run.result.note(
                "series backed up before Coffer recorded their occurrences come back with "
                "the occurrences that had been cancelled"
            )
            return
        days = set(recorded["days"])
        window = recorded.get("window") or []
        if len(window) != 2:
            return
        params = {"startDateTime": str(window[0]), "endDateTime": str(window[1])}
        instances = list(
            run.client.list_all(
                f"/users/{self.uid}/events/{series_id}/instances",
                run.res,
                params={**params, "$top": "1000"},
                headers=HEADERS,
            )
        )
        for instance in instances:
            original = parse_time(str(instance.get("originalStart") or ""))
            if original is None or original.strftime("%Y-%m-%d") in days:
                continue
            try:
                run.client.send(
                    "DELETE",
                    f"/users/{self.uid}/events/{instance['id']}",
                    run.res,
                    idempotent=True,
                )
            except ItemGone:
                pass

    def _exception(self, series_id: str, item: SnapItem, *, live: bool) -> None:
        run = self.run
        exception = self._read(item)
        if exception is None:
            return
        original = parse_time(str(exception.get("originalStart") or ""))
        if original is None:
            run.fail(item.path, "the exception has no original start")
            return
        instance = self._instance(series_id, original)
        if instance is None:
            run.fail(item.path, "no occurrence of the restored series starts at its original time")
            return
        found = ABSENT
        if instance.get("type") == "exception":
            found = (
                SAME
                if is_same({**exception, "recurrence": None}, {**instance, "recurrence": None})
                else OTHER
            )
        action = run.settle(item.path, found)
        if action is None:
            return
        if action == KEEP_BOTH:
            run.done("skipped", item.path, "an occurrence has one version only (keep-both)")
            return
        if live:
            run.done(
                "skipped",
                item.path,
                "changing an occurrence of a live meeting would notify its attendees",
            )
            return
        run.client.send(
            "PATCH",
            f"/users/{self.uid}/events/{instance['id']}",
            run.res,
            json_body=event_payload(exception, EXCEPTION_FIELDS),
            headers=HEADERS,
            idempotent=True,
        )
        self.attachments(item, str(instance["id"]), live=False)
        run.done("replaced" if found == OTHER else "created", item.path)

    def _instance(self, series_id: str, original: datetime) -> dict[str, Any] | None:
        start = original - timedelta(days=1)
        end = original + timedelta(days=2)
        params = {
            "startDateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endDateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        wanted = original.strftime("%Y-%m-%dT%H:%M:%SZ")
        candidates = list(
            self.run.client.list_all(
                f"/users/{self.uid}/events/{series_id}/instances",
                self.run.res,
                params=params,
                headers=HEADERS,
            )
        )
        for instance in candidates:
            start_at = parse_time(str(instance.get("originalStart") or ""))
            if start_at is not None and start_at.strftime("%Y-%m-%dT%H:%M:%SZ") == wanted:
                return instance
        for instance in candidates:  # same day, other time of day (a zone's rules changed)
            start_at = parse_time(str(instance.get("originalStart") or ""))
            if start_at is not None and start_at.date() == original.date():
                return instance
        return None
