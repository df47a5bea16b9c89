"""Rendering pages: the Jinja2 environment (autoescaping on), the context every page
gets (the user, their CSRF token, the repositories) and formatting filters."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from cli.serve.console import Console
from cli.serve.security import SignedIn
from cli.ui.output import human_size

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return (
                f"{seconds / size:.1f} {unit}" if unit == "d" else f"{int(seconds // size)} {unit}"
            )
    return f"{int(seconds)} s"


def utc(timestamp: float | int | None) -> str:
    if not timestamp:
        return "—"
    return datetime.fromtimestamp(float(timestamp), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def vfs_quote(path: str) -> str:
    """A VFS path for a query string (names may hold any byte)."""
    return quote(path.encode("utf-8", "surrogateescape"), safe="/")


class Web:
    """The template environment of one console."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["size"] = lambda n: human_size(int(n or 0))
        self.env.filters["age"] = human_age
        self.env.filters["utc"] = utc
        self.env.filters["q"] = vfs_quote

    def render(
        self, request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> HTMLResponse:
        user = getattr(request.state, "user", None)
        signed = user if isinstance(user, SignedIn) else None
        current = self.console.repo(signed.session.repo if signed else None)
        page = {
            "user": signed,
            "csrf_token": signed.session.csrf if signed else context.get("csrf_token"),
            "repos": [r.name for r in self.console.repos],
            "repo_name": current.name,
            "now": time.time(),
            "stale_seconds": self.console.settings.stale_seconds,
            **context,
        }
        return HTMLResponse(self.env.get_template(name).render(page), status_code=status_code)
