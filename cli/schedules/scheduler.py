"""The scheduler: a background service of ``coffer serve`` that starts each
schedule's jobs (backup, prune, check) when their cron expressions fire.

Time comes from an injectable ``clock`` (POSIX seconds), and :meth:`Scheduler.tick`
does one step, so tests drive it with a fake "now". Rules:

- No overlap: a job whose schedule still has a run going (a thread of this
  process, or the schedule's flock held by ``coffer schedule run``) is skipped
  and the skip is recorded and notified like any outcome.
- Missed runs: the state file keeps the last fire time handled per job. At
  start-up, if the first fire time after it has passed (the machine was off)
  and lies within the schedule's grace window, the job runs once at once;
  older misses are recorded as ``missed`` and not run.
- Interrupted runs: stopping the server (SIGTERM) interrupts the runs in
  progress (their ``coffer`` child gets SIGINT, as from Ctrl-C) and records
  each as ``interrupted`` (notified like any outcome) with the time it was
  stopped. At the next start-up, an interrupted run stopped within the
  schedule's grace window runs again at once (a backup resumes from what the
  interrupted one stored); an older one is recorded as ``skipped``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cli.schedules.config import OUTCOMES, Cron, NotifySettings, Schedule, SummarySettings
from cli.schedules.crontimes import next_time, next_times
from cli.schedules.notify import Message, Notifier
from cli.schedules.runner import KIND_BACKUP, KIND_CHECK, KIND_PRUNE, Runner, RunResult
from cli.schedules.state import StateFile
from cli.schedules.summary import OwnerLine, build_summary
from cli.serve.metrics import JobFigures
from cli.serve.schedview import JobView, SchedulerView
from store import StoreError

log = logging.getLogger(__name__)

STOP_WAIT = 30.0  # seconds stop() waits for interrupted runs to record their outcome


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass
class Job:
    schedule: Schedule
    kind: str
    cron: Cron
    next_due: float = 0.0
    thread: threading.Thread | None = None

    @property
    def key(self) -> str:
        return (
            self.schedule.name if self.kind == KIND_BACKUP else f"{self.schedule.name}:{self.kind}"
        )


def jobs_of(schedules: list[Schedule]) -> list[Job]:
    jobs: list[Job] = []
    for s in schedules:
        jobs.append(Job(s, KIND_BACKUP, s.cron))
        if s.prune is not None:
            jobs.append(Job(s, KIND_PRUNE, s.prune))
        if s.check_cron is not None:
            jobs.append(Job(s, KIND_CHECK, s.check_cron))
    return jobs


def run_message(result: RunResult) -> Message:
    """The notification of one run (no secrets: names, times, codes, report key)."""
    lines = [
        f"Schedule: {result.schedule} ({result.kind})",
        f"Outcome: {result.outcome}",
        f"Run: {result.run_id}",
        f"Started: {iso(result.started)}",
        f"Finished: {iso(result.finished or result.started)}",
    ]
    if result.exit_code is not None:
        lines.append(f"Exit code: {result.exit_code}")
    if result.report:
        lines.append(f"Report: {result.report} (coffer report {result.report})")
    if result.owners:
        lines.append(f"Owners: {', '.join(result.owners)}")
    lines.extend(result.messages)
    return Message(
        f"coffer: {result.kind} {result.schedule} {result.outcome}",
        "\n".join(lines),
        schedule=result.schedule,
        run_id=result.run_id,
        report=result.report,
        outcome=result.outcome,
    )


class Scheduler:
    """The service (module docstring). ``start``/``stop`` are called once each by
    the server; ``tick`` and ``startup`` are for tests and the loop."""

    name = "schedules"

    def __init__(
        self,
        schedules: list[Schedule],
        runner: Runner,
        notifier: Notifier,
        state: StateFile,
        clock: Callable[[], float] = time.time,
        summary: SummarySettings | None = None,
    ) -> None:
        self.jobs = jobs_of(schedules)
        self.summary = summary
        self.summary_next = 0.0
        self.summary_errors: list[str] = []
        self.runner = runner
        self.notifier = notifier
        self.state = state
        self.clock = clock
        self.results: list[RunResult] = []
        # Where the daily summary's owners come from (coffer serve: the console's
        # overview); None: coffer snapshots in a child (cli/schedules/summary.py).
        self.owners: Callable[[], list[OwnerLine]] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None

    # -- the service -------------------------------------------------------
    def start(self) -> None:
        self.startup(self.clock())
        self._loop = threading.Thread(target=self._run_loop, name="coffer-scheduler", daemon=True)
        self._loop.start()

    def stop(self) -> None:
        """Stop planning, interrupt the runs in progress and wait for them to record
        their outcome (at most the children's grace plus a post command's timeout)."""
        self._stop.set()
        if self._loop is not None:
            self._loop.join(timeout=5)
        if any(j.thread is not None and j.thread.is_alive() for j in self.jobs):
            log.warning("stopping: interrupting the scheduled runs in progress")
        self.runner.interrupt()
        self.wait_idle(timeout=STOP_WAIT)

    def _run_loop(self) -> None:
        while True:
            now = self.clock()
            dues = [j.next_due for j in self.jobs] + ([self.summary_next] if self.summary else [])
            wait = min(dues, default=now + 60) - now
            if self._stop.wait(max(0.5, min(wait, 30.0))):
                return
            try:
                self.tick(self.clock())
            except Exception:  # the loop outlives a bug in one tick
                log.exception("scheduler tick")

    # -- the steps ---------------------------------------------------------
    def startup(self, now: float) -> None:
        """Run (once) every job missed within its grace window; plan the next ones."""
        for job in self.jobs:
            entry = self.state.get(job.key)
            last = entry.get("last_due")
            resumed = self._resume(job, entry.get("interrupted"), now)
            if isinstance(last, int | float) and not resumed:
                missed = next_time(job.cron, float(last))
                if missed <= now:
                    if now - missed <= job.schedule.grace_seconds:
                        log.info("%s: running the run missed at %s", job.key, iso(missed))
                        self._launch(job, missed)
                    else:
                        log.warning(
                            "%s: missed run at %s is older than the grace window",
                            job.key,
                            iso(missed),
                        )
                        self.state.update(job.key, missed={"due": missed, "noticed": now})
                        self._finished(
                            RunResult(
                                job.schedule.name,
                                job.kind,
                                "-",
                                "skipped",
                                now,
                                now,
                                messages=[
                                    f"run due at {iso(missed)} was missed (server down), "
                                    "outside the grace window"
                                ],
                            )
                        )
            self.state.update(
                job.key, last_due=max(now, float(last) if isinstance(last, int | float) else now)
            )
            job.next_due = next_time(job.cron, now)
        if self.summary is not None:
            self.summary_next = next_time(self.summary.cron, now)

    def _resume(self, job: Job, interrupted: Any, now: float) -> bool:
        """Run again a run the server's stop interrupted, if within the grace window.
        True if launched."""
        if not isinstance(interrupted, dict):
            return False
        self.state.update(job.key, interrupted=None)
        at, due = interrupted.get("at"), interrupted.get("due")
        if not isinstance(at, int | float) or not isinstance(due, int | float):
            return False
        if now - at <= job.schedule.grace_seconds:
            log.info("%s: running again the run interrupted at %s", job.key, iso(at))
            self._launch(job, float(due), resumed=True)
            return True
        log.warning(
            "%s: the run interrupted at %s is older than the grace window", job.key, iso(at)
        )
        self._finished(
            RunResult(
                job.schedule.name,
                job.kind,
                "-",
                "skipped",
                now,
                now,
                messages=[
                    f"run interrupted at {iso(at)} (server stopped) not run again: "
                    "outside the grace window"
                ],
            )
        )
        return False

    def tick(self, now: float) -> None:
        """Start every job due at ``now``."""
        for job in self.jobs:
            if job.next_due and job.next_due <= now:
                due = job.next_due
                job.next_due = next_time(job.cron, now)
                self.state.update(job.key, last_due=due)
                self._launch(job, due)
        if self.summary is not None and self.summary_next and self.summary_next <= now:
            self.summary_next = next_time(self.summary.cron, now)
            threading.Thread(
                target=self._send_summary, args=(now,), name="coffer-summary", daemon=True
            ).start()

    def _send_summary(self, now: float) -> None:
        assert self.summary is not None
        try:
            owners = self.owners() if self.owners is not None else None
            self.notifier.send(build_summary(self.runner.coffer, self.summary, now, owners))
        except (OSError, RuntimeError, ValueError, StoreError) as exc:
            log.warning("daily summary failed: %s", exc)
            self.summary_errors.append(str(exc))

    def _launch(self, job: Job, due: float, *, resumed: bool = False) -> None:
        with self._lock:
            if (job.thread is not None and job.thread.is_alive()) or self._busy(job):
                self._finished(
                    RunResult(
                        job.schedule.name,
                        job.kind,
                        "-",
                        "skipped",
                        self.clock(),
                        self.clock(),
                        messages=[
                            f"run due at {iso(due)} skipped: the previous run is still going"
                        ],
                    )
                )
                return
            job.thread = threading.Thread(
                target=self._run_job,
                args=(job, due, resumed),
                name=f"coffer-run-{job.key}",
                daemon=True,
            )
            job.thread.start()

    def _busy(self, job: Job) -> bool:
        """Another job of the same schedule (its backup, prune or check) is running here."""
        return any(
            j is not job
            and j.schedule.name == job.schedule.name
            and j.thread is not None
            and j.thread.is_alive()
            for j in self.jobs
        )

    def _run_job(self, job: Job, due: float, resumed: bool) -> None:
        try:
            result = self.runner.run(job.schedule, job.kind)
            if resumed:
                result.messages.insert(0, "run again after the server stopped during it")
                self.state.update(job.key, last_run=result.to_json())
        except Exception as exc:  # the scheduler outlives a failing run
            log.exception("%s: run failed", job.key)
            result = RunResult(
                job.schedule.name,
                job.kind,
                "-",
                "failed",
                self.clock(),
                self.clock(),
                messages=[f"internal error: {type(exc).__name__}"],
            )
        if result.outcome == "interrupted":
            # Run again at the next start-up within the grace window (startup()).
            self.state.update(job.key, interrupted={"due": due, "at": self.clock()})
        self._finished(result)

    def _finished(self, result: RunResult) -> None:
        self.results.append(result)
        log.info("schedule %s (%s): %s", result.schedule, result.kind, result.outcome)
        schedule = next(j.schedule for j in self.jobs if j.schedule.name == result.schedule)
        if result.outcome not in schedule.notify.on:
            return
        message = run_message(result)
        self.notifier.send(
            replace(message, email=schedule.notify.email, webhooks=schedule.notify.webhooks)
        )

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait for every running job to end. True if all ended in time."""
        deadline = time.monotonic() + timeout
        for job in self.jobs:
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))
        return not any(j.thread is not None and j.thread.is_alive() for j in self.jobs)

    def schedule_view(self, count: int = 3) -> SchedulerView:
        """Every job with its next ``count`` run times and last run, for the console
        (cli/serve/schedview.py). Thread-safe (reads the state file)."""
        state = self.state.load()
        now = self.clock()
        views = []
        for job in self.jobs:
            s = job.schedule
            entry = state.get(job.key)
            entry = entry if isinstance(entry, dict) else {}
            last, interrupted = entry.get("last_run"), entry.get("interrupted")
            what = (
                "paths: " + ", ".join(str(p) for p in s.paths)
                if s.paths
                else f"users: {', '.join(s.users) or '*'}; services: "
                + (", ".join(s.services) or "all")
            )
            views.append(
                JobView(
                    s.name,
                    job.kind,
                    what,
                    list(job.cron.expressions),
                    job.cron.timezone.key,
                    next_times(job.cron, now, count),
                    job.thread is not None and job.thread.is_alive(),
                    last if isinstance(last, dict) else None,
                    interrupted if isinstance(interrupted, dict) else None,
                )
            )
        loop = self._loop
        return SchedulerView(
            "running" if loop is not None and loop.is_alive() else "stopped",
            views,
            self.summary_next or None,
            self.notifier.queued(),
            len(self.notifier.failures),
        )

    def run_now(self, schedule: str) -> bool:
        """Start ``schedule``'s backup now (an administrator asked), unless a run of it
        is going (then recorded as skipped, like a cron time). False if unknown."""
        job = next(
            (j for j in self.jobs if j.schedule.name == schedule and j.kind == KIND_BACKUP), None
        )
        if job is None:
            return False
        log.info("%s: run now, asked from the console", job.key)
        self._launch(job, self.clock())
        return True

    def job_figures(self) -> list[JobFigures]:
        """Each job's next run and last outcome, for /metrics (cli/serve/metrics.py)."""
        state = self.state.load()
        figures = []
        for job in self.jobs:
            entry = state.get(job.key)
            last = entry.get("last_run") if isinstance(entry, dict) else None
            last = last if isinstance(last, dict) else {}
            finished = last.get("finished")
            outcome = last.get("outcome")
            figures.append(
                JobFigures(
                    job.schedule.name,
                    job.kind,
                    job.next_due,
                    outcome if isinstance(outcome, str) else None,
                    float(finished) if isinstance(finished, int | float) else None,
                )
            )
        return figures


__all__ = ["OUTCOMES", "NotifySettings", "Scheduler", "iso", "jobs_of", "run_message"]
