"""Text helpers shared by the renderers: HTML to plain text, line folding."""

from __future__ import annotations

import html
import re
from typing import Any

_TAG = re.compile(r"<[^>]+>")
_BREAKS = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h\d)\s*/?\s*>", re.IGNORECASE)
_DROP = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def items(value: object) -> list[Any]:
    """``value`` if it is a JSON array, else no items (Graph JSON is loosely typed)."""
    return value if isinstance(value, list) else []


def field(value: object, key: str) -> Any:
    """``value[key]`` if ``value`` is a JSON object, else None."""
    return value.get(key) if isinstance(value, dict) else None


def param_value(value: str) -> str:
    """A parameter value or URI: no control characters (they would end the line)."""
    return "".join(c for c in value if c >= " " and c != "\x7f").replace('"', "'")


def html_to_text(content: str) -> str:
    """Readable plain text from an HTML body (tags removed, entities decoded)."""
    content = _DROP.sub("", content)
    content = _BREAKS.sub("\n", content)
    text = html.unescape(_TAG.sub("", content))
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip()


def body_text(body: object) -> str:
    """The text of a Graph ``itemBody`` ({"contentType", "content"})."""
    if not isinstance(body, dict):
        return ""
    content = str(body.get("content") or "")
    if str(body.get("contentType", "")).lower() == "html":
        return html_to_text(content)
    return content.strip()


def fold(line: str) -> bytes:
    """One content line, folded at 75 octets (RFC 5545 §3.1, RFC 6350 §3.2), CRLF-ended."""
    raw = line.encode("utf-8")
    if len(raw) <= 75:
        return raw + b"\r\n"
    out = bytearray()
    start = 0
    limit = 75
    while start < len(raw):
        end = min(start + limit, len(raw))
        # Never split a UTF-8 sequence: back off to a lead byte.
        while end < len(raw) and (raw[end] & 0xC0) == 0x80:
            end -= 1
        if out:
            out += b"\r\n "
        out += raw[start:end]
        start = end
        limit = 74  # continuation lines start with a space
    return bytes(out) + b"\r\n"


def escape_value(value: str) -> str:
    """Escape a TEXT value for vCard and iCalendar."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )
