"""Previews of stored items for the browser: a mail's headers and sanitised body, a
contact's or an event's main fields, a text file's start.

Mail HTML goes through nh3 (the Ammonia sanitizer): scripts, styles, frames,
forms, event handlers and ``javascript:`` URLs are removed by its allow-list,
and every ``src``-like attribute that is not an inline ``data:image/`` URL is
dropped, so no remote image, tracker or font is ever fetched. The page that
shows it also forbids scripts and remote loads by its Content-Security-Policy
and an iframe sandbox: three independent layers.
"""

from __future__ import annotations

import email
import email.policy
import json
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from sources.m365.render.html import sanitize

MAX_PREVIEW_BYTES = 25 * 1024 * 1024
MAX_TEXT_PREVIEW = 256 * 1024

# The preview frame's own policy: nothing may load but inline images.
PREVIEW_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)


def sanitize_mail_html(content: str) -> str:
    """``content`` with everything active or remote removed (see the module docstring):
    the same nh3 allow-list as the Teams and group pages of the backup."""
    return sanitize(content)


@dataclass
class MailPreview:
    subject: str
    sender: str
    to: str
    cc: str
    date: str
    html: str | None  # sanitised
    text: str | None
    attachments: list[tuple[str, int]] = field(default_factory=list)


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except (ValueError, TypeError, IndexError):  # malformed header: show it raw
        value = message.get_all(name, [""])[0] if message.get_all(name) else ""
    return str(value or "")


def _decoded(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def mail_preview(raw: bytes) -> MailPreview:
    """Parse a stored .eml. Never raises on malformed mail (shows what it can)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    attachments = []
    for part in message.iter_attachments():
        if isinstance(part, EmailMessage):
            payload = part.get_payload(decode=True)
            size = len(payload) if isinstance(payload, bytes) else 0
            attachments.append((str(part.get_filename() or "(unnamed)"), size))
    return MailPreview(
        subject=_header(message, "subject"),
        sender=_header(message, "from"),
        to=_header(message, "to"),
        cc=_header(message, "cc"),
        date=_header(message, "date"),
        html=sanitize_mail_html(_decoded(html_part))
        if isinstance(html_part, EmailMessage)
        else None,
        text=_decoded(text_part) if isinstance(text_part, EmailMessage) else None,
        attachments=attachments,
    )


def _first(items: Any, key: str) -> str:
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return str(items[0].get(key) or "")
    return ""


def graph_fields(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The fields worth showing of a contact's or an event's Graph JSON."""
    rows: list[tuple[str, str]] = []

    def add(label: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            rows.append((label, str(value)))

    if "start" in data or "organizer" in data:  # an event
        add("Subject", data.get("subject"))
        add("Start", (data.get("start") or {}).get("dateTime"))
        add("End", (data.get("end") or {}).get("dateTime"))
        add("Location", (data.get("location") or {}).get("displayName"))
        add("Organizer", ((data.get("organizer") or {}).get("emailAddress") or {}).get("address"))
        attendees = [
            str((a.get("emailAddress") or {}).get("address") or "")
            for a in data.get("attendees") or []
            if isinstance(a, dict)
        ]
        add("Attendees", ", ".join(attendees))
        add("Recurrence", json.dumps(data["recurrence"]) if data.get("recurrence") else None)
        body = data.get("body") or {}
        if isinstance(body, dict) and body.get("contentType", "").lower() == "text":
            add("Body", body.get("content"))
        return rows
    add("Name", data.get("displayName"))
    add("Company", data.get("companyName"))
    add("Job title", data.get("jobTitle"))
    emails = [
        str(e.get("address")) for e in data.get("emailAddresses") or [] if isinstance(e, dict)
    ]
    add("E-mail", ", ".join(emails))
    add("Mobile", data.get("mobilePhone"))
    add("Business phone", ", ".join(data.get("businessPhones") or []))
    add("Home phone", ", ".join(data.get("homePhones") or []))
    add("Birthday", data.get("birthday"))
    add("Notes", data.get("personalNotes"))
    return rows


def text_preview(raw: bytes) -> str | None:
    """The start of a file as text, or None when it is not text."""
    head = raw[:MAX_TEXT_PREVIEW]
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start > len(head) - 4:  # a character cut at the preview's end
            return head[: exc.start].decode("utf-8")
        return None
