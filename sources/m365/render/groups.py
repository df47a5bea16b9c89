"""A standalone HTML page for one thread of a Microsoft 365 group's conversations.

Posts are HTML written by people and by mail senders outside the tenant. Each body
goes through the Teams page's sanitiser (``render.html.sanitize``: scripts, frames,
event handlers and javascript: URLs removed); then every ``src``/``srcset``/
``background``/``poster`` that is not a ``data:`` URI is emptied, so the page loads
nothing remote even in a viewer that ignores its Content-Security-Policy (which
forbids scripts and remote loads as well). Pure functions; thread-safe.
"""

from __future__ import annotations

import html
import re
from typing import Any

from sources.m365.render.html import body_html, page, sanitize

# A resource-loading attribute with a quoted or unquoted value that is not a data: URI.
_REMOTE = re.compile(
    r"""(\s(?:src|srcset|background|poster|lowsrc|dynsrc)\s*=\s*)"""
    r"""(?:"(?!\s*data:)[^"]*"|'(?!\s*data:)[^']*'|(?![\s"']*data:)[^\s>"']+)""",
    re.IGNORECASE,
)


def inert(content: str) -> str:
    """``content`` sanitised, with every remote resource reference emptied."""
    return _REMOTE.sub(r'\1""', sanitize(content))


def _sender(post: dict[str, Any]) -> str:
    who = post.get("from") or post.get("sender") or {}
    address = who.get("emailAddress") if isinstance(who, dict) else None
    if isinstance(address, dict):
        name = str(address.get("name") or "")
        mail = str(address.get("address") or "")
        return f"{name} <{mail}>" if name and mail else name or mail or "(unknown)"
    return "(unknown)"


def _post(post: dict[str, Any], attachments: list[str]) -> str:
    content = body_html(post.get("body") or {})
    when = html.escape(str(post.get("receivedDateTime") or post.get("createdDateTime") or ""))
    files = "".join(f"<li>{html.escape(name)}</li>" for name in attachments)
    listed = f'<ul class="meta">{files}</ul>' if files else ""
    return (
        f'<div class="post"><p class="meta"><b>{html.escape(_sender(post))}</b> {when}</p>'
        f"<div>{inert(content)}</div>{listed}</div>"
    )


def render_group_thread(
    thread: dict[str, Any],
    posts: list[dict[str, Any]],
    group: str,
    attachments: dict[str, list[str]] | None = None,
) -> bytes:
    """The thread as one HTML document (UTF-8). ``attachments``: post id -> the names of
    its stored attachment files (listed under the post)."""
    names = attachments or {}
    title = html.escape(str(thread.get("topic") or "(no topic)"))
    parts = [f'<p class="meta">{html.escape(group)}</p><h1>{title}</h1>']
    parts += [_post(p, names.get(str(p.get("id")), [])) for p in posts]
    return page(title, ".post{border-top:1px solid #ddd;padding:.5em 0}", parts)
