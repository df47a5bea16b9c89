"""What the console's schedules page shows of the scheduler (cli/schedules/), as
plain data: the scheduler implements :class:`ScheduleView` (the console does not
import the scheduler, it finds it as the background service ``schedules``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class JobView:
    """One scheduled job (a schedule's backup, prune or check)."""

    schedule: str
    kind: str
    what: str  # "users: *; services: mail" or "paths: /srv/data"
    cron: list[str]
    timezone: str
    next_runs: list[float]
    running: bool
    last_run: dict[str, Any] | None  # cli/schedules/runner.py RunResult.to_json()
    interrupted: dict[str, Any] | None = None  # waiting to run again at start-up


@dataclass
class SchedulerView:
    state: str  # "running" (its loop is alive) or "stopped"
    jobs: list[JobView] = field(default_factory=list)
    summary_next: float | None = None
    notifications_queued: int = 0
    notifications_failed: int = 0  # channels given up since the server started


@runtime_checkable
class ScheduleViewSource(Protocol):
    """The scheduler, seen from the console (thread-safe)."""

    def schedule_view(self, count: int = 3) -> SchedulerView: ...

    def run_now(self, schedule: str) -> bool: ...
