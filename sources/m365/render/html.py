"""A standalone HTML page for a Teams thread (root post and replies).

Message bodies are HTML written by people: nh3 (Ammonia) removes scripts,
frames, event handlers, javascript: URLs and remote loads, and a
Content-Security-Policy forbids any script or remote load, so opening a
backup in a browser runs nothing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

import nh3

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_SRC = re.compile(r"""(\bsrc\s*=\s*)(["'])([^"']*)\2""", re.IGNORECASE)
# How a message body references a hosted content (sources/m365/backup/hosted.py).
HOSTED_REFERENCE = re.compile(r"/hostedContents/([^/\"'?#\s<>]{1,2048})/\$value")
_URL_ATTRS = frozenset({"src", "srcset", "background", "poster", "lowsrc", "dynsrc", "longdesc"})


def _inline_only(tag: str, attribute: str, value: str) -> str | None:
    """Drop every URL that would load something unless it is an inline image."""
    if attribute in _URL_ATTRS:
        return value if value.strip().lower().startswith("data:image/") else None
    if attribute == "href" and value.strip().lower().startswith("data:"):
        return None
    return value


def sanitize(content: str) -> str:
    """``content`` through nh3 (the Ammonia sanitizer's allow-list): scripts, styles,
    frames, forms, event handlers and ``javascript:`` URLs removed, remote images
    and other loads dropped (only ``data:image/`` sources stay)."""
    return nh3.clean(
        content,
        url_schemes={"http", "https", "mailto", "data"},
        attribute_filter=_inline_only,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def body_html(body: Any) -> str:
    """A Graph ``itemBody``'s content as HTML, not yet sanitised: HTML as it is, text
    escaped with its line breaks kept."""
    content = str(body.get("content") or "") if isinstance(body, dict) else ""
    if isinstance(body, dict) and str(body.get("contentType", "")).lower() != "html":
        content = html.escape(content).replace("\n", "<br>")
    return content


def page(title: str, style: str, body: list[str]) -> bytes:
    """A standalone HTML document (UTF-8) whose Content-Security-Policy forbids
    scripts and remote loads; ``style`` is added to the shared style sheet and
    ``title`` must be escaped already."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            f"<title>{title}</title>",
            "<style>body{font-family:sans-serif;max-width:50em;margin:1em auto}"
            f".meta{{color:#555;font-size:90%}}{style}</style></head><body>",
            *body,
            "</body></html>",
        ]
    ).encode("utf-8")


def _author(message: dict[str, Any]) -> str:
    sender = message.get("from") or {}
    for key in ("user", "application", "device"):
        who = sender.get(key) if isinstance(sender, dict) else None
        if isinstance(who, dict) and who.get("displayName"):
            return str(who["displayName"])
    return "(unknown)"


def _inline(content: str, images: Mapping[str, str]) -> str:
    """Point images at their stored copy (a data: URI) instead of Graph's URL."""

    def swap(match: re.Match[str]) -> str:
        hosted = HOSTED_REFERENCE.search(match.group(3))
        if hosted is None or hosted.group(1) not in images:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{images[hosted.group(1)]}{match.group(2)}"

    return _SRC.sub(swap, content)


def _post(message: dict[str, Any], css: str, images: Mapping[str, str]) -> str:
    content = body_html(message.get("body") or {})
    when = html.escape(str(message.get("createdDateTime") or ""))
    deleted = " <em>(deleted)</em>" if message.get("deletedDateTime") else ""
    edited = " <em>(edited)</em>" if message.get("lastEditedDateTime") else ""
    subject = message.get("subject")
    head = f"<h2>{html.escape(str(subject))}</h2>" if subject else ""
    return (
        f'<div class="{css}">{head}<p class="meta"><b>{html.escape(_author(message))}</b> '
        f"{when}{edited}{deleted}</p><div>{sanitize(_inline(content, images))}</div></div>"
    )


def render_thread(
    root: dict[str, Any],
    replies: list[dict[str, Any]],
    channel: str,
    images: Mapping[str, str] | None = None,
) -> bytes:
    """The thread as one HTML document (UTF-8). ``images``: hosted content id -> data:
    URI, shown in place of Graph's URL (which the page's policy would block anyway)."""
    shown = images or {}
    title = html.escape(str(root.get("subject") or f"Post in {channel}"))
    parts = [f'<p class="meta">{html.escape(channel)}</p>', _post(root, "post", shown)]
    parts += [_post(reply, "reply", shown) for reply in replies]
    return page(title, ".reply{margin-left:2em;border-left:3px solid #ddd;padding-left:1em}", parts)
