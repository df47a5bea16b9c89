"""A backed-up message's MIME, taken apart for Graph: its body and its attachments.

Graph creates non-draft messages only from JSON (mail.py), so the
body and the attachments come from the ``.eml`` the backup kept:

- the body is the HTML part that is not an attachment (the ``text/html``
  alternative of a multipart/alternative), else the plain text part, decoded
  with its charset, line ends untouched;
- every other leaf part is an attachment: its file name (RFC 2231 / encoded
  words decoded), content type, bytes, and whether it is inline with a
  Content-ID (images that the HTML body refers to as ``cid:``);
- an attached message (``message/rfc822``) becomes a ``.eml`` file attachment.

Raises ValueError for bytes that are not a message at all.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage, Message


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    data: bytes
    inline: bool = False
    content_id: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class ParsedMessage:
    body_type: str = "text"  # "html" or "text"
    body: str = ""
    attachments: list[Attachment] = field(default_factory=list)


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload.decode("utf-8", errors="replace")


def _is_attachment(part: Message) -> bool:
    disposition = (part.get("Content-Disposition") or "").split(";", 1)[0].strip().lower()
    return disposition == "attachment" or bool(part.get_filename())


def parse_message(raw: bytes) -> ParsedMessage:
    """Body and attachments of the MIME message ``raw`` (see the module docstring)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if not isinstance(msg, EmailMessage) or not msg.keys():
        raise ValueError("not a MIME message")
    out = ParsedMessage()
    html: Message | None = None
    text: Message | None = None
    leaves: list[Message] = []
    _collect(msg, leaves)
    for part in leaves:
        ctype = part.get_content_type()
        if not _is_attachment(part) and ctype == "text/html" and html is None:
            html = part
        elif not _is_attachment(part) and ctype == "text/plain" and text is None:
            text = part
    body_part = html or text
    if body_part is not None:
        out.body_type = "html" if body_part is html else "text"
        out.body = _text_of(body_part)
    for part in leaves:
        if part is body_part or (part is text and html is not None and not _is_attachment(part)):
            continue  # the body, or the plain alternative of an HTML body
        out.attachments.append(_attachment(part, len(out.attachments)))
    return out


def _collect(part: Message, leaves: list[Message]) -> None:
    if part.get_content_type() == "message/rfc822" or not part.is_multipart():
        leaves.append(part)
        return
    payload = part.get_payload()
    if isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                _collect(sub, leaves)


def _attachment(part: Message, index: int) -> Attachment:
    ctype = part.get_content_type()
    if ctype == "message/rfc822":
        inner = part.get_payload()
        sub = inner[0] if isinstance(inner, list) and inner else inner
        data = sub.as_bytes() if isinstance(sub, Message) else b""
        subject = str(sub.get("Subject") or "") if isinstance(sub, Message) else ""
        name = part.get_filename() or f"{subject or 'message'}.eml"
        return Attachment(name, ctype, data)
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    name = part.get_filename() or f"attachment-{index + 1}"
    content_id = (part.get("Content-ID") or "").strip().strip("<>") or None
    disposition = (part.get("Content-Disposition") or "").split(";", 1)[0].strip().lower()
    inline = disposition == "inline" or (content_id is not None and disposition != "attachment")
    return Attachment(str(name), ctype, data, inline, content_id)
