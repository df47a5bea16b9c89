"""Cutting a MIME message into segments so that attachments deduplicate.

The engine cuts each segment of an item on its own (OwnerSession.add_item with
an iterable of byte strings). Cutting a message at the start and end of every
large MIME part body makes an attachment's encoded bytes a segment of their
own: the same attachment in a thousand mailboxes, whatever headers and text
surround it, yields the same chunks and is stored once.

Contract: the concatenation of the segments is exactly the input, byte for
byte, whatever the input (malformed MIME included). Memory is bounded by a
few ``piece`` sizes, not by the message: lines are read at most ``piece``
bytes at a time, bodies are yielded in pieces of at most ``piece`` bytes, cut
at fixed offsets from the start of the body (so identical bodies still cut
identically), and the glue between them is yielded once it reaches ``piece``
bytes; no segment is longer than three times ``piece``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))', re.IGNORECASE)
_CONTENT_TYPE = re.compile(rb"^content-type\s*:", re.IGNORECASE)
MIN_BODY = 8 * 1024  # smaller bodies stay with the headers around them
PIECE = 8 * 1024 * 1024
# Only this much of a header block is searched for a boundary; the rest still
# passes through (RFC 5322 headers are far smaller).
MAX_HEADERS = 1024 * 1024


def _boundary_of(headers: bytes) -> bytes | None:
    """The boundary parameter of a header block's Content-Type (folded lines joined)."""
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", headers)
    for line in unfolded.split(b"\n"):
        if _CONTENT_TYPE.match(line) and b"multipart" in line.lower():
            m = _BOUNDARY.search(line)
            if m:
                return (m.group(1) or m.group(2)).strip()
    return None


def split_mime(
    stream: IO[bytes], *, min_body: int = MIN_BODY, piece: int = PIECE
) -> Iterator[bytes]:
    """Yield the segments of the MIME message read from ``stream`` (see the module doc)."""
    glue = bytearray()  # headers, boundaries and small bodies, up to the next big body
    body = bytearray()  # the current part body
    body_emitted = False  # part of the current body already yielded (a big body)
    boundaries: list[bytes] = []
    in_headers = True
    headers = bytearray()

    def delimiter(line: bytes) -> tuple[bytes, bool] | None:
        stripped = line.rstrip(b"\r\n").rstrip(b" \t")
        if not stripped.startswith(b"--"):
            return None
        for b in reversed(boundaries):
            if stripped == b"--" + b:
                return b, False
            if stripped == b"--" + b + b"--":
                return b, True
        return None

    def flush_body() -> Iterator[bytes]:
        nonlocal body_emitted
        if body_emitted or len(body) >= min_body:
            if glue:
                yield bytes(glue)
                glue.clear()
            if body:
                yield bytes(body)
        else:
            glue.extend(body)
        body.clear()
        body_emitted = False

    at_line_start = True
    # Lines are read at most ``piece`` bytes at a time: a message without line
    # breaks must not be read whole (mail comes from anyone).
    for line in iter(lambda: stream.readline(piece), b""):
        starts_line = at_line_start
        at_line_start = line.endswith(b"\n")
        if len(glue) >= piece:
            # Headers that never end, or many small parts: glue is bounded too.
            yield bytes(glue)
            glue.clear()
        if in_headers:
            if len(headers) < MAX_HEADERS:
                headers.extend(line)
            glue.extend(line)
            if starts_line and line in (b"\r\n", b"\n"):
                in_headers = False
                found = _boundary_of(bytes(headers))
                headers.clear()
                if found:
                    boundaries.append(found)
            continue
        # A delimiter starts a line (a fragment of a long line is not one).
        hit = delimiter(line) if boundaries and starts_line else None
        if hit is None:
            body.extend(line)
            if len(body) >= piece:
                if glue:
                    yield bytes(glue)
                    glue.clear()
                yield bytes(body[:piece])
                del body[:piece]
                body_emitted = True
            continue
        yield from flush_body()
        glue.extend(line)
        bound, closing = hit
        # Close nested parts whose delimiters never came (malformed input).
        while boundaries and boundaries[-1] != bound:
            boundaries.pop()
        if closing:
            boundaries.pop()  # epilogue text follows, as a body of the outer part
        else:
            in_headers = True
    if in_headers:
        headers.clear()
    yield from flush_body()
    if glue:
        yield bytes(glue)
