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

Speed: a body is taken in bulk up to the next line that starts with ``--``
(only such a line can be a delimiter), not line by line: attachments are
base64 in 76-byte lines, and a Python step per line made splitting the
largest cost of a mail backup after the download (docs/performance.md,
"Microsoft 365 backup"). The segments are those of a reading line by line
(``readline(piece)``), which tests/sources/m365/test_mimesplit.py checks
against such a reading.
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
_BLOCK = 1024 * 1024  # read from the stream this much at a time


class _Reader:
    """Lines (as ``readline(piece)`` gives them) and runs of body lines from a stream."""

    def __init__(self, stream: IO[bytes], piece: int) -> None:
        self._stream = stream
        self._piece = piece
        # Read no more than a piece at a time (at least 4 KiB): the buffer, and
        # the copy a fill makes of it, stay within a few pieces, so memory is
        # bounded by the piece and not by the block (a 1 MiB block with 32 KiB
        # pieces peaked at 3.3 MB on a message with no line break).
        self._block = max(4096, min(_BLOCK, piece))
        self._buf = b""
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        """Read one more block (False at the end of the stream)."""
        if self._eof:
            return False
        block = self._stream.read(self._block)
        if not block:
            self._eof = True
            return False
        self._buf = self._buf[self._pos :] + block
        self._pos = 0
        return True

    def readline(self) -> bytes:
        """Up to ``piece`` bytes, ending after the first newline if there is one."""
        while True:
            end = self._buf.find(b"\n", self._pos, self._pos + self._piece)
            if end >= 0:
                end += 1
            elif len(self._buf) - self._pos >= self._piece:
                end = self._pos + self._piece
            elif self._fill():
                continue
            else:
                end = len(self._buf)
            line = self._buf[self._pos : end]
            self._pos = end
            return line

    def body_run(self, at_line_start: bool, delimiters: bool) -> bytes:
        """Bytes that are body whatever they hold: up to the next line that
        starts with ``--`` (only one could be a delimiter; none can when
        ``delimiters`` is False), or as much as is buffered. Empty when the
        next line is such a line or the stream has ended."""
        while True:
            buf, pos = self._buf, self._pos
            if not delimiters:
                cut = len(buf)
            elif at_line_start and buf.startswith(b"--", pos):
                return b""
            elif at_line_start and len(buf) - pos < 2 and self._fill():
                continue
            else:
                found = buf.find(b"\n--", pos)
                # A "\n--" split between two blocks is found after the next fill.
                cut = found + 1 if found >= 0 else max(pos, len(buf) - 2)
            if cut > pos or not self._fill():
                self._pos = max(cut, pos)
                return buf[pos : self._pos]


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

    def full_pieces() -> Iterator[bytes]:
        # Whole pieces of a big body, at fixed offsets from its start (the glue
        # before it first).
        nonlocal body_emitted
        while len(body) >= piece:
            if glue:
                yield bytes(glue)
                glue.clear()
            yield bytes(body[:piece])
            del body[:piece]
            body_emitted = True

    at_line_start = True
    reader = _Reader(stream, piece)
    while True:
        if not in_headers:
            run = reader.body_run(at_line_start, bool(boundaries))
            if run:
                # Line by line, these bytes would all have gone to the body, and
                # the body out in pieces at the same offsets (each line is at most
                # ``piece`` bytes, so one piece per line at most).
                if len(glue) >= piece:
                    yield bytes(glue)
                    glue.clear()
                body.extend(run)
                at_line_start = run.endswith(b"\n")
                yield from full_pieces()
                continue
        line = reader.readline()
        if not line:
            break
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
            yield from full_pieces()
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
