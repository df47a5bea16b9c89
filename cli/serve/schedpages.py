"""The schedules page: every scheduled job's next run times, its last run and
outcome, the scheduler's state and the notifications about the last runs
(everyone signed in); an administrator may start a schedule's backup now
(POST, CSRF token, audited).

The scheduler is found as the background service ``schedules``
(cli/serve/schedview.py): without ``[[schedule]]`` tables there is none and
the page says so.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from cli.serve.console import Console
from cli.serve.login import client_address
from cli.serve.notifylog import stamp_of
from cli.serve.schedview import SchedulerView, ScheduleViewSource
from cli.serve.security import checked_form, require, signed_in
from cli.serve.services import Services
from cli.serve.web import Web
from store import StoreError

SERVICE = "schedules"


class SchedulePages:
    def __init__(self, console: Console, web: Web, services: Services) -> None:
        self.console = console
        self.web = web
        self.services = services

    def source(self) -> ScheduleViewSource | None:
        service = self.services.get(SERVICE)
        return service if isinstance(service, ScheduleViewSource) else None

    async def schedules(self, request: Request) -> Response:
        source = self.source()
        view: SchedulerView | None = None
        deliveries: list[dict[str, Any]] = []
        if source is not None:
            view = await run_in_threadpool(source.schedule_view)
            served = self.console.repo(signed_in(request).session.repo)

            def lookup() -> list[dict[str, Any]]:
                out: list[dict[str, Any]] = []
                for job in view.jobs if view else []:
                    last = job.last_run or {}
                    run, started = last.get("run_id"), last.get("started")
                    if isinstance(run, str) and isinstance(started, int | float):
                        out.extend(served.notifications.for_run(run, stamp_of(started)))
                return sorted(out, key=lambda d: str(d.get("time", "")), reverse=True)

            try:
                deliveries = await run_in_threadpool(lookup)
            except StoreError:
                deliveries = [{"channel": "?", "outcome": "the repository cannot be read now"}]
        return self.web.render(request, "schedules.html", {"view": view, "deliveries": deliveries})

    async def run_now(self, request: Request) -> Response:
        user = require(request, "admin")
        form = await checked_form(request)
        source = self.source()
        name = str(form.get("schedule") or "")
        if source is None:
            raise HTTPException(404, "no schedule is configured")
        served = self.console.primary
        await run_in_threadpool(
            served.audit.record, "schedule-run", user.name, client_address(request), schedule=name
        )
        if not await run_in_threadpool(source.run_now, name):
            raise HTTPException(404, "no such schedule")
        return RedirectResponse("/schedules", status_code=303)
