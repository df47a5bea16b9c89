"""Names in the snapshot tree for things from Microsoft 365 (docs/layout.md).

Names from Microsoft 365 are untrusted. Every path component made here is a
valid Linux file name that cannot climb out of its directory:

- :func:`safe_name` keeps a name readable and reversible (percent-encoding
  ``%``, ``/``, NUL and control characters; ``.`` and ``..`` encoded), so two
  distinct names never collide; a name over 255 bytes is cut and given a hash
  suffix (still distinct, no longer reversible). The original name is always
  kept in the item's metadata.
- :func:`item_name` builds ``<UTC time> <title> [<short id>].<ext>`` for items
  that have no name of their own (messages, events, contacts, posts): the
  title is cleaned and shortened, and the short ID (from the Graph ID) keeps
  names distinct.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from blake3 import blake3

from store import safe_component

_SPACES = re.compile(r"\s+")
TITLE_BYTES = 120
NO_TIME = "0000-00-00T00-00-00Z"


def safe_name(text: str) -> str:
    """``text`` as one safe, reversible path component (the engine's rule)."""
    return safe_component(text)


def short_id(graph_id: str, length: int = 8) -> str:
    """A short, stable hex tag of a Graph ID (IDs themselves are long and may hold '/')."""
    return blake3(graph_id.encode("utf-8", "surrogatepass")).hexdigest(length=length // 2 or 1)


def clean_title(text: str | None, max_bytes: int = TITLE_BYTES, default: str = "(untitled)") -> str:
    """A one-line title: control characters and runs of blanks become one space,
    cut at ``max_bytes`` of UTF-8 on a character boundary."""
    text = "".join(" " if ord(ch) < 0x20 or ord(ch) == 0x7F else ch for ch in (text or ""))
    text = _SPACES.sub(" ", text).strip()
    if not text:
        return default
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        text = raw[:max_bytes].decode("utf-8", "ignore").rstrip() + "…"
    return text


def parse_time(value: str | None) -> datetime | None:
    """A Graph timestamp (``2024-05-01T10:22:33Z``, with or without fraction or
    offset) as an aware UTC datetime, or None."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if match:
        # Python before 3.11.? rejects 7-digit fractions; keep microseconds.
        fraction = (match.group(2) or "")[:7]
        text = match.group(1) + fraction + (match.group(3) or "")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None  # year 1 or 9999 with an offset (found by fuzzing)


def stamp(value: str | None) -> str:
    """``2024-05-01T10-22-33Z`` (sortable, no colons) for a Graph timestamp."""
    parsed = parse_time(value)
    return parsed.strftime("%Y-%m-%dT%H-%M-%SZ") if parsed else NO_TIME


def time_ns(value: str | None) -> int:
    """Nanoseconds since the epoch for a Graph timestamp (0 if absent or unreadable)."""
    parsed = parse_time(value)
    if parsed is None:
        return 0
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000


def item_name(when: str | None, title: str | None, graph_id: str, ext: str, id_len: int = 8) -> str:
    """``<UTC time> <title> [<short id>]<ext>`` as one safe component."""
    return safe_name(f"{stamp(when)} {clean_title(title)} [{short_id(graph_id, id_len)}]{ext}")


def titled_name(title: str | None, graph_id: str, ext: str = "", id_len: int = 8) -> str:
    """``<title> [<short id>]<ext>`` as one safe component."""
    return safe_name(f"{clean_title(title)} [{short_id(graph_id, id_len)}]{ext}")
