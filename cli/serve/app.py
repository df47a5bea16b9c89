"""The console's ASGI application, made by :func:`create_app` (the factory tests,
``coffer serve`` and later features use): routes, middleware and the
background services started and stopped with the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cli.serve.console import Console
from cli.serve.jobs import RestoreJobs
from cli.serve.login import LoginRoutes
from cli.serve.pages import Pages
from cli.serve.schedpages import SchedulePages
from cli.serve.security import SecurityHeaders, Sessions, SignInGate
from cli.serve.services import Services
from cli.serve.web import STATIC, Web

SESSION_COOKIE = "coffer_session"


def create_app(console: Console, services: Services | None = None) -> Starlette:
    """The application serving ``console``. ``services`` (default: a new registry)
    gets the restore jobs registered; all are started when the server starts and
    stopped when it stops. The registry is ``app.state.services``."""
    services = services or Services()
    jobs = RestoreJobs(console)
    services.register(jobs)
    sessions = Sessions(console.settings.session_seconds)
    web = Web(console)
    login = LoginRoutes(console, sessions, web, services)
    pages = Pages(console, web, jobs)
    schedule_pages = SchedulePages(console, web, services)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code >= 400 and getattr(request.state, "user", None) is not None:
            return web.render(
                request,
                "error.html",
                {"status": exc.status_code, "detail": exc.detail},
                status_code=exc.status_code,
            )
        return PlainTextResponse(f"{exc.status_code}: {exc.detail}\n", status_code=exc.status_code)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services.start_all()
        try:
            yield
        finally:
            services.stop_all()

    routes = [
        Route("/healthz", login.healthz),
        Route("/metrics", login.metrics),
        Route("/login", login.login_page, methods=["GET"]),
        Route("/login", login.login, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Route("/", pages.start),
        Route("/runs", pages.runs),
        Route("/report", pages.report),
        Route("/owners", pages.owners),
        Route("/owner", pages.owner),
        Route("/repository", pages.repository),
        Route("/repo", pages.select_repo, methods=["POST"]),
        Route("/audit", pages.audit),
        Route("/browse", pages.browse),
        Route("/item", pages.item),
        Route("/item/body", pages.item_body),
        Route("/download", pages.download),
        Route("/search", pages.search),
        Route("/restore", pages.restore, methods=["POST"]),
        Route("/restore/job", pages.job),
        Route("/restore/status", pages.job_status),
        Route("/restore/zip", pages.job_zip),
        Route("/schedules", schedule_pages.schedules),
        Route("/schedules/run", schedule_pages.run_now, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders, tls=console.settings.tls),
        Middleware(
            SessionMiddleware,
            secret_key=console.session_key,
            session_cookie=SESSION_COOKIE,
            max_age=console.settings.session_seconds,
            same_site="strict",
            https_only=console.settings.tls,
        ),
        Middleware(SignInGate, sessions=sessions, users=console.users),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.sessions = sessions
    app.state.jobs = jobs
    return app
