"""Generated calendars: a primary and a second calendar with a weekly series (one moved
and one cancelled occurrence), a daily numbered series, a monthly series without end, an
all-day event, a meeting with attendees and single events. The meeting and about a fifth
of the single events carry file attachments (event-list-attachments.md): rows of kind
`eventAttachment` under the event, which then has `hasAttachments` true."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from ..config import ScaleProfile
from ..httpcore import iso
from ..services import recurrence as rc
from ..store import NewItem
from . import names
from .base import Gen, content_spec, log_size
from .people import Person

_EVENT_ATT_EXT = [e for e in names.EXTENSIONS if e[0] in (".docx", ".pdf", ".pptx", ".txt")]
EVENT_ATTACHMENT_SHARE = 0.2


def _dtz(value: dt.datetime) -> dict[str, str]:
    return rc.to_dtz(value, "UTC")


def generate_calendars(
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
    for n, data in enumerate(events):
        cal = data.pop("_cal")
        # Own random stream: attachments shift no other generated value.
        arng = gen.rng("event-attachments", uid, n)
        atts: list[NewItem] = []
        if data is meeting or (
            data["type"] == "singleInstance" and arng.random() < EVENT_ATTACHMENT_SHARE
        ):
            atts = _attachments(gen, arng, uid, str(data["id"]), n, str(data["createdDateTime"]))
            data["hasAttachments"] = True
        rows.append(NewItem("event", uid, cal, cal, data))
        rows.extend(atts)
    return rows, {"calendar": primary}


def _attachments(
    gen: Gen, rng: random.Random, uid: str, event_id: str, n: int, stamp: str
) -> list[NewItem]:
    out = []
    for a in range(rng.randint(1, 2)):
        ext, ctype, head, text = _EVENT_ATT_EXT[rng.randrange(len(_EVENT_ATT_EXT))]
        size = log_size(rng, 200, 400_000)
        stem = rng.choice(["Agenda", "Slides", "Notes", "Budget", "Compte rendu", "議事録"])
        data = {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "id": gen.outlook_id("AAMkAEAtt", uid, n, a),
            "lastModifiedDateTime": stamp,
            "name": f"{stem} {n}-{a + 1}{ext}",
            "contentType": ctype,
            "size": size,
            "isInline": False,
            "contentId": None,
            "contentLocation": None,
        }
        spec = content_spec(gen, rng, size, text, head, "event-att", uid, n, a)
        out.append(NewItem("eventAttachment", uid, event_id, event_id, data, content=spec))
    return out
