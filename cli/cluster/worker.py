"""``coffer worker``: a long-running Celery worker that runs owner jobs.

One process, ``concurrency`` threads (Celery's thread pool): owner jobs wait on
Graph and storage, not on the CPU, and threads share the process's Graph
tokens, repository index and cache. No child process is forked, so no secret
reaches another process's environment.

Shutdown: SIGTERM (or Ctrl-C) is Celery's warm shutdown: no new job is taken,
the running owners finish and commit, then the process exits 0. A second
signal, or SIGKILL, stops at once; the unfinished jobs were not acknowledged
(acks late), so the broker hands them to another worker after the visibility
timeout, and they resume from their owners' checkpoints.

Liveness: the worker keeps a short-lived key per queue in Redis (heartbeat.py),
so a following ``coffer backup`` can tell a quiet run from one nobody serves.

In hand: from the moment a job's task starts until it ends (its retries and
lease waits included), the job is marked in Redis as in this worker's hands
(inhand.py), so that the coordinator can tell a job somewhere (queued, in
hand, done) from one Celery or Redis lost (accounting.py).

Failures of a job: a lease held by another job of the same owner is waited for
in the task's thread (every few seconds, without limit: that job is alive);
not through Celery's ``retry``, which publishes a new message: after a broker
restart that publish can fail, and Celery then drops the job, and the
countdown message is held by the consumer, lost with its connection until the
visibility timeout. Outages of the
broker, the storage or Graph are retried MAX_RETRIES times with exponential
backoff inside the worker (the broker may be the thing that is down), then the
owner is reported failed; what no retry fixes (no repository
password, no [tenant]) fails the owner at once with the reason, and the run
goes on with the other owners. A warm shutdown while a job waits for a lease
gives the job back to the queue.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import redis
from celery import Task
from celery.exceptions import Reject
from celery.worker import state as worker_state

from cli.app import App
from cli.cluster.broker import BACKUP_TASK, RESTORE_TASK, celery_app, check_reachable, redis_client
from cli.cluster.heartbeat import Heartbeat
from cli.cluster.jobs import BackupMessage, JobFailed, WorkerContext, run_backup_job
from cli.cluster.lease import LeaseBusy
from cli.cluster.restorejobs import RestoreMessage, run_restore_job
from cli.cluster.runstate import RunState
from cli.cluster.settings import ClusterSettings
from sources.errors import SourceError
from store import StoreError

log = logging.getLogger("coffer.worker")

MAX_RETRIES = 3
LEASE_RETRY_SECONDS = 5.0


def _owner_field(message: Any) -> tuple[str, str] | None:
    """(run, "kind:key") of a message, or None if it is unreadable."""
    for kind in (BackupMessage, RestoreMessage):
        try:
            parsed = kind.from_map(message)
        except JobFailed:
            continue
        return parsed.run, parsed.field
    return None


def _without_snapshot_names(message: Any) -> Any:
    """A backup job's message without the snapshot names the enqueuing run gave."""
    if isinstance(message, dict) and "snapshots" in message:
        return {k: v for k, v in message.items() if k != "snapshots"}
    return message


def _record_failure(ctx: WorkerContext, message: Any, error: str) -> dict[str, Any]:
    outcome = {"status": "failed", "snapshot": None, "worker": ctx.name, "error": error}
    where = _owner_field(message)
    if where is None:
        log.error("dropping a malformed job: %s", error)
        return outcome
    run, field = where
    try:
        RunState(ctx.redis, run, ctx.cluster.result_seconds).owner_done(field, outcome)
    except redis.RedisError as exc:
        log.error("cannot record the failure of %s: %s", field, exc)  # noqa: TRY400 (an outage)
    return outcome


def _wait_for_broker(ctx: WorkerContext, limit: float) -> None:
    """Sleep until the broker answers again (at most ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            ctx.redis.ping()
            return
        except redis.RedisError:
            time.sleep(1.0)


def _handler(ctx: WorkerContext, body: Any) -> Any:
    """A Celery task body around a job function (see the module docstring).

    Outages are retried here, in the worker, not with Celery's ``retry``: that
    publishes a new message, which fails while the broker is down (and Celery
    then drops the job). The job functions are idempotent, so running one
    again after a broker, storage or Graph outage is safe."""

    def task(self: Task[Any, Any], message: Any) -> dict[str, Any]:
        where = _owner_field(message)
        with ctx.hands.holding(*where) if where else contextlib.nullcontext():
            return attempts(message)

    def attempts(message: Any) -> dict[str, Any]:
        attempt = 0
        busy_noted = False
        while True:
            try:
                result: dict[str, Any] = body(ctx, message)
                return result
            except LeaseBusy:
                if worker_state.should_stop is not None:
                    # Warm shutdown: do not hold it up for another job's owner.
                    raise Reject("shutting down", requeue=True) from None
                if not busy_noted:
                    log.info("owner busy elsewhere; waiting for its lease")
                    busy_noted = True
                time.sleep(LEASE_RETRY_SECONDS)
            except JobFailed as exc:
                log.error("job failed: %s", exc)  # noqa: TRY400 (expected: no traceback)
                return _record_failure(ctx, message, str(exc))
            except (redis.RedisError, StoreError, SourceError, OSError) as exc:
                attempt += 1
                if attempt > MAX_RETRIES:
                    log.error("job failed after %d retries: %s", MAX_RETRIES, exc)  # noqa: TRY400
                    return _record_failure(ctx, message, f"worker {ctx.name}: {exc}")
                delay = 2.0**attempt
                log.warning("job interrupted (%s); retrying in %.0fs", exc, delay)
                # The attempt may have committed before the outage hit it; the
                # run's record of starts (which makes the message's snapshot
                # names enough, jobs.py) is gone if Redis lost its data: without
                # the names, the job lists the repository and finds the commit.
                message = _without_snapshot_names(message)
                time.sleep(delay)
                if isinstance(exc, redis.RedisError):
                    _wait_for_broker(ctx, ctx.cluster.visibility_seconds)
            except Exception as exc:  # a bug: this owner fails, the worker goes on
                log.exception("job failed unexpectedly")
                return _record_failure(
                    ctx,
                    message,
                    f"worker {ctx.name}: unexpected error: {type(exc).__name__}: {exc}",
                )

    return task


def run_worker(
    app: App,
    settings: ClusterSettings,
    *,
    concurrency: int,
    queues: tuple[str, ...],
    loglevel: int,
) -> int:
    """Serve jobs until a signal stops the worker; returns the exit code.
    Raises BrokerUnreachable (exit 15) if the broker does not answer at start."""
    client = redis_client(settings)
    check_reachable(client, settings)
    ctx = WorkerContext(app, settings, client)
    celery = celery_app(
        settings,
        {
            BACKUP_TASK: _handler(ctx, run_backup_job),
            RESTORE_TASK: _handler(ctx, run_restore_job),
        },
    )
    worker = celery.Worker(
        hostname=f"coffer@{ctx.name.replace(':', '-')}",
        concurrency=concurrency,
        pool="threads",
        queues=list(queues or (settings.queue,)),
        loglevel=logging.getLevelName(loglevel),
        quiet=True,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        optimization="fair",
    )
    log.warning(
        "worker %s serving queue(s) %s on %s with %d thread(s)",
        ctx.name,
        ", ".join(queues or (settings.queue,)),
        settings.label,
        concurrency,
    )
    heartbeat = Heartbeat(client, tuple(queues or (settings.queue,)), ctx.name)
    try:
        worker.start()
    finally:
        heartbeat.stop()
        ctx.close()
    log.warning("worker %s stopped", ctx.name)
    return int(worker.exitcode or 0)
