"""MIME for messages: streamed rendering (`$value`) and parsing (MIME uploads).

Rendering builds the RFC 5322/2045 document of a message from its Graph properties, body
and attachments as a list of segments (literal bytes, or the base64 of a content source),
so the exact length is known before sending and a 30 MB attachment is encoded on the fly,
never held in memory. Output is deterministic: boundaries derive from the message id, so
`$value` of an unchanged message is byte-for-byte stable across requests and restarts.
Attachment bodies are encoded the same way in every message (76-column base64, CRLF),
which keeps an attachment shared by several mailboxes byte-identical inside each MIME.

Parsing (`parse_mime`) extracts what Graph shows for a MIME-created message (subject,
sender, recipients, dates, Message-ID, body, attachments) and tolerates malformed input:
the raw bytes are always kept and served back unchanged (user-post-messages.md).
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import email.utils
import hashlib
import html
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import Header
from typing import Any

from .content import ContentSource
from .httpcore import iso, parse_iso

CRLF = b"\r\n"
_B64_LINE = 57  # 57 bytes -> 76 base64 characters


def b64_length(n: int) -> int:
    """Length of `n` bytes in 76-column base64 with CRLF line ends."""
    full, rem = divmod(n, _B64_LINE)
    out = full * (76 + 2)
    if rem:
        out += ((rem + 2) // 3) * 4 + 2
    return out


def iter_b64(src: ContentSource) -> Iterator[bytes]:
    buf = b""
    step = _B64_LINE * 1024
    for chunk in src.iter_range():
        buf += chunk
        if len(buf) < step:
            continue
        cut = len(buf) - len(buf) % _B64_LINE
        yield _encode_lines(buf[:cut])
        buf = buf[cut:]
    if buf:
        yield _encode_lines(buf)


def _encode_lines(data: bytes) -> bytes:
    out = []
    for i in range(0, len(data), _B64_LINE):
        out.append(base64.b64encode(data[i : i + _B64_LINE]) + CRLF)
    return b"".join(out)


@dataclass
class MimeDoc:
    """A MIME document as segments: bytes, or ContentSource to base64-encode."""

    segments: list[bytes | ContentSource] = field(default_factory=list)

    def add(self, data: bytes | str) -> None:
        self.segments.append(data.encode() if isinstance(data, str) else data)

    @property
    def length(self) -> int:
        return sum(len(s) if isinstance(s, bytes) else b64_length(s.size) for s in self.segments)

    def iter(self) -> Iterator[bytes]:
        pending = b""
        for seg in self.segments:
            if isinstance(seg, bytes):
                pending += seg
                if len(pending) > 65536:
                    yield pending
                    pending = b""
                continue
            if pending:
                yield pending
                pending = b""
            yield from iter_b64(seg)
        if pending:
            yield pending

    def read(self) -> bytes:
        return b"".join(self.iter())


@dataclass
class MimeAttachment:
    name: str
    content_type: str
    source: ContentSource
    inline: bool = False
    content_id: str = ""


def _header(name: str, value: str) -> bytes:
    if value.isascii():
        return f"{name}: {value}".encode() + CRLF
    encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}".encode() + CRLF


def _address(entry: dict[str, Any] | None) -> str:
    if not entry:
        return ""
    ea = entry.get("emailAddress", {})
    name = str(ea.get("name") or "")
    addr = str(ea.get("address") or "")
    if not name:
        return addr
    return email.utils.formataddr((name, addr), charset="utf-8")


def _addresses(entries: list[dict[str, Any]] | None) -> str:
    return ", ".join(a for a in (_address(e) for e in entries or []) if a)


def _rfc2822_date(value: str | None) -> str:
    if not value:
        value = "2020-01-01T00:00:00Z"
    return email.utils.format_datetime(parse_iso(value))


def _filename_params(name: str) -> str:
    if name.isascii() and '"' not in name:
        return f'name="{name}"'
    return "name*=utf-8''" + "".join(
        c
        if c.isascii() and (c.isalnum() or c in "-._~")
        else "".join(f"%{b:02X}" for b in c.encode())
        for c in name
    )


def render_message(
    msg: dict[str, Any],
    body_type: str,
    body_text: str,
    body_html: str,
    attachments: list[MimeAttachment],
) -> MimeDoc:
    """The MIME of a message. `body_type` is "text", "html" or "alternative"."""
    seed = hashlib.sha256(str(msg.get("id", "")).encode()).hexdigest()[:24]
    doc = MimeDoc()
    doc.add(_header("From", _address(msg.get("from")) or _address(msg.get("sender"))))
    for hname, prop in (("To", "toRecipients"), ("Cc", "ccRecipients"), ("Bcc", "bccRecipients")):
        value = _addresses(msg.get(prop))
        if value:
            doc.add(_header(hname, value))
    doc.add(_header("Subject", str(msg.get("subject") or "")))
    doc.add(_header("Date", _rfc2822_date(msg.get("sentDateTime") or msg.get("receivedDateTime"))))
    if msg.get("internetMessageId"):
        doc.add(_header("Message-ID", str(msg["internetMessageId"])))
    if msg.get("importance") == "high":
        doc.add(_header("Importance", "high"))
    doc.add(b"MIME-Version: 1.0" + CRLF)

    inline = [a for a in attachments if a.inline]
    files = [a for a in attachments if not a.inline]

    def body_part() -> list[bytes | ContentSource]:
        parts: list[bytes | ContentSource] = []
        text_part = (
            b'Content-Type: text/plain; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + _encode_lines(body_text.encode())
        )
        html_part = (
            b'Content-Type: text/html; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + _encode_lines(body_html.encode())
        )
        if body_type == "alternative":
            b = f"alt_{seed}".encode()
            parts.append(b'Content-Type: multipart/alternative; boundary="' + b + b'"\r\n\r\n')
            parts.append(b"--" + b + CRLF + text_part + CRLF)
            parts.append(b"--" + b + CRLF + html_part + CRLF)
            parts.append(b"--" + b + b"--" + CRLF)
        elif body_type == "html":
            parts.append(html_part)
        else:
            parts.append(text_part)
        return parts

    def attachment_part(att: MimeAttachment) -> list[bytes | ContentSource]:
        disp = "inline" if att.inline else "attachment"
        head = f"Content-Type: {att.content_type}; {_filename_params(att.name)}\r\n"
        filename = _filename_params(att.name).replace("name", "filename", 1)
        head += f"Content-Disposition: {disp}; {filename}\r\n"
        if att.content_id:
            head += f"Content-ID: <{att.content_id}>\r\n"
        head += "Content-Transfer-Encoding: base64\r\n\r\n"
        return [head.encode(), att.source]

    def related() -> list[bytes | ContentSource]:
        if not inline:
            return body_part()
        b = f"rel_{seed}".encode()
        parts: list[bytes | ContentSource] = [
            b'Content-Type: multipart/related; type="text/html"; boundary="' + b + b'"\r\n\r\n'
        ]
        parts.append(b"--" + b + CRLF)
        parts.extend(body_part())
        for att in inline:
            parts.append(CRLF + b"--" + b + CRLF)
            parts.extend(attachment_part(att))
        parts.append(CRLF + b"--" + b + b"--" + CRLF)
        return parts

    if files:
        b = f"mix_{seed}".encode()
        doc.add(b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n')
        doc.add(b"--" + b + CRLF)
        doc.segments.extend(related())
        for att in files:
            doc.add(CRLF + b"--" + b + CRLF)
            doc.segments.extend(attachment_part(att))
        doc.add(CRLF + b"--" + b + b"--" + CRLF)
    else:
        doc.segments.extend(related())
    return doc


# -- generated bodies ---------------------------------------------------------------------

_SENTENCES = [
    "Please find the latest figures attached.",
    "Could you review this before Thursday?",
    "Thanks for the quick turnaround on the draft.",
    "Let's discuss the open points in our next meeting.",
    "The numbers for the quarter look better than expected.",
    "I have updated the document with your comments.",
    "Merci pour votre retour, c'était très utile.",
    "Die Präsentation für Montag ist fertig.",
    "会議の資料を添付します。",
    "Kindly confirm receipt of this message.",
    "We need a decision on the budget by Friday.",
    "The backup window moved to 02:00 UTC.",
]


def generated_body(seed: int, greeting: str, cid_images: list[str]) -> tuple[str, str]:
    """Deterministic (text, html) bodies for a generated message."""
    rng = random.Random(seed)
    paras = [
        " ".join(rng.choice(_SENTENCES) for _ in range(rng.randint(2, 5)))
        for _ in range(rng.randint(1, 4))
    ]
    text = f"Hi {greeting},\r\n\r\n" + "\r\n\r\n".join(paras) + "\r\n\r\nBest regards\r\n"
    html_paras = "".join(f"<p>{html.escape(p)}</p>" for p in paras)
    images = "".join(f'<p><img src="cid:{cid}" alt="image"></p>' for cid in cid_images)
    body_html = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>'
        f"<body><p>Hi {html.escape(greeting)},</p>{html_paras}{images}"
        "<p>Best regards</p></body></html>"
    )
    return text, body_html


def preview(text: str) -> str:
    return " ".join(text.split())[:255]


# -- parsing --------------------------------------------------------------------------------


@dataclass
class ParsedAttachment:
    name: str
    content_type: str
    data: bytes
    inline: bool
    content_id: str


@dataclass
class ParsedMime:
    props: dict[str, Any]
    body_type: str
    body: str
    attachments: list[ParsedAttachment]


def decode_base64_mime(body: bytes) -> bytes:
    """The MIME from a `text/plain` create request: base64 text. Raises ValueError."""
    cleaned = b"".join(body.split())
    if not cleaned:
        raise ValueError("empty")
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from None


def _recipients(value: str | None) -> list[dict[str, Any]]:
    if not value:
        return []
    out = []
    for name, addr in email.utils.getaddresses([value]):
        if addr:
            out.append({"emailAddress": {"name": name or addr, "address": addr}})
    return out


def parse_mime(raw: bytes) -> ParsedMime:
    """Extract Graph properties from a MIME document, tolerating malformed input."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception:  # a broken document still becomes a (mostly empty) draft
        return ParsedMime({}, "text", "", [])
    props: dict[str, Any] = {}

    def hdr(name: str) -> str | None:
        try:
            value = msg.get(name)
        except Exception:
            return None
        return None if value is None else str(value)

    props["subject"] = hdr("Subject") or ""
    sender = _recipients(hdr("From"))
    if sender:
        props["from"] = sender[0]
        props["sender"] = sender[0]
    props["toRecipients"] = _recipients(hdr("To"))
    props["ccRecipients"] = _recipients(hdr("Cc"))
    props["bccRecipients"] = _recipients(hdr("Bcc"))
    if hdr("Message-ID"):
        props["internetMessageId"] = str(hdr("Message-ID")).strip()
    date = hdr("Date")
    if date:
        try:
            parsed = email.utils.parsedate_to_datetime(date)
            if parsed.tzinfo is not None:
                props["sentDateTime"] = iso(parsed)
        except (TypeError, ValueError):
            pass
    body_type, body = "text", ""
    attachments: list[ParsedAttachment] = []
    try:
        part = msg.get_body(preferencelist=("html", "plain"))
        if part is not None:
            body = str(part.get_content())
            body_type = "html" if part.get_content_subtype() == "html" else "text"
        for att in msg.iter_attachments():
            data = att.get_payload(decode=True) or b""
            cid = str(att.get("Content-ID") or "").strip("<>")
            attachments.append(
                ParsedAttachment(
                    name=att.get_filename() or "attachment",
                    content_type=att.get_content_type(),
                    data=data if isinstance(data, bytes) else b"",
                    inline=str(att.get_content_disposition()) == "inline" and bool(cid),
                    content_id=cid,
                )
            )
    except Exception:
        pass
    return ParsedMime(props, body_type, body, attachments)
