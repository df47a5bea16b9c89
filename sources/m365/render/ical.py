"""iCalendar (RFC 5545) rendering of a Graph event (times requested in UTC)."""

from __future__ import annotations

from typing import Any

from sources.m365.names import parse_time
from sources.m365.render.text import body_text, escape_value, field, fold, items, param_value

_DAYS = {
    "sunday": "SU",
    "monday": "MO",
    "tuesday": "TU",
    "wednesday": "WE",
    "thursday": "TH",
    "friday": "FR",
    "saturday": "SA",
}
_INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
_PARTSTAT = {
    "accepted": "ACCEPTED",
    "declined": "DECLINED",
    "tentativelyAccepted": "TENTATIVE",
    "organizer": "ACCEPTED",
}


def _utc(value: Any, *, all_day: bool) -> str | None:
    if not isinstance(value, dict):
        return None
    # Coffer asks Graph for UTC times (Prefer: outlook.timezone="UTC").
    parsed = parse_time(str(value.get("dateTime") or ""))
    if parsed is None:
        return None
    if all_day:
        return f";VALUE=DATE:{parsed.strftime('%Y%m%d')}"
    return f":{parsed.strftime('%Y%m%dT%H%M%SZ')}"


def _int(value: object, default: int) -> int:
    """A JSON number as an int (Graph sends ints; anything else is the default)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value) if abs(value) < 1e9 else default


def rrule(recurrence: Any) -> str | None:
    """RRULE for a Graph patternedRecurrence, or None."""
    if not isinstance(recurrence, dict):
        return None
    pattern = recurrence.get("pattern")
    pattern = pattern if isinstance(pattern, dict) else {}
    rng = recurrence.get("range")
    rng = rng if isinstance(rng, dict) else {}
    kind = str(pattern.get("type") or "")
    parts: list[str] = []
    freq = {
        "daily": "DAILY",
        "weekly": "WEEKLY",
        "absoluteMonthly": "MONTHLY",
        "relativeMonthly": "MONTHLY",
        "absoluteYearly": "YEARLY",
        "relativeYearly": "YEARLY",
    }.get(kind)
    if freq is None:
        return None
    parts.append(f"FREQ={freq}")
    interval = _int(pattern.get("interval"), 1)
    if interval > 1:
        parts.append(f"INTERVAL={interval}")
    days = [_DAYS[d] for d in items(pattern.get("daysOfWeek")) if isinstance(d, str) and d in _DAYS]
    if kind == "weekly" and days:
        parts.append("BYDAY=" + ",".join(days))
    if kind.startswith("relative") and days:
        index = _INDEX.get(str(pattern.get("index") or "first"), 1)
        parts.append("BYDAY=" + ",".join(f"{index}{d}" for d in days))
    day_of_month = _int(pattern.get("dayOfMonth"), 0)
    if kind.startswith("absolute") and kind != "absoluteYearly" and day_of_month:
        parts.append(f"BYMONTHDAY={day_of_month}")
    if kind.endswith("Yearly"):
        month = _int(pattern.get("month"), 0)
        if month:
            parts.append(f"BYMONTH={month}")
        if kind == "absoluteYearly" and day_of_month:
            parts.append(f"BYMONTHDAY={day_of_month}")
    first_day = pattern.get("firstDayOfWeek")
    if isinstance(first_day, str) and first_day in _DAYS:
        parts.append(f"WKST={_DAYS[first_day]}")
    range_type = str(rng.get("type") or "")
    end_date = parse_time(f"{rng.get('endDate')}T00:00:00Z")
    count = _int(rng.get("numberOfOccurrences"), 0)
    if range_type == "endDate" and end_date is not None:
        parts.append(f"UNTIL={end_date.strftime('%Y%m%d')}T235959Z")
    elif range_type == "numbered" and count > 0:
        parts.append(f"COUNT={count}")
    return "RRULE:" + ";".join(parts)


def _person(prefix: str, who: Any, extra: str = "") -> str | None:
    address = field(who, "emailAddress")
    if not isinstance(address, dict) or not address.get("address"):
        return None
    # Parameter values and URIs cannot be escaped like TEXT: drop what would
    # end the line or the quoted value (a CR in an address injected properties).
    name = param_value(str(address.get("name") or ""))
    cn = f';CN="{name}"' if name else ""
    return f"{prefix}{cn}{extra}:mailto:{param_value(str(address['address']))}"


def render_ics(event: dict[str, Any]) -> bytes:
    """A VCALENDAR holding the event (a series master carries its RRULE; an
    exception carries RECURRENCE-ID)."""
    e = escape_value
    all_day = bool(event.get("isAllDay"))
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Coffer//Microsoft 365 backup//EN"]
    lines.append("BEGIN:VEVENT")
    lines.append(f"UID:{e(str(event.get('iCalUId') or event.get('id') or ''))}")
    modified = parse_time(event.get("lastModifiedDateTime") or event.get("createdDateTime"))
    if modified:
        lines.append(f"DTSTAMP:{modified.strftime('%Y%m%dT%H%M%SZ')}")
    start = _utc(event.get("start"), all_day=all_day)
    end = _utc(event.get("end"), all_day=all_day)
    if start:
        lines.append("DTSTART" + start)
    if end:
        lines.append("DTEND" + end)
    if event.get("type") == "exception":
        original = parse_time(event.get("originalStart"))
        if original:
            if all_day:
                lines.append(f"RECURRENCE-ID;VALUE=DATE:{original.strftime('%Y%m%d')}")
            else:
                lines.append(f"RECURRENCE-ID:{original.strftime('%Y%m%dT%H%M%SZ')}")
    rule = rrule(event.get("recurrence")) if event.get("type") == "seriesMaster" else None
    if rule:
        lines.append(rule)
    lines.append(f"SUMMARY:{e(str(event.get('subject') or ''))}")
    location = event.get("location")
    if isinstance(location, dict) and location.get("displayName"):
        lines.append(f"LOCATION:{e(str(location['displayName']))}")
    text = body_text(event.get("body")) or str(event.get("bodyPreview") or "")
    if text:
        lines.append(f"DESCRIPTION:{e(text)}")
    organizer = _person("ORGANIZER", event.get("organizer"))
    if organizer:
        lines.append(organizer)
    for attendee in items(event.get("attendees")):
        if not isinstance(attendee, dict):
            continue
        role = {"required": "REQ-PARTICIPANT", "optional": "OPT-PARTICIPANT"}.get(
            str(attendee.get("type")), "NON-PARTICIPANT"
        )
        partstat = _PARTSTAT.get(str(field(attendee.get("status"), "response")), "NEEDS-ACTION")
        line = _person("ATTENDEE", attendee, f";ROLE={role};PARTSTAT={partstat}")
        if line:
            lines.append(line)
    categories = [str(c) for c in items(event.get("categories"))]
    if categories:
        lines.append("CATEGORIES:" + ",".join(e(c) for c in categories))
    if event.get("isCancelled"):
        lines.append("STATUS:CANCELLED")
    if str(event.get("showAs")) == "free":
        lines.append("TRANSP:TRANSPARENT")
    if str(event.get("sensitivity")) in ("private", "confidential"):
        lines.append("CLASS:PRIVATE")
    if event.get("isReminderOn") and event.get("reminderMinutesBeforeStart") is not None:
        minutes = max(_int(event.get("reminderMinutesBeforeStart"), 0), 0)
        lines += [
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            "DESCRIPTION:Reminder",
            f"TRIGGER:-PT{minutes}M" if minutes else "TRIGGER:PT0M",
            "END:VALARM",
        ]
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return b"".join(fold(line) for line in lines)
