"""Upload sessions: large files (OneDrive, SharePoint) and large mail attachments.

Both follow the same protocol (driveitem-createuploadsession.md,
attachment-createuploadsession.md): a POST opens a session and returns a
pre-authenticated ``uploadUrl``; the bytes then go in order as ``PUT``
fragments with ``Content-Range: bytes a-b/total``, sent without the
Authorization header. Drive fragments are multiples of 320 KiB (here 5 MiB)
except the last; attachment fragments are at most 4 MB (here 3 MiB).

A fragment whose answer is lost (AmbiguousWrite) or refused as overlapping
(416) is not sent blindly again: the session's status (``GET uploadUrl``,
``nextExpectedRanges``) says where to go on. A session that no longer
exists after the last fragment may have been committed: :func:`upload`
returns None and the caller checks the target for the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sources.m365.graph.errors import AmbiguousWrite, GraphError, ItemGone
from sources.m365.restore.common import ServiceRun

DRIVE_FRAGMENT = 16 * 327_680  # 5 MiB: a multiple of 320 KiB, as Microsoft requires
ATTACHMENT_FRAGMENT = 3 * 1024 * 1024  # under Outlook's 4 MB per fragment
MAX_FRAGMENT_RETRIES = 8


class SessionLost(Exception):
    """The upload session is gone before the last fragment: start a new one."""


def _next_offset(run: ServiceRun, url: str) -> int | None:
    """Where the session expects the next byte (None: the session is gone)."""
    try:
        answer = run.client.send("GET", url, run.res, idempotent=True, preauthenticated=True)
        status = answer.data
    except ItemGone:
        return None
    except GraphError as exc:
        if exc.status in (404, 410):
            return None
        raise
    ranges = status.get("nextExpectedRanges") or status.get("NextExpectedRanges") or []
    if not ranges:
        return None
    first = str(ranges[0]).split("-", 1)[0]
    return int(first) if first.isdigit() else None


def upload(
    run: ServiceRun,
    url: str,
    size: int,
    read: Callable[[int, int], bytes],
    *,
    fragment: int,
    pace: bool = False,
) -> dict[str, Any] | None:
    """Send ``size`` bytes (``read(offset, length)``) to the session at ``url``.

    Returns the final answer's JSON (the driveItem for files; {} for
    attachments, whose final answer has no body), or None when the session
    vanished after the last byte may have arrived (the caller looks). Raises
    SessionLost when it vanished earlier, GraphError for refusals.
    """
    offset = 0
    retries = 0
    while offset < size:
        length = min(fragment, size - offset)
        chunk = read(offset, length)
        if len(chunk) != length:
            raise GraphError(0, "shortRead", f"the snapshot gave {len(chunk)} of {length} bytes")
        if pace:
            run.pace(length)
        headers = {"Content-Range": f"bytes {offset}-{offset + length - 1}/{size}"}
        try:
            answer = run.client.send(
                "PUT",
                url,
                run.res,
                data=chunk,
                headers=headers,
                idempotent=False,
                preauthenticated=True,
            )
        except (AmbiguousWrite, GraphError) as exc:
            if not isinstance(exc, AmbiguousWrite) and exc.status not in (416, 404):
                raise
            retries += 1
            if retries > MAX_FRAGMENT_RETRIES:
                raise
            resume = _next_offset(run, url)
            if resume is None:
                if offset + length >= size:
                    return None  # the last fragment may have committed the upload
                raise SessionLost("the upload session ended early") from None
            offset = resume
            continue
        run.result.uploaded(length)
        offset += length
        if offset >= size:
            return answer.data
        ranges = answer.data.get("nextExpectedRanges") or []
        if ranges:
            first = str(ranges[0]).split("-", 1)[0]
            if first.isdigit():
                offset = int(first)
    return {}
