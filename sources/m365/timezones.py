"""The time zone of an event, and its times in that zone.

Graph names an event's zone in ``originalStartTimeZone`` / ``originalEndTimeZone``
(resources/event.md): a Windows name ("W. Europe Standard Time"), an IANA name
("Europe/Berlin"), "UTC", or "tzone://Microsoft/Custom" for a legacy custom zone
of desktop Outlook. A recurring event repeats at the same wall-clock time in
that zone, so one restored pinned to UTC moves by an hour across each daylight
saving change; restore sends the start and end in the event's own zone.

Windows names are mapped to IANA zones with tzlocal's table (generated from
Unicode CLDR's windowsZones.xml); the zone rules come from the system's tz
database (zoneinfo). Pure functions, thread-safe.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

from sources.m365.names import parse_time

_UTC_NAMES = {"utc", "etc/utc", "z", "gmt", "tzone://microsoft/utc", "coordinated universal time"}
_WINDOWS = {name.casefold(): iana for name, iana in win_tz.items()}
_GRAPH_FORMAT = "%Y-%m-%dT%H:%M:%S.0000000"


def zone(name: str | None) -> tzinfo | None:
    """The zone ``name`` means (Windows or IANA name), None when unknown (a custom
    zone, or a name neither table knows)."""
    text = (name or "").strip()
    if not text:
        return None
    if text.casefold() in _UTC_NAMES:
        return UTC
    key = _WINDOWS.get(text.casefold(), text)
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def instant(value: Any) -> datetime | None:
    """A Graph dateTimeTimeZone as an aware UTC datetime (None if unreadable or in
    a zone that is not known)."""
    if not isinstance(value, dict) or not value.get("dateTime"):
        return None
    moment = parse_time(str(value["dateTime"]))
    where = zone(str(value.get("timeZone") or "UTC"))
    if moment is None or where is None:
        return None
    return moment.replace(tzinfo=None).replace(tzinfo=where).astimezone(UTC)


def in_zone(value: Any, name: str | None) -> dict[str, str] | None:
    """The dateTimeTimeZone ``value`` as the wall-clock time in zone ``name``, named
    as Graph named it; None when either cannot be read (the caller keeps ``value``)."""
    moment = instant(value)
    where = zone(name)
    if moment is None or where is None or not name:
        return None
    return {"dateTime": moment.astimezone(where).strftime(_GRAPH_FORMAT), "timeZone": name}


def own_zone_times(event: dict[str, Any]) -> dict[str, Any]:
    """``start`` and ``end`` of ``event`` in its own zones (originalStartTimeZone,
    originalEndTimeZone); those that cannot be converted are left out."""
    out: dict[str, Any] = {}
    for field, zone_field in (("start", "originalStartTimeZone"), ("end", "originalEndTimeZone")):
        local = in_zone(event.get(field), event.get(zone_field))
        if local is not None:
            out[field] = local
    return out
