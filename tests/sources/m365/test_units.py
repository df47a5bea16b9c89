"""Unit tests of the Microsoft 365 source's pure parts: MIME cutting, names,
settings, renderings, error classification and the throttling gates."""

from __future__ import annotations

import io
import threading
import time
from email import message_from_bytes
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from sources.m365.backup.mimesplit import split_mime
from sources.m365.graph.client import error_for
from sources.m365.graph.errors import (
    AccessDenied,
    ItemGone,
    M365ConfigError,
    MailboxUnavailable,
    ResyncRequired,
)
from sources.m365.graph.throttle import Gates, Meter, Resource
from sources.m365.names import item_name, safe_name, stamp
from sources.m365.render.html import render_thread, sanitize
from sources.m365.render.ical import render_ics, rrule
from sources.m365.render.vcard import render_vcard
from sources.m365.settings import from_table, parse_size

ATTACHMENT = (b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=" * 3 + b"\r\n") * 400


def _message(headers: bytes, text: bytes) -> bytes:
    return (
        headers + b'Content-Type: multipart/mixed; boundary="=_b1"\r\n\r\n'
        b"preamble\r\n--=_b1\r\nContent-Type: text/plain\r\n\r\n" + text + b"\r\n"
        b"--=_b1\r\nContent-Type: application/pdf; name=a.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + ATTACHMENT + b"--=_b1--\r\nepilogue\r\n"
    )


def test_split_mime_isolates_the_attachment_whatever_surrounds_it() -> None:
    one = _message(b"Subject: one\r\nTo: a@x\r\n", b"Hello")
    two = _message(b"Subject: another one\r\nTo: b@y\r\nX-Spam: 1\r\n", b"Other text")
    parts_one = list(split_mime(io.BytesIO(one)))
    parts_two = list(split_mime(io.BytesIO(two)))
    assert b"".join(parts_one) == one
    assert b"".join(parts_two) == two
    assert ATTACHMENT in parts_one
    assert ATTACHMENT in parts_two


def test_split_mime_cuts_big_bodies_at_fixed_offsets() -> None:
    body = bytes(range(256)) * 1000 + b"\r\n"
    data = b"Subject: x\r\n\r\n" + body
    parts = list(split_mime(io.BytesIO(data), piece=4096))
    assert b"".join(parts) == data
    assert all(len(p) <= 4096 + 300 for p in parts)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"Content-Type: multipart/mixed; boundary=zz\r\n",
                b'Content-Type: multipart/alternative;\r\n boundary="yy"\r\n',
                b"\r\n",
                b"\n",
                b"--zz\r\n",
                b"--zz--\r\n",
                b"--yy\n",
                b"--yy--\n",
                b"text line\r\n",
                b"x" * 9000 + b"\r\n",
                b"no newline at the end",
                b"\x00\xff binary\r\n",
            ]
        ),
        max_size=40,
    )
)
def test_split_mime_is_lossless_on_any_input(lines: list[bytes]) -> None:
    data = b"".join(lines)
    parts = list(split_mime(io.BytesIO(data), min_body=1024, piece=4096))
    assert b"".join(parts) == data
    assert all(parts)


def test_safe_name_is_reversible_and_never_climbs_out() -> None:
    for hostile in ("..", ".", "a/b", "50%", "nul\x00", "tab\tname", "", "-rf"):
        name = safe_name(hostile)
        assert "/" not in name
        assert "\x00" not in name
        assert name not in (".", "..", "")
    assert safe_name("a/b") != safe_name("a%2Fb")
    long = safe_name("ü" * 200 + ".txt")
    assert len(long.encode()) <= 255
    assert safe_name("ü" * 200 + ".txt") != safe_name("ü" * 201 + ".txt")


def test_item_names_are_stable_and_distinct() -> None:
    a = item_name("2024-05-01T10:22:33Z", "Re: hello/world", "AAMk1", ".eml")
    b = item_name("2024-05-01T10:22:33Z", "Re: hello/world", "AAMk2", ".eml")
    assert a.startswith("2024-05-01T10-22-33Z Re: hello%2Fworld [")
    assert a.endswith("].eml")
    assert a != b
    assert a == item_name("2024-05-01T10:22:33.0000000Z", "Re: hello/world", "AAMk1", ".eml")
    assert len(item_name(None, "x" * 1000, "id", ".eml").encode()) <= 255
    assert stamp("nonsense") == "0000-00-00T00-00-00Z"


def test_settings_defaults_and_checks(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s3cret\n")
    table = {"tenant_id": "t", "client_id": "c", "client_secret_file": "secret.txt"}
    settings_ = from_table(table, tmp_path)
    assert settings_.connection.credential == "secret"
    assert settings_.connection.read_secret() == "s3cret"
    assert "s3cret" not in repr(settings_)
    assert settings_.selection.user_selected("anyone@x", in_groups=False)
    assert settings_.selection.services_for("a@x") == ("mail", "contacts", "calendar", "onedrive")
    assert settings_.connection.graph_url == "https://graph.microsoft.com/v1.0"
    narrowed = from_table(
        {
            **table,
            "users": ["*@sales.contoso.com"],
            "exclude_users": ["bot*"],
            "services": ["mail", "teams"],
            "user_services": {"ceo@*": ["mail", "onedrive"]},
            "exclude_folders": ["Junk Email"],
            "max_item_size": "10M",
        },
        tmp_path,
    )
    sel = narrowed.selection
    assert sel.user_selected("ann@sales.contoso.com", in_groups=False)
    assert not sel.user_selected("bot1@sales.contoso.com", in_groups=False)
    assert not sel.user_selected("bob@contoso.com", in_groups=False)
    assert sel.services_for("ann@x") == ("mail",)
    assert sel.services_for("ceo@x") == ("mail", "onedrive")
    assert sel.folder_excluded("junk email")
    assert sel.max_item_size == 10 * 1024 * 1024
    assert parse_size("2 GiB") == 2 * 1024**3
    for bad in (
        {**table, "services": ["fax"]},
        {**table, "authority": "http://login"},
        {**table, "surprise": 1},
        {"tenant_id": "t", "client_id": "c"},
        {**table, "parallel_owners": 0},
    ):
        with pytest.raises(M365ConfigError):
            from_table(bad, tmp_path)


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


def _response(status: int, body: str, headers: dict[str, str] | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = body.encode()
    resp.headers.update(headers or {})
    resp.url = "https://graph.example/v1.0/x"
    return resp


def test_error_codes_are_classified_case_insensitively() -> None:
    gone = error_for(
        _response(
            410,
            '{"error": {"code": "resyncRequired", "message": "m", "innererror": '
            '{"code": "resyncChangesApplyDifferences"}}}',
            {"Location": "https://graph.example/next"},
        )
    )
    assert isinstance(gone, ResyncRequired)
    assert gone.location == "https://graph.example/next"
    assert gone.has_code("RESYNCCHANGESAPPLYDIFFERENCES")
    nomail = error_for(_response(404, '{"error": {"code": "mailboxnotenabledforrestapi"}}'))
    assert isinstance(nomail, MailboxUnavailable)
    assert isinstance(
        error_for(_response(404, '{"error": {"code": "ErrorItemNotFound"}}')), ItemGone
    )
    assert isinstance(error_for(_response(403, '{"error": {"code": "Forbidden"}}')), AccessDenied)
    assert isinstance(
        error_for(_response(400, '{"error": {"code": "SyncStateNotFound"}}')), ResyncRequired
    )


def test_gates_pause_only_the_throttled_scope() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    gates = Gates(clock=lambda: now[0], sleep=sleep)
    alice = Resource.mailbox("alice", Meter())
    bob = Resource.mailbox("bob")
    gates.pause("mailbox:alice", 3.0)
    with gates.admit(bob):
        pass
    assert slept == []
    with gates.admit(alice):
        pass
    assert sum(slept) == pytest.approx(3.0)
    assert alice.meters[0].throttled_seconds == pytest.approx(3.0)
    gates.pause("app", 1.0)
    with gates.admit(bob):
        pass
    assert sum(slept) == pytest.approx(4.0)


def test_gates_allow_four_requests_per_mailbox() -> None:
    gates = Gates()
    mailbox = Resource.mailbox("m")
    inside = 0
    most = 0
    lock = threading.Lock()
    # The first requests stay inside until four are: four must get in at
    # once, and a fifth must not, however the threads are scheduled.
    four_inside = threading.Event()

    def request() -> None:
        nonlocal inside, most
        with gates.admit(mailbox):
            with lock:
                inside += 1
                most = max(most, inside)
                if inside == 4:
                    four_inside.set()
            four_inside.wait(timeout=20)
            time.sleep(0.05)  # a fifth let in now would be counted
            with lock:
                inside -= 1

    threads = [threading.Thread(target=request) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 4
