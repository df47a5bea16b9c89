"""Upload sessions: large files (drives) and large attachments (Outlook).

Sources: driveitem-createuploadsession.md and attachment-createuploadsession.md.

Drive sessions (`POST .../createUploadSession`, then `PUT {uploadUrl}`):
- the uploadUrl is pre-authenticated; a PUT that carries an Authorization header gets 401
  ("Only send the Authorization header ... during the first step");
- every PUT needs `Content-Range: bytes a-b/total`, fragments arrive in order, each under
  60 MiB; every fragment but the last must be a multiple of 320 KiB (327,680 bytes) -
  the simulator refuses others with 400 (the docs say they "result in errors committing
  some files": we make the error certain and immediate);
- a fragment starting before the next expected byte gets 416; one starting after it
  gets 416 fragmentOutOfOrder; the declared total must never change;
- 202 with `nextExpectedRanges` until the last byte, then 201 (new file) or 200
  (replaced) with the driveItem; name conflicts are checked at commit (409
  nameAlreadyExists); `deferCommit: true` waits for an empty POST to the uploadUrl;
- GET on the uploadUrl reports the status, DELETE cancels (204); an unknown or expired
  session is 404 itemNotFound.

Attachment sessions (`POST .../attachments/createUploadSession` with AttachmentItem):
fragments of at most 4 MB, in order; 200 with `nextExpectedRanges: ["<offset>"]` until the
last, then 201 Created with a Location header and an empty body
(concepts/outlook-large-attachments.md).

Bytes are streamed to a temporary file, never held in memory. Thread-safe per session.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..httpcore import GraphError, Request, Response, empty_response, iso, json_response
from ..router import Router
from ..tenant import Tenant
from . import calmodel as cm
from . import drivemodel as dm
from . import mailmodel as mm

FRAGMENT_MULTIPLE = 327_680
MAX_FRAGMENT = 60 * 1024 * 1024
MAX_ATTACHMENT_FRAGMENT = 4 * 1024 * 1024
MAX_ATTACHMENT = 150 * 1024 * 1024
_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


@dataclass
class UploadSession:
    id: str
    kind: str  # "drive" | "attachment"
    owner: str  # mailbox (attachments) or drive owner
    path: Path
    expires: float
    target: dict[str, Any]
    total: int | None = None
    received: int = 0
    done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expiration(self) -> str:

        return iso(dt.datetime.fromtimestamp(self.expires, dt.UTC))


def new_session(
    t: Tenant, kind: str, owner: str, target: dict[str, Any], total: int | None
) -> UploadSession:
    sid = Tenant.new_outlook_id("up")
    sess = UploadSession(
        id=sid,
        kind=kind,
        owner=owner,
        path=t.content.new_temp(),
        expires=time.time() + t.settings.upload_session_lifetime,
        target=target,
        total=total,
    )
    with t.uploads_lock:
        # Drop expired sessions while we are here.
        now = time.time()
        for key in [k for k, s in t.uploads.items() if s.expires < now]:
            old = t.uploads.pop(key)
            old.path.unlink(missing_ok=True)
        t.uploads[sid] = sess
    return sess


def upload_url(req: Request, sess: UploadSession) -> str:
    return f"{req.base_url}/_up/{sess.id}"


def _get_session(t: Tenant, sid: str) -> UploadSession:
    with t.uploads_lock:
        sess: UploadSession | None = t.uploads.get(sid)
    if sess is None or sess.expires < time.time():
        raise GraphError(
            404,
            "itemNotFound",
            "The upload session was not found.",
            inner_code="uploadSessionNotFound",
        )
    return sess


def _drop(t: Tenant, sess: UploadSession) -> None:
    with t.uploads_lock:
        t.uploads.pop(sess.id, None)
    sess.path.unlink(missing_ok=True)


def register(router: Router, t: Tenant) -> None:
    """Routes on the raw router (pre-authenticated URLs)."""

    def put_fragment(req: Request) -> Response:
        sess = _get_session(t, req.params["session"])
        if sess.kind == "drive" and req.header("Authorization"):
            raise GraphError(
                401, "unauthenticated", "Do not send an Authorization header to the upload URL."
            )
        m = _RANGE.match(req.header("Content-Range"))
        if not m:
            raise GraphError(
                400,
                "invalidRequest",
                "A Content-Range header of the form 'bytes a-b/total' is required.",
            )
        start, end = int(m.group(1)), int(m.group(2))
        total = None if m.group(3) == "*" else int(m.group(3))
        length = end - start + 1
        declared = req.header("Content-Length")
        if end < start or (declared and int(declared) != length):
            raise GraphError(
                400,
                "invalidRequest",
                "Content-Range does not match Content-Length.",
                inner_code="fragmentLengthMismatch",
            )
        with sess.lock:
            if sess.done:
                raise GraphError(416, "invalidRange", "The upload is already complete.")
            if total is None:
                total = sess.total
            if total is None:
                raise GraphError(400, "invalidRequest", "The total size must be known.")
            if sess.total is not None and total != sess.total:
                raise GraphError(
                    400,
                    "invalidRequest",
                    "The declared file size changed.",
                    inner_code="fragmentLengthMismatch",
                )
            sess.total = total
            if end >= total:
                raise GraphError(416, "invalidRange", "The range goes past the end of the file.")
            if start < sess.received:
                raise GraphError(
                    416,
                    "invalidRange",
                    "The fragment overlaps with data already received.",
                    inner_code="fragmentOverlap",
                )
            if start > sess.received:
                raise GraphError(
                    416,
                    "invalidRange",
                    "The fragment is out of order.",
                    inner_code="fragmentOutOfOrder",
                )
            last = end + 1 == total
            if sess.kind == "drive":
                if length > MAX_FRAGMENT:
                    raise GraphError(
                        413,
                        "invalidRequest",
                        "Fragments must be under 60 MiB.",
                        inner_code="maxFragmentLengthExceeded",
                    )
                if not last and length % FRAGMENT_MULTIPLE:
                    raise GraphError(
                        400,
                        "invalidRequest",
                        "Fragment sizes must be a multiple of 320 KiB (327,680 bytes),"
                        " except the last.",
                    )
            elif length > MAX_ATTACHMENT_FRAGMENT:
                raise GraphError(
                    413, "ErrorRequestEntityTooLarge", "Attachment fragments are at most 4 MB."
                )
            written = 0
            with sess.path.open("r+b") as fh:
                fh.seek(start)
                while True:
                    chunk = req.body.read(1 << 20)
                    if not chunk:
                        break
                    written += len(chunk)
                    if written > length:
                        raise GraphError(
                            400, "invalidRequest", "More bytes than the Content-Range announced."
                        )
                    fh.write(chunk)
            if written != length:
                raise GraphError(
                    400, "invalidRequest", "Fewer bytes than the Content-Range announced."
                )
            sess.received = end + 1
            if not last:
                if sess.kind == "attachment":
                    # outlook-large-attachments.md shows Outlook's casing here.
                    return json_response(
                        {
                            "ExpirationDateTime": sess.expiration(),
                            "nextExpectedRanges": [str(sess.received)],
                        }
                    )
                return json_response(
                    {
                        "expirationDateTime": sess.expiration(),
                        "nextExpectedRanges": [f"{sess.received}-"],
                    },
                    202,
                )
            if sess.kind == "drive" and sess.target.get("deferCommit"):
                return json_response(
                    {"expirationDateTime": sess.expiration(), "nextExpectedRanges": []}, 202
                )
            return _commit(req, sess)

    def _commit(req: Request, sess: UploadSession) -> Response:
        spec = t.content.commit_file(sess.path)
        # commit_file moved or removed the temporary file.
        sess.done = True
        with t.uploads_lock:
            t.uploads.pop(sess.id, None)
        tgt = sess.target
        if sess.kind == "attachment" and tgt.get("event"):
            event = t.store.get(tgt["event"])
            if event is None or event.deleted:
                raise GraphError(404, "ErrorItemNotFound", "The event no longer exists.")
            with t.store.transaction() as tx:
                att = cm.insert_uploaded_event_attachment(
                    t, tx, event, tgt["props"], spec, int(spec.get("size", 0))
                )
            location = (
                f"{req.base_url}/api/v2.0/Users('{event.owner}')/Events('{event.key}')"
                f"/Attachments('{att.key}')"
            )
            return empty_response(201, {"Location": location})
        if sess.kind == "attachment":
            message = t.store.get(tgt["message"])
            if message is None:
                raise GraphError(404, "ErrorItemNotFound", "The message no longer exists.")
            with t.store.transaction() as tx:
                att = mm.insert_uploaded_attachment(
                    t, tx, message, tgt["props"], spec, int(spec.get("size", 0))
                )
            # The shape outlook-large-attachments.md shows; the attachment id is the
            # last parenthesised value.
            location = (
                f"{req.base_url}/api/v2.0/Users('{message.owner}')/Messages('{message.key}')"
                f"/Attachments('{att.key}')"
            )
            return empty_response(201, {"Location": location})
        user = tgt.get("user")
        with t.store.transaction() as tx:
            if tgt.get("item"):
                item = t.store.get(tgt["item"])
                if item is None:
                    raise GraphError(404, "itemNotFound", "The item no longer exists.")
                dm.replace_content(tx, item, spec, user, tgt.get("fileSystemInfo"))
                created = False
            else:
                parent = t.store.get(tgt["parent"])
                if parent is None:
                    raise GraphError(
                        404, "itemNotFound", "The destination folder no longer exists."
                    )
                item, created = dm.put_file(
                    t,
                    tx,
                    parent,
                    tgt["name"],
                    spec,
                    tgt.get("conflict", "fail"),
                    user,
                    tgt.get("fileSystemInfo"),
                )
        fresh = t.store.get(item.key)
        assert fresh is not None
        return json_response(dm.render_item(t, fresh, req.base_url), 201 if created else 200)

    def status(req: Request) -> Response:
        sess = _get_session(t, req.params["session"])
        ranges = [str(sess.received)] if sess.kind == "attachment" else [f"{sess.received}-"]
        return json_response(
            {"expirationDateTime": sess.expiration(), "nextExpectedRanges": ranges}
        )

    def cancel(req: Request) -> Response:
        sess = _get_session(t, req.params["session"])
        _drop(t, sess)
        return empty_response(204)

    def commit(req: Request) -> Response:
        sess = _get_session(t, req.params["session"])
        with sess.lock:
            if sess.total is None or sess.received != sess.total:
                raise GraphError(
                    400,
                    "invalidRequest",
                    "The upload is not complete.",
                    inner_code="uploadSessionIncomplete",
                )
            return _commit(req, sess)

    router.add("PUT", "/_up/{session}", put_fragment, service="upload", units=2)
    router.add("GET", "/_up/{session}", status, service="upload", units=1)
    router.add("DELETE", "/_up/{session}", cancel, service="upload", units=1)
    router.add("POST", "/_up/{session}", commit, service="upload", units=2)
