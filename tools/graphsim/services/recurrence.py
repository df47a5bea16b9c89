"""Expansion of Outlook recurrence patterns into occurrences.

Source: api-reference/v1.0/resources/patternedrecurrence.md, recurrencepattern.md
(daily, weekly, absoluteMonthly, relativeMonthly, absoluteYearly, relativeYearly; interval,
daysOfWeek, dayOfMonth, month, index, firstDayOfWeek) and recurrencerange.md (endDate,
noEnd, numbered; startDate, endDate, numberOfOccurrences, recurrenceTimeZone).

Times are interpreted in the event's time zone (IANA names, "UTC", or the common Windows
names listed in WINDOWS_ZONES) and returned in UTC. Occurrence ids are derived from the
series master id and the occurrence's original start date, so they are stable.
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..httpcore import parse_iso

DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
INDEX = {"first": 0, "second": 1, "third": 2, "fourth": 3, "last": -1}
WINDOWS_ZONES = {
    "utc": "UTC",
    "pacific standard time": "America/Los_Angeles",
    "mountain standard time": "America/Denver",
    "central standard time": "America/Chicago",
    "eastern standard time": "America/New_York",
    "gmt standard time": "Europe/London",
    "w. europe standard time": "Europe/Berlin",
    "romance standard time": "Europe/Paris",
    "central europe standard time": "Europe/Budapest",
    "tokyo standard time": "Asia/Tokyo",
    "india standard time": "Asia/Kolkata",
    "aus eastern standard time": "Australia/Sydney",
}
MAX_OCCURRENCES = 5000


def zone(name: str | None) -> dt.tzinfo:
    if not name:
        return dt.UTC
    key = WINDOWS_ZONES.get(name.lower(), name)
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def parse_dtz(value: dict[str, Any]) -> dt.datetime:
    """A dateTimeTimeZone as an aware datetime."""
    raw = parse_iso(str(value.get("dateTime", "")))
    naive = raw.replace(tzinfo=None)
    return naive.replace(tzinfo=zone(str(value.get("timeZone") or "UTC")))


def to_dtz(value: dt.datetime, tz_name: str = "UTC") -> dict[str, str]:
    local = value.astimezone(zone(tz_name))
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": tz_name}


def occurrence_id(master_id: str, original_date: dt.date) -> str:
    raw = f"{master_id}|{original_date.isoformat()}".encode()
    return "AAMkOcc" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_occurrence_id(value: str) -> tuple[str, dt.date] | None:
    if not value.startswith("AAMkOcc"):
        return None
    body = value[len("AAMkOcc") :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        master, _, day = raw.rpartition("|")
        return master, dt.date.fromisoformat(day)
    except (ValueError, UnicodeDecodeError):
        return None


def _month_add(year: int, month: int, n: int) -> tuple[int, int]:
    total = year * 12 + (month - 1) + n
    return total // 12, total % 12 + 1


def _nth_weekday(year: int, month: int, weekdays: list[int], index: int) -> dt.date | None:
    days = [
        dt.date(year, month, d)
        for d in range(1, calendar.monthrange(year, month)[1] + 1)
        if dt.date(year, month, d).weekday() in weekdays
    ]
    if not days:
        return None
    try:
        return days[index]
    except IndexError:
        return None


def _dates(pattern: dict[str, Any], start: dt.date) -> Iterator[dt.date]:
    """Candidate dates from the range start, in order (unbounded)."""
    kind = str(pattern.get("type", "daily"))
    interval = max(1, int(pattern.get("interval") or 1))
    weekdays = [DAYS.index(d.lower()) for d in pattern.get("daysOfWeek") or [] if d.lower() in DAYS]
    if kind == "daily":
        day = start
        while True:
            yield day
            day += dt.timedelta(days=interval)
    elif kind == "weekly":
        first = DAYS.index(str(pattern.get("firstDayOfWeek") or "sunday").lower())
        week_start = start - dt.timedelta(days=(start.weekday() - first) % 7)
        weekdays = weekdays or [start.weekday()]
        while True:
            for offset in range(7):
                day = week_start + dt.timedelta(days=offset)
                if day >= start and day.weekday() in weekdays:
                    yield day
            week_start += dt.timedelta(weeks=interval)
    elif kind in ("absoluteMonthly", "relativeMonthly"):
        year, month = start.year, start.month
        while True:
            if kind == "absoluteMonthly":
                dom = int(pattern.get("dayOfMonth") or start.day)
                if dom <= calendar.monthrange(year, month)[1]:
                    day = dt.date(year, month, dom)
                    if day >= start:
                        yield day
            else:
                found = _nth_weekday(
                    year,
                    month,
                    weekdays or [start.weekday()],
                    INDEX.get(str(pattern.get("index") or "first"), 0),
                )
                if found is not None and found >= start:
                    yield found
            year, month = _month_add(year, month, interval)
    elif kind in ("absoluteYearly", "relativeYearly"):
        year = start.year
        month = int(pattern.get("month") or start.month)
        while True:
            if kind == "absoluteYearly":
                dom = int(pattern.get("dayOfMonth") or start.day)
                if dom <= calendar.monthrange(year, month)[1]:
                    day = dt.date(year, month, dom)
                    if day >= start:
                        yield day
            else:
                found = _nth_weekday(
                    year,
                    month,
                    weekdays or [start.weekday()],
                    INDEX.get(str(pattern.get("index") or "first"), 0),
                )
                if found is not None and found >= start:
                    yield found
            year += interval
    else:
        yield start


def occurrences(
    master: dict[str, Any], window_start: dt.datetime, window_end: dt.datetime
) -> list[tuple[dt.date, dt.datetime, dt.datetime]]:
    """(original date, start, end) of each occurrence overlapping [window_start, window_end)."""
    rec = master.get("recurrence") or {}
    pattern = rec.get("pattern") or {}
    rng = rec.get("range") or {}
    start = parse_dtz(master["start"])
    end = parse_dtz(master["end"])
    duration = end - start
    tz = start.tzinfo or dt.UTC
    range_start = dt.date.fromisoformat(str(rng.get("startDate") or start.date().isoformat()))
    range_end = (
        dt.date.fromisoformat(str(rng["endDate"]))
        if rng.get("type") == "endDate" and rng.get("endDate")
        else None
    )
    limit = int(rng.get("numberOfOccurrences") or 0) if rng.get("type") == "numbered" else 0
    out: list[tuple[dt.date, dt.datetime, dt.datetime]] = []
    for count, day in enumerate(_dates(pattern, range_start), start=1):
        if range_end is not None and day > range_end:
            break
        if (limit and count > limit) or count > MAX_OCCURRENCES:
            break
        occ_start = dt.datetime.combine(day, start.timetz().replace(tzinfo=None)).replace(tzinfo=tz)
        occ_end = occ_start + duration
        if occ_start >= window_end:
            break
        if occ_end > window_start:
            out.append((day, occ_start.astimezone(dt.UTC), occ_end.astimezone(dt.UTC)))
    return out
