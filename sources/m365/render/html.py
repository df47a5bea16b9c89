"""A standalone HTML page for a Teams thread (root post and replies).

Message bodies are HTML written by people: scripts, frames, event handlers
and javascript: URLs are removed, and a Content-Security-Policy forbids any
script or remote load, so opening a backup in a browser runs nothing.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

_TAGS = r"script|style|iframe|object|embed|frame|frameset|form|link|meta|base|noscript"
# Dangerous elements with their content, then any stray opening or closing tag of them.
_DANGEROUS = re.compile(rf"<\s*({_TAGS})\b[^>]*>.*?<\s*/\s*\1\s*>", re.IGNORECASE | re.DOTALL)
_STRAY = re.compile(rf"<\s*/?\s*({_TAGS})\b[^>]*>", re.IGNORECASE)
# An attribute named on... after a space, a slash (``<img/onerror=...>``) or a quote.
_HANDLERS = re.compile(r"(?<=[\s/\"'])on[a-z]+\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)?", re.IGNORECASE)
_JS_URL = re.compile(r"(href|src)\s*=\s*([\"']?)\s*javascript:", re.IGNORECASE)
# What is left of a dangerous tag, closed or not: "<script" followed later by
# any ">" (even one of another tag) still opens a script element.
_OPENER = re.compile(rf"<(\s*/?\s*(?:{_TAGS})\b)", re.IGNORECASE)
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_SRC = re.compile(r"""(\bsrc\s*=\s*)(["'])([^"']*)\2""", re.IGNORECASE)
# How a message body references a hosted content (sources/m365/hosted.py).
HOSTED_REFERENCE = re.compile(r"/hostedContents/([^/\"'?#\s<>]{1,2048})/\$value")


def sanitize(content: str) -> str:
    """Remove dangerous elements, event handlers and javascript: URLs.

    Repeated until nothing changes (a removal can join the pieces of a new
    tag: ``<scr<script></script>ipt>``); any dangerous tag opener left, closed
    or not, loses its ``<``. The page's Content-Security-Policy forbids
    scripts anyway; this keeps a saved copy inert in any viewer.
    """
    while True:
        cleaned = _DANGEROUS.sub("", content)
        cleaned = _STRAY.sub("", cleaned)
        cleaned = _HANDLERS.sub("", cleaned)
        cleaned = _JS_URL.sub(r"\1=\2#", cleaned)
        if cleaned == content:
            return _OPENER.sub(r"&lt;\1", cleaned)
        content = cleaned


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
    body = message.get("body") or {}
    content = str(body.get("content") or "") if isinstance(body, dict) else ""
    if isinstance(body, dict) and str(body.get("contentType", "")).lower() != "html":
        content = html.escape(content).replace("\n", "<br>")
    when = html.escape(str(message.get("createdDateTime") or ""))
    deleted = " <em>(deleted)</em>" if message.get("deletedDateTime") else ""
    edited = " <em>(edited)</em>" if message.get("lastEditedDateTime") else ""
    subject = message.get("subject")
    head = f"<h2>{html.escape(str(subject))}</h2>" if subject else ""
    return (
        f'<div class="{css}">{head}<p class="meta"><b>{html.escape(_author(message))}</b> '
        f"{when}{edited}{deleted}</p><div>{_inline(sanitize(content), images)}</div></div>"
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
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>{title}</title>",
        "<style>body{font-family:sans-serif;max-width:50em;margin:1em auto}"
        ".meta{color:#555;font-size:90%}.reply{margin-left:2em;border-left:3px solid #ddd;"
        "padding-left:1em}</style></head><body>",
        f'<p class="meta">{html.escape(channel)}</p>',
        _post(root, "post", shown),
    ]
    parts += [_post(reply, "reply", shown) for reply in replies]
    parts.append("</body></html>")
    return "\n".join(parts).encode("utf-8")
