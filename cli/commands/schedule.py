"""``coffer schedule``: the ``[[schedule]]`` tables that ``coffer serve`` runs.

    coffer schedule list [--json]     next run times, last run and outcome
    coffer schedule run NAME [--json] run one now, as the server would (hooks,
                                      retention, notifications), and wait for it
    coffer schedule summary           print the daily summary and send it now

``run`` exits 0 when the run succeeded, 3 partial, 12 when the schedule's
previous run still holds its lock, 130 when Ctrl-C or SIGTERM interrupted it
(its backup child is interrupted too, and the run recorded as ``interrupted``),
1 failed (a failing pre command included).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import click

from cli.app import App
from cli.errors import CliError, ConfigError
from cli.schedules.config import parse_notify, parse_schedules
from cli.schedules.crontimes import next_times
from cli.schedules.foreground import run_in_foreground
from cli.schedules.notify import Delivery, Notifier
from cli.schedules.runner import KIND_BACKUP, Runner
from cli.schedules.scheduler import iso, jobs_of, run_message
from cli.schedules.service import coffer_command, state_of
from cli.schedules.summary import build_summary, owners_of_overview
from cli.serve.notifylog import NotificationLog
from cli.serve.overview import build_overview
from cli.ui.output import note, print_json, shown
from store import ExitCode, StoreError


@click.group("schedule")
def command() -> None:
    """Show and run the configured schedules (coffer serve runs them on time)."""


@command.command("list")
@click.option(
    "--count",
    type=click.IntRange(1, 50),
    default=3,
    show_default=True,
    help="Next run times shown.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_schedules(app: App, count: int, as_json: bool) -> None:
    """Each schedule's next run times and its last run."""
    state = state_of(app).load()
    now = time.time()
    rows: list[dict[str, Any]] = []
    for job in jobs_of(parse_schedules(app.config)):
        s = job.schedule
        entry = state.get(job.key, {})
        rows.append(
            {
                "name": s.name,
                "kind": job.kind,
                "what": {"paths": [str(p) for p in s.paths]}
                if s.paths
                else {"users": list(s.users), "services": list(s.services)},
                "cron": list(job.cron.expressions),
                "timezone": job.cron.timezone.key,
                "next": [iso(t) for t in next_times(job.cron, now, count)],
                "last_run": entry.get("last_run"),
            }
        )
    if as_json:
        print_json(rows)
        return
    for row in rows:
        last = row["last_run"]
        last_text = (
            f"{last['outcome']} at {iso(last['finished'])}" if isinstance(last, dict) else "never"
        )
        click.echo(
            f"{shown(row['name'])} ({row['kind']}): {' | '.join(row['cron'])} ({row['timezone']}); "
            f"next {row['next'][0]}; last {last_text}"
        )


def _delivery_recorder(app: App) -> Callable[[Delivery], object] | None:
    try:
        deliveries = NotificationLog(app.open_repo(), threading.RLock())
    except (StoreError, CliError) as exc:
        note(f"notification deliveries will not be recorded: {exc}")
        return None
    return lambda delivery: deliveries.record(delivery.to_record())


@command.command("run")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the run's result as JSON.")
@click.pass_obj
def run(app: App, name: str, as_json: bool) -> int:
    """Run schedule NAME's backup now and wait for it (and its notifications)."""
    schedules = {s.name: s for s in parse_schedules(app.config)}
    schedule = schedules.get(name)
    if schedule is None:
        raise ConfigError(
            f"no [[schedule]] named {name!r} (known: {', '.join(sorted(schedules)) or 'none'})"
        )
    result = run_in_foreground(Runner(coffer_command(app), state_of(app)), schedule, KIND_BACKUP)
    if result.outcome in schedule.notify.on:
        # Deliveries are stored in the repository, as coffer serve stores them (a
        # repository that cannot be opened now only loses the records).
        notifier = Notifier(parse_notify(app.config), _delivery_recorder(app))
        message = run_message(result)
        notifier.send(
            replace(message, email=schedule.notify.email, webhooks=schedule.notify.webhooks)
        )
        notifier.flush()
        notifier.stop()
    if as_json:
        print_json(result.to_json())
    else:
        note(
            f"schedule {shown(name)}: {result.outcome}"
            + (f" (report {result.report})" if result.report else "")
        )
        for message_line in result.messages:
            note(f"  {message_line}")
    if result.outcome == "skipped":
        return ExitCode.LOCKED
    if result.outcome == "interrupted":
        return ExitCode.INTERRUPTED
    return {"succeeded": ExitCode.OK, "partial": ExitCode.PARTIAL}.get(
        result.outcome, ExitCode.ERROR
    )


@command.command("summary")
@click.option("--no-send", is_flag=True, help="Print the summary only.")
@click.pass_obj
def summary(app: App, no_send: bool) -> None:
    """Print the daily summary ([notify.summary]) and send it now."""
    settings = parse_notify(app.config)
    if settings.summary is None:
        raise ConfigError("no [notify.summary] table in the configuration")
    # The owners of the snapshots and of the stored run reports (an owner whose
    # every backup failed has no snapshot but is listed, as never backed up).
    owners = owners_of_overview(build_overview(app.open_repo()))
    message = build_summary(coffer_command(app), settings.summary, time.time(), owners)
    click.echo(f"{message.subject}\n\n{message.text}")
    if not no_send:
        notifier = Notifier(settings)
        notifier.send(message)
        notifier.flush()
        notifier.stop()
        if notifier.failures:
            raise CliError(f"could not send the summary: {', '.join(notifier.failures)}")
