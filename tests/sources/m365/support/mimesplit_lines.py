"""The line-by-line MIME splitter split_mime replaced: the oracle of its tests.

Segment boundaries decide which chunks a message's bytes make, so the bulk
body path of sources/m365/backup/mimesplit.py must cut exactly where this
reading of one line at a time (``readline(piece)``) cut; any other cut would
store every message of an existing repository again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from sources.m365.backup.mimesplit import MIN_BODY, PIECE, _boundary_of

MAX_HEADERS = 1024 * 1024


def split_by_lines(
    stream: IO[bytes], *, min_body: int = MIN_BODY, piece: int = PIECE
) -> Iterator[bytes]:
    """The segments split_mime gave when it read every line on its own (its
    version before bodies were taken in bulk): the oracle the bulk path must match."""
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
