"""Fuzzing what the Microsoft 365 source does with bytes and JSON from the tenant.

Mail arrives from anyone on the internet, and Graph JSON is only as regular as
the service makes it: MIME splitting must give back every byte in bounded
segments whatever the message, and the vCard, iCalendar and HTML renderers
must render any Graph object without raising, without letting a field break
out of its line (property injection) and, for HTML, without a live script.
``COFFER_FUZZ_EXAMPLES`` sets the number of inputs (docs/fuzzing.md).
"""

from __future__ import annotations

import io
import tracemalloc
from html.parser import HTMLParser
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sources.m365.backup.mimesplit import MAX_HEADERS, split_mime
from sources.m365.render.html import render_thread, sanitize
from sources.m365.render.ical import render_ics
from sources.m365.render.vcard import render_vcard
from tests.fuzzing import FUZZ, bounded, json_values, maybe, record

texts = st.text(max_size=40) | st.sampled_from(
    ["a\rb", "a\nb", "x\r\nEND:VCARD\r\n", "\u2028", ";,\\"]
)
times = st.sampled_from(
    [
        "2024-05-01T10:22:33Z",
        "2024-05-01T10:22:33.1234567",
        "9999-12-31T23:59:59-05:00",
        "9999-12-31T23:59:59",
        "0001-01-01T00:00:00",
        "nope",
        "",
    ]
)


def _j(valid: st.SearchStrategy[Any]) -> Any:
    return maybe(valid, json_values)


emails = st.lists(_j(record({"address": _j(texts), "name": _j(texts)})), max_size=3)
addresses = record(
    {k: _j(texts) for k in ("street", "city", "state", "postalCode", "countryOrRegion")}
)
contacts = record(
    {
        "id": _j(texts),
        "displayName": _j(texts),
        "givenName": _j(texts),
        "surname": _j(texts),
        "middleName": _j(texts),
        "title": _j(texts),
        "generation": _j(texts),
        "nickName": _j(texts),
        "emailAddresses": _j(emails),
        "businessPhones": _j(st.lists(texts, max_size=2)),
        "homePhones": _j(st.lists(texts, max_size=2)),
        "mobilePhone": _j(texts),
        "companyName": _j(texts),
        "department": _j(texts),
        "jobTitle": _j(texts),
        "businessAddress": _j(addresses),
        "homeAddress": _j(addresses),
        "otherAddress": _j(addresses),
        "birthday": _j(times),
        "businessHomePage": _j(texts),
        "categories": _j(st.lists(texts, max_size=2)),
        "personalNotes": _j(texts),
        "lastModifiedDateTime": _j(times),
    }
)
date_times = record({"dateTime": _j(times), "timeZone": _j(st.just("UTC"))})
people = record({"emailAddress": _j(record({"address": _j(texts), "name": _j(texts)}))})
recurrences = record(
    {
        "pattern": _j(
            record(
                {
                    "type": _j(
                        st.sampled_from(
                            [
                                "daily",
                                "weekly",
                                "absoluteMonthly",
                                "relativeMonthly",
                                "absoluteYearly",
                                "relativeYearly",
                                "other",
                            ]
                        )
                    ),
                    "interval": _j(st.integers(0, 99)),
                    "daysOfWeek": _j(
                        st.lists(st.sampled_from(["monday", "sunday", "x"]), max_size=3)
                    ),
                    "index": _j(st.sampled_from(["first", "last", "fifth"])),
                    "dayOfMonth": _j(st.integers(0, 31)),
                    "month": _j(st.integers(0, 12)),
                    "firstDayOfWeek": _j(st.sampled_from(["monday", "sunday"])),
                }
            )
        ),
        "range": _j(
            record(
                {
                    "type": _j(st.sampled_from(["endDate", "numbered", "noEnd"])),
                    "endDate": _j(st.sampled_from(["2025-01-01", "x"])),
                    "numberOfOccurrences": _j(st.integers(0, 50)),
                }
            )
        ),
    }
)
events = record(
    {
        "id": _j(texts),
        "iCalUId": _j(texts),
        "subject": _j(texts),
        "type": _j(st.sampled_from(["singleInstance", "seriesMaster", "exception", "occurrence"])),
        "isAllDay": _j(st.booleans()),
        "start": _j(date_times),
        "end": _j(date_times),
        "originalStart": _j(times),
        "lastModifiedDateTime": _j(times),
        "createdDateTime": _j(times),
        "recurrence": _j(recurrences),
        "location": _j(record({"displayName": _j(texts)})),
        "body": _j(
            record({"contentType": _j(st.sampled_from(["html", "text"])), "content": _j(texts)})
        ),
        "bodyPreview": _j(texts),
        "organizer": _j(people),
        "attendees": _j(
            st.lists(
                record(
                    {
                        "type": _j(st.sampled_from(["required", "optional", "resource"])),
                        "status": _j(
                            record({"response": _j(st.sampled_from(["accepted", "none"]))})
                        ),
                        "emailAddress": _j(record({"address": _j(texts), "name": _j(texts)})),
                    }
                ),
                max_size=3,
            )
        ),
        "categories": _j(st.lists(texts, max_size=2)),
        "isCancelled": _j(st.booleans()),
        "showAs": _j(st.sampled_from(["free", "busy"])),
        "sensitivity": _j(st.sampled_from(["private", "normal"])),
        "isReminderOn": _j(st.booleans()),
        "reminderMinutesBeforeStart": _j(st.integers(0, 10_000)),
    }
)


def _content_lines_are_whole(rendered: bytes) -> None:
    """Every line ends in CRLF, is at most 75 octets, and no bare CR or LF splits one."""
    assert rendered.endswith(b"\r\n")
    for line in rendered[:-2].split(b"\r\n"):
        assert b"\r" not in line, line
        assert b"\n" not in line, line
        assert len(line) <= 75, line


@FUZZ
@given(contact=contacts | json_values.filter(lambda v: isinstance(v, dict)))
def test_fuzz_vcard(contact: dict[str, Any]) -> None:
    rendered = b""

    def render() -> None:
        nonlocal rendered
        rendered = render_vcard(contact)

    bounded("vcard", render, ())
    _content_lines_are_whole(rendered)
    unfolded = rendered.replace(b"\r\n ", b"")
    assert unfolded.count(b"\r\nEND:VCARD\r\n") == 1


@FUZZ
@given(event=events | json_values.filter(lambda v: isinstance(v, dict)))
def test_fuzz_ical(event: dict[str, Any]) -> None:
    rendered = b""

    def render() -> None:
        nonlocal rendered
        rendered = render_ics(event)

    bounded("ical", render, ())
    _content_lines_are_whole(rendered)
    unfolded = rendered.replace(b"\r\n ", b"")
    assert unfolded.count(b"\r\nEND:VEVENT\r\n") == 1


# Fragments a sanitizer bypass is made of.
html_fragments = st.lists(
    st.sampled_from(
        [
            "<",
            ">",
            "/",
            "script",
            "scr",
            "ipt",
            "iframe",
            " ",
            "on",
            "click",
            "=",
            '"',
            "'",
            "javascript:",
            "href",
            "src",
            "a",
            "x",
            "<script>",
            "</script>",
            "<img ",
            "<a ",
        ]
    ),
    max_size=16,
).map("".join)
messages = record(
    {
        "subject": _j(texts),
        "createdDateTime": _j(times),
        "from": _j(record({"user": _j(record({"displayName": _j(texts)}))})),
        "body": _j(
            record(
                {
                    "contentType": _j(st.sampled_from(["html", "text"])),
                    "content": _j(html_fragments | texts),
                }
            )
        ),
        "deletedDateTime": _j(times),
        "lastEditedDateTime": _j(times),
    }
)

_DANGEROUS_TAGS = {
    "script",
    "iframe",
    "object",
    "embed",
    "frame",
    "frameset",
    "form",
    "meta",
    "base",
    "link",
    "style",
    "noscript",
}


class _Live(HTMLParser):
    """What would still run in a browser, found the way a browser reads the markup
    (an HTML parser, not a pattern over the text): a dangerous element, an event
    handler attribute, or a javascript: URL. Text that merely looks like an
    attribute (``"onscript=`` outside a tag) is inert and not counted."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag.lower() in _DANGEROUS_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.lower().startswith("on"):
                self.found.append(f"{tag} {name}=")
            scheme = (value or "").strip().lower().replace("\t", "").replace("\n", "")
            if name.lower() in ("href", "src", "action", "formaction") and scheme.startswith(
                "javascript:"
            ):
                self.found.append(f"{tag} {name}=javascript:")

    handle_startendtag = handle_starttag


def live(markup: str) -> list[str]:
    parser = _Live()
    parser.feed(markup)
    parser.close()
    return parser.found


@FUZZ
@given(root=messages, replies=st.lists(messages, max_size=2), channel=texts)
def test_fuzz_teams_html(root: dict[str, Any], replies: list[dict[str, Any]], channel: str) -> None:
    rendered = b""

    def render() -> None:
        nonlocal rendered
        rendered = render_thread(root, replies, channel)

    bounded("teams html", render, ())
    body = rendered.decode().split("</head>", 1)[1]
    assert live(body) == [], body


@FUZZ
@given(content=html_fragments)
def test_fuzz_html_sanitizer(content: str) -> None:
    cleaned = sanitize(content)
    assert live(cleaned) == [], cleaned


boundaries = st.sampled_from([b"b1", b"XyZ", b"=_part"])
mime_lines = st.one_of(
    boundaries.map(lambda b: b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n'),
    boundaries.map(lambda b: b"--" + b + b"\r\n"),
    boundaries.map(lambda b: b"--" + b + b"--\r\n"),
    st.sampled_from([b"\r\n", b"\n", b"Subject: x\r\n", b" folded\r\n", b"--\r\n"]),
    st.binary(max_size=300),
    st.integers(1, 3000).map(lambda n: b"A" * n + b"\r\n"),
)
mime_messages = st.lists(mime_lines, max_size=30).map(b"".join)


@FUZZ
@given(message=mime_messages, min_body=st.integers(1, 200), piece=st.integers(1, 500))
def test_fuzz_mime_split(message: bytes, min_body: int, piece: int) -> None:
    segments: list[bytes] = []

    def split() -> None:
        segments.extend(split_mime(io.BytesIO(message), min_body=min_body, piece=piece))

    bounded("mime split", split, ())
    assert b"".join(segments) == message
    # Bounded segments: a body piece, or glue of under a piece plus a small
    # body plus one line (each at most a piece).
    assert all(len(segment) <= 3 * piece for segment in segments)


def test_mime_split_memory_is_bounded_by_the_piece_not_the_message() -> None:
    """A hostile message with no line breaks, or headers that never end."""
    piece = 32 * 1024
    for message in (b"x" * (4 * 1024 * 1024), b"Subject: a\r\n" * (350 * 1024)):
        stream = io.BytesIO(message)
        tracemalloc.start()
        total = 0
        try:
            for segment in split_mime(stream, min_body=1024, piece=piece):
                total += len(segment)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert total == len(message)
        # The header block searched for a boundary is capped, the rest is pieces.
        assert peak < MAX_HEADERS + 16 * piece, peak
