"""Event time zones as Graph names them (timezones.py): Windows and IANA names, UTC
spellings, and zones that cannot be read; wall-clock times across DST."""

from __future__ import annotations

from datetime import UTC

from sources.m365.timezones import in_zone, instant, own_zone_times, zone


def test_zone_names_graph_uses() -> None:
    assert str(zone("W. Europe Standard Time")) == "Europe/Berlin"
    assert str(zone("eastern standard time")) == "America/New_York"
    assert str(zone("Europe/Berlin")) == "Europe/Berlin"
    for name in ("UTC", "tzone://Microsoft/Utc", "Etc/UTC"):
        assert zone(name) is UTC
    for name in ("tzone://Microsoft/Custom", "Customized Time Zone", "", None):
        assert zone(name) is None


def test_wall_clock_in_the_events_zone_across_dst() -> None:
    winter = {"dateTime": "2027-03-22T08:00:00.0000000", "timeZone": "UTC"}
    summer = {"dateTime": "2027-03-29T07:00:00.0000000", "timeZone": "UTC"}
    for value in (winter, summer):
        local = in_zone(value, "W. Europe Standard Time")
        assert local is not None
        assert local["dateTime"].endswith("T09:00:00.0000000")
        assert local["timeZone"] == "W. Europe Standard Time"
        assert instant(local) == instant(value)
    assert in_zone(winter, "tzone://Microsoft/Custom") is None
    event = {
        "start": winter,
        "end": {"dateTime": "2027-03-22T09:00:00.0000000", "timeZone": "UTC"},
        "originalStartTimeZone": "Eastern Standard Time",
        "originalEndTimeZone": "tzone://Microsoft/Custom",
    }
    assert own_zone_times(event) == {
        "start": {"dateTime": "2027-03-22T04:00:00.0000000", "timeZone": "Eastern Standard Time"}
    }
