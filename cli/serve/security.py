"""The console's defences, in one place: security headers and the Content-Security-
Policy, the sign-in gate, server-side sessions, CSRF tokens and role checks.

- Sessions: Starlette's signed cookie (HttpOnly, SameSite=Strict, Secure when
  serving TLS) carries only a random session ID; the server keeps what it
  means (user, CSRF token, expiry), so signing out or removing a user ends
  the session at once, and a restart ends every session.
- Every path except /healthz, /metrics (its own bearer token), /login and
  /static answers a redirect to /login until signed in.
- Every state-changing request (POST) must carry the session's CSRF token in
  its form (``csrf_token``), compared in constant time; otherwise 403.
- Roles are checked on the server for each action (viewer < restorer < admin).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cli.serve.users import ROLES, UserFile, role_rank

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PUBLIC_PATHS = ("/healthz", "/metrics", "/login")
PUBLIC_PREFIXES = ("/static/",)


@dataclass
class Session:
    sid: str
    user: str
    csrf: str
    expires: float
    repo: str | None = None


class Sessions:
    """Server-side sessions by ID. Thread-safe."""

    def __init__(self, lifetime: float, clock: Callable[[], float] = time.time) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, user: str) -> Session:
        session = Session(
            secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), self.clock() + self.lifetime
        )
        with self._lock:
            now = self.clock()
            for sid in [s for s, v in self._sessions.items() if v.expires <= now]:
                del self._sessions[sid]
            self._sessions[session.sid] = session
        return session

    def get(self, sid: Any) -> Session | None:
        if not isinstance(sid, str):
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is None or session.expires <= self.clock():
                self._sessions.pop(sid, None)
                return None
            return session

    def end(self, sid: Any) -> None:
        with self._lock:
            self._sessions.pop(sid, None) if isinstance(sid, str) else None

    def end_user(self, user: str) -> None:
        with self._lock:
            for sid in [s for s, v in self._sessions.items() if v.user == user]:
                del self._sessions[sid]


@dataclass(frozen=True)
class SignedIn:
    """The signed-in user of a request (``request.state.user``)."""

    name: str
    role: str
    session: Session

    def may(self, role: str) -> bool:
        return role_rank(self.role) >= role_rank(role)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class SecurityHeaders:
    """Adds CSP and the other protective headers to every response (a response that
    sets its own CSP, such as the mail preview frame, keeps it)."""

    def __init__(self, app: ASGIApp, *, tls: bool) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = CSP
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                if "x-frame-options" not in headers:
                    headers["X-Frame-Options"] = "DENY"
                if not str(scope.get("path", "")).startswith("/static/"):
                    headers["Cache-Control"] = "no-store"
                if self.tls:
                    headers["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SignInGate:
    """Lets through public paths; everything else needs a live session of a user who
    still exists, else a 303 redirect to /login (``next`` = where they were going)."""

    def __init__(self, app: ASGIApp, *, sessions: Sessions, users: UserFile) -> None:
        self.app = app
        self.sessions = sessions
        self.users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        cookie = scope.get("session") or {}
        session = self.sessions.get(cookie.get("sid"))
        user = self.users.load().get(session.user) if session else None
        if session is None or user is None:
            target = scope["path"]
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            where = "/login" + ("" if target == "/" else "?next=" + quote(target, safe=""))
            await RedirectResponse(where, status_code=303)(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = SignedIn(user.name, user.role, session)
        await self.app(scope, receive, send)


def signed_in(request: Request) -> SignedIn:
    user = getattr(request.state, "user", None)
    if not isinstance(user, SignedIn):  # the gate let a public path through
        raise HTTPException(403)
    return user


def require(request: Request, role: str) -> SignedIn:
    """The signed-in user if their role is at least ``role``; else 403."""
    assert role in ROLES
    user = signed_in(request)
    if not user.may(role):
        raise HTTPException(403, f"this needs the {role} role")
    return user


def check_csrf(expected: str | None, form: FormData) -> None:
    """403 unless the form's ``csrf_token`` equals ``expected`` (constant time)."""
    given = form.get("csrf_token")
    if not expected or not isinstance(given, str) or not secrets.compare_digest(given, expected):
        raise HTTPException(403, "missing or wrong CSRF token")


async def checked_form(request: Request) -> FormData:
    """The signed-in request's form, after the CSRF check (403 without it)."""
    form = await request.form()
    check_csrf(signed_in(request).session.csrf, form)
    return form


def safe_next(value: str | None) -> str:
    """A redirect target after sign-in: a local path only (no //host, no scheme)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value
