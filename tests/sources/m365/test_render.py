"""Renderings (sources/m365/render/): vCard and iCalendar parse, thread HTML runs nothing."""

from __future__ import annotations

from email import message_from_bytes

from sources.m365.render.html import render_thread, sanitize
from sources.m365.render.ical import render_ics, rrule
from sources.m365.render.vcard import render_vcard


def test_vcard_and_ical_renderings_parse() -> None:
    card = render_vcard(
        {
            "id": "c1",
            "displayName": "Zoë O'Brien; Jr",
            "givenName": "Zoë",
            "surname": "O'Brien",
            "emailAddresses": [{"address": "zoe@example.com"}],
            "businessPhones": ["+1 555"],
            "personalNotes": "line one\nline two, with comma" + "x" * 100,
        }
    )
    text = card.decode()
    assert text.startswith("BEGIN:VCARD\r\nVERSION:3.0\r\n")
    assert "FN:Zoë O'Brien\\; Jr" in text
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    event = {
        "id": "e1",
        "iCalUId": "uid-1",
        "subject": "Weekly",
        "type": "seriesMaster",
        "start": {"dateTime": "2024-05-01T10:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2024-05-01T10:30:00.0000000", "timeZone": "UTC"},
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "friday"]},
            "range": {"type": "endDate", "startDate": "2024-05-01", "endDate": "2024-08-01"},
        },
        "attendees": [
            {
                "type": "required",
                "status": {"response": "accepted"},
                "emailAddress": {"address": "a@x"},
            }
        ],
    }
    ics = render_ics(event).decode()
    assert "DTSTART:20240501T100000Z" in ics
    assert "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR;UNTIL=20240801T235959Z" in ics
    assert "PARTSTAT=ACCEPTED" in ics
    assert (
        rrule(
            {"pattern": {"type": "daily"}, "range": {"type": "numbered", "numberOfOccurrences": 5}}
        )
        == "RRULE:FREQ=DAILY;COUNT=5"
    )


def test_thread_html_runs_nothing() -> None:
    hostile = '<p onclick="steal()">hi</p><script>alert(1)</script><a href="javascript:x()">l</a>'
    assert "script" not in sanitize(hostile)
    assert "onclick" not in sanitize(hostile)
    assert "javascript:" not in sanitize(hostile)
    page = render_thread(
        {"id": "1", "body": {"contentType": "html", "content": hostile}, "from": {}},
        [{"id": "2", "body": {"contentType": "text", "content": "<b>not html</b>"}}],
        "General",
    ).decode()
    assert "Content-Security-Policy" in page
    assert "&lt;b&gt;not html&lt;/b&gt;" in page
    assert message_from_bytes(b"Subject: x\r\n\r\n") is not None
