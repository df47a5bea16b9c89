"""Sign-in and sign-out pages, /healthz and /metrics (the routes that need no session)."""

from __future__ import annotations

import secrets

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from cli.serve.console import Console
from cli.serve.metrics import ScheduleSource, render_metrics
from cli.serve.security import Sessions, check_csrf, checked_form, safe_next, signed_in
from cli.serve.services import Services
from cli.serve.web import Web

MAX_FIELD = 1024


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


class LoginRoutes:
    def __init__(
        self, console: Console, sessions: Sessions, web: Web, services: Services | None = None
    ) -> None:
        self.console = console
        self.services = services  # /metrics shows the scheduler's jobs when one runs
        self.sessions = sessions
        self.web = web

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def metrics(self, request: Request) -> Response:
        token = self.console.metrics_token()
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if (
            token is None
            or scheme.lower() != "bearer"
            or not secrets.compare_digest(value.strip().encode(), token.encode())
        ):
            return PlainTextResponse(
                "metrics need Authorization: Bearer <token>\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="coffer"'},
            )
        scheduler = self.services.get("schedules") if self.services is not None else None
        jobs = scheduler.job_figures if isinstance(scheduler, ScheduleSource) else None
        body = await run_in_threadpool(
            render_metrics, lambda: [r.figures() for r in self.console.repos], jobs
        )
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    def _form(self, request: Request, error: str | None = None, status: int = 200) -> Response:
        token = request.session.get("login_csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            request.session["login_csrf"] = token
        return self.web.render(
            request,
            "login.html",
            {"csrf_token": token, "error": error, "next": request.query_params.get("next", "")},
            status_code=status,
        )

    async def login_page(self, request: Request) -> Response:
        return self._form(request)

    async def login(self, request: Request) -> Response:
        form = await request.form()
        check_csrf(request.session.get("login_csrf"), form)
        name = str(form.get("username") or "")[:MAX_FIELD]
        password = str(form.get("password") or "")[:MAX_FIELD]
        address = client_address(request)
        limiter = self.console.limiter
        wait = limiter.retry_after(name, address)
        if wait > 0:
            await run_in_threadpool(
                self.console.primary.audit.record, "sign-in", name, address, outcome="locked out"
            )
            response = self._form(
                request, f"Too many failed sign-ins: try again in {int(wait) + 1} s.", 429
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        user = await run_in_threadpool(self.console.users.verify, name, password)
        if user is None:
            limiter.failed(name, address)
            await run_in_threadpool(
                self.console.primary.audit.record, "sign-in", name, address, outcome="failed"
            )
            return self._form(request, "Wrong user name or password.", 401)
        limiter.succeeded(name)
        await run_in_threadpool(
            self.console.primary.audit.record, "sign-in", name, address, outcome="ok"
        )
        # A fresh session (and CSRF token) at every sign-in: no fixation.
        session = self.sessions.create(user.name)
        request.session.clear()
        request.session["sid"] = session.sid
        target = safe_next(str(form.get("next") or ""))
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request) -> Response:
        await checked_form(request)
        self.sessions.end(signed_in(request).session.sid)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    async def not_found(self, request: Request) -> Response:
        raise HTTPException(404)
