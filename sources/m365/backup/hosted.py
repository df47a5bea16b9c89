"""Hosted contents of Teams messages: images (and code snippets) pasted into a post.

Graph keeps them apart from the message (resources/chatmessagehostedcontent.md): the
HTML body references each by ``.../hostedContents/{id}/$value``, the list
(``.../hostedContents``) names them without their bytes (``contentBytes`` is
write-only), and ``$value`` returns the bytes. Coffer stores them beside their thread,
in ``<thread stem>.files/<short id><ext>`` (docs/layout.md), and the thread's HTML page
shows small images inline as ``data:`` URIs (its Content-Security-Policy forbids remote
loads, so the page never fetches anything).

A message whose body references no hosted content costs no request; one that does costs
one listing plus one download per hosted content. Everything here is hostile input:
ids are bounded in length, the file type is sniffed from the bytes (not taken from a
header), and each download is bounded by ``MAX_BYTES``.
"""

from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass
from typing import Any

from sources.m365.graph.client import GraphClient, TooLarge
from sources.m365.graph.errors import ItemGone
from sources.m365.graph.throttle import Resource
from sources.m365.names import short_id
from sources.m365.render.html import HOSTED_REFERENCE

MAX_BYTES = 64 * 1024 * 1024  # a pasted image or snippet; larger is refused and noted
INLINE_BYTES = 1024 * 1024  # shown inline in the HTML page up to this size
_MAX_ID = 2048
_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", ".png", "image/png"),
    (b"\xff\xd8\xff", ".jpg", "image/jpeg"),
    (b"GIF87a", ".gif", "image/gif"),
    (b"GIF89a", ".gif", "image/gif"),
)


@dataclass(frozen=True)
class Hosted:
    """One hosted content: its Graph id, the file name it is stored under, its bytes."""

    hosted_id: str
    name: str
    data: bytes

    @property
    def media_type(self) -> str:
        return sniff(self.data)[1]


def sniff(data: bytes) -> tuple[str, str]:
    """(extension, media type) from the first bytes; unknown content is ``.bin``."""
    for magic, ext, media in _SIGNATURES:
        if data.startswith(magic):
            return ext, media
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp", "image/webp"
    return ".bin", "application/octet-stream"


def references_hosted(message: dict[str, Any]) -> bool:
    """Whether the message's body references any hosted content."""
    body = message.get("body")
    content = body.get("content") if isinstance(body, dict) else None
    return isinstance(content, str) and HOSTED_REFERENCE.search(content) is not None


def fetch_hosted(
    client: GraphClient, message_url: str, res: Resource, *, notes: list[str]
) -> list[Hosted]:
    """The hosted contents of the message at ``message_url`` (a Graph path).

    Contents that vanished (404) or exceed MAX_BYTES are left out with a note; other
    Graph errors propagate (the caller's item fails and is retried like any read).
    """
    try:
        listing = client.get_json(f"{message_url}/hostedContents", res)
    except ItemGone:
        return []
    values = listing.get("value")
    out: list[Hosted] = []
    for entry in values if isinstance(values, list) else []:
        hosted_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(hosted_id, str) or not hosted_id or len(hosted_id) > _MAX_ID:
            continue
        with tempfile.SpooledTemporaryFile(max_size=INLINE_BYTES) as sink:
            try:
                client.download(
                    f"{message_url}/hostedContents/{hosted_id}/$value",
                    res,
                    sink,
                    max_bytes=MAX_BYTES,
                )
            except ItemGone:
                notes.append(f"a hosted content of {message_url} vanished before it was read")
                continue
            except TooLarge:
                notes.append(f"a hosted content of {message_url} is over {MAX_BYTES} bytes")
                continue
            sink.seek(0)
            data = sink.read()
        ext, _ = sniff(data)
        out.append(Hosted(hosted_id, f"{short_id(hosted_id, 16)}{ext}", data))
    return out


def inline_images(hosted: list[Hosted]) -> dict[str, str]:
    """hosted id -> data: URI of the images small enough to show inline."""
    out: dict[str, str] = {}
    for item in hosted:
        media = item.media_type
        if media.startswith("image/") and len(item.data) <= INLINE_BYTES:
            out[item.hosted_id] = f"data:{media};base64,{base64.b64encode(item.data).decode()}"
    return out
