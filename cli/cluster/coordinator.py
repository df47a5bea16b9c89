"""``coffer backup`` with a broker: discover, enqueue one job per owner, follow, report.

1. The broker must answer (else BrokerUnreachable, exit 15, before anything
   else is done).
2. Owners are discovered as in one process (TenantBackup.jobs), the run's
   manifest is stored in the repository (runreport.py), and one job per owner
   is enqueued, largest first (by the items of its latest snapshot; owners
   never backed up first, since their size is unknown), so the long owners do
   not start last.
3. Unless detached, the command follows the run's counters in Redis with the
   usual live line (owners done/total, items, bytes, an ETA from the owners'
   pace, throttled time, and how many owners each worker finished), riding
   out broker restarts, until every owner has an outcome; then the one run
   report is put together and returned for the caller to store, like a
   one-process run's.
4. While following, a watch (watch.py) reads each poll: when Redis lost the
   run's state (its epoch is gone: restarted without persistence, flushed,
   evicted, failed over) or its jobs (nothing moves, nothing runs, nothing is
   queued), the coordinator waits one lease lifetime (running jobs take their
   leases back meanwhile, lease.py), records as done the owners whose report
   of this run is in the repository, and enqueues every other owner again
   (jobs are idempotent). Nothing moving for ``stall_timeout`` with no worker
   alive raises RunStalled (exit 19); a broker unreachable that long raises
   BrokerUnreachable (exit 15). The jobs stay queued either way.

5. ``coffer backup --resume RUN`` (``resume``) takes up a run whose state Redis
   lost while nobody followed it (``--detach``): the jobs it enqueued come back
   from the run's manifest in the repository, less the owners whose report of
   the run is there, and the run is followed (or not, with ``--detach``) as in 3.

Ctrl-C stops following, not the run: the workers go on, and ``coffer report
RUN`` shows the report once it is complete.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import redis

from cli.cluster.broker import BACKUP_TASK, celery_app, check_reachable, redis_client
from cli.cluster.heartbeat import live_workers
from cli.cluster.jobs import BackupMessage, owner_snapshot_hints
from cli.cluster.runreport import MANIFEST_KIND, assemble, owner_reports
from cli.cluster.runstate import RunState
from cli.cluster.settings import BrokerUnreachable, ClusterSettings, RunNotLost, RunStalled
from cli.cluster.watch import RunWatch, Verdict
from cli.errors import CliError
from cli.ui.progress import Progress
from sources.m365 import REPORT_FORMAT, REPORT_VERSION, TenantBackup, TenantSettings
from sources.m365.backup.context import OwnerJob
from store import Owner, Repository, Snapshot, latest_per_owner

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
# Recovers a run whose state or jobs Redis lost: enqueues the owners not done
# again and returns the outcomes of those done ("kind:key" -> outcome).
Recover = Callable[[], dict[str, dict[str, Any]]]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def largest_first(snapshots: list[Snapshot], jobs: list[OwnerJob]) -> list[OwnerJob]:
    """Owners by the items their latest snapshot holds, most first; unknown first."""
    sizes: dict[tuple[str, str], int] = {}
    for snap in latest_per_owner(snapshots):
        stats = snap.stats or {}
        sizes[(snap.owner.kind, snap.owner.key)] = sum(
            int(stats.get(k, 0) or 0) for k in ("items_new", "items_changed", "items_unchanged")
        )
    return sorted(jobs, key=lambda j: -sizes.get((j.kind, j.key), 1 << 62))


def manifest_of(
    backup: TenantBackup,
    run_id: str,
    started: float,
    jobs: list[OwnerJob],
    broker: str,
    messages: list[BackupMessage],
) -> dict[str, Any]:
    """The run's manifest: what the report needs, and what ``messages_of`` needs
    to enqueue the run's jobs again (ids and options only, like the messages)."""
    settings = backup.settings
    conn = settings.connection
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "kind": "backup",
        "source": "m365",
        "run": run_id,
        "host": os.uname().nodename,
        "started": _iso(started),
        "started_epoch": started,
        "time_ns": messages[0].time_ns if messages else 0,
        "options": {
            "checkpoint_seconds": messages[0].checkpoint_seconds if messages else 0.0,
            "wait": messages[0].wait if messages else 0.0,
        },
        "broker": broker,
        "tenant": {
            "tenant_id": conn.tenant_id,
            "graph_url": conn.graph_url,
            "auth": conn.auth if conn.auth == "device_code" else conn.credential,
        },
        "settings": {
            "mime_dedup": settings.mime_dedup,
            "onedrive_versions": settings.onedrive_versions,
            "parallel_owners": settings.parallel_owners,
            "workers_per_owner": settings.workers_per_owner,
        },
        "problems": list(backup.problems),
        "owners_skipped": list(backup.skipped_owners),
        "owners": [
            {"kind": j.kind, "key": j.key, "name": j.name, "services": list(j.services)}
            for j in jobs
        ],
    }


def messages_of(manifest: dict[str, Any]) -> list[BackupMessage]:
    """The jobs a run enqueued, from its manifest (largest first, as enqueued).
    Raises CliError for a manifest without the owners' services (written before
    ``--resume`` existed) or one that does not parse."""
    run_id = str(manifest.get("run"))
    try:
        options = manifest["options"]
        return [
            BackupMessage(
                run_id,
                int(manifest["time_ns"]),
                str(manifest["tenant"]["tenant_id"]),
                str(owner["kind"]),
                str(owner["key"]),
                str(owner["name"]),
                tuple(str(s) for s in owner["services"]),
                float(options["checkpoint_seconds"]),
                float(options["wait"]),
            )
            for owner in manifest["owners"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise CliError(
            f"run {run_id}: its manifest does not say what was enqueued ({type(exc).__name__} "
            f"{exc}; written by an older Coffer?): run `coffer backup` again instead"
        ) from None


class ClusterBackup:
    """One scale-out backup run (see the module docstring)."""

    def __init__(self, cluster: ClusterSettings) -> None:
        self.cluster = cluster
        self.redis = redis_client(cluster)
        check_reachable(self.redis, cluster)
        # Runs enqueued by this process: the repository and their messages, to
        # enqueue again what Redis lost (follow).
        self._runs: dict[str, tuple[Repository, list[BackupMessage]]] = {}

    def send(self, task: str, bodies: list[dict[str, Any]]) -> None:
        """Enqueue one job per body on the run's queue, in order."""
        celery = celery_app(self.cluster)
        with celery.connection_for_write() as conn:
            for body in bodies:
                celery.send_task(
                    task, args=[body], queue=self.cluster.queue, connection=conn, retry=True
                )

    def _recover_backup(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Recover a backup run this process enqueued (see ``Recover``): the
        owner reports of the run in the repository are the truth."""
        repo, messages = self._runs[run_id]
        done = {
            field: {
                "status": entry.get("status"),
                "snapshot": entry.get("snapshot"),
                "worker": entry.get("worker"),
                "recovered": True,
            }
            for field, entry in owner_reports(repo, run_id).items()
        }
        # Without snapshot names: a job of these may have started before and
        # left a checkpoint the names do not include (jobs.py lists instead).
        again = [replace(m, snapshots=None) for m in messages if m.field not in done]
        log.warning(
            "run %s: %d owner(s) committed (from the repository), %d enqueued again",
            run_id[:12],
            len(done),
            len(again),
        )
        self.send(BACKUP_TASK, [m.to_map() for m in again])
        return done

    def enqueue(
        self,
        repo: Repository,
        settings: TenantSettings,
        *,
        prompt: Callable[[str], None] | None,
        checkpoint_seconds: float,
        wait: float,
        only_users: tuple[str, ...],
        only_services: tuple[str, ...],
    ) -> dict[str, Any]:
        """Discover and enqueue; returns the run's manifest (also stored)."""
        started = time.time()
        backup = TenantBackup(
            repo, settings, prompt=prompt, only_users=only_users, only_services=only_services
        )
        listing = repo.list_snapshots()  # once per run; each job is told its owner's
        jobs = largest_first(listing, backup.jobs())
        told = owner_snapshot_hints(listing)
        run_id = os.urandom(16).hex()
        time_ns = time.time_ns()
        tenant = settings.connection.tenant_id
        messages = [
            BackupMessage(
                run_id,
                time_ns,
                tenant,
                job.kind,
                job.key,
                job.name,
                job.services,
                checkpoint_seconds,
                wait,
                told.get(Owner(job.kind, job.key, job.name).identity, ()),
            )
            for job in jobs
        ]
        manifest = manifest_of(backup, run_id, started, jobs, self.cluster.label, messages)
        repo.save_report(MANIFEST_KIND, manifest)
        state = RunState(self.redis, run_id, self.cluster.result_seconds)
        state.start(len(jobs))
        self._runs[run_id] = (repo, messages)
        self.send(BACKUP_TASK, [m.to_map() for m in messages])
        return manifest

    def resume(self, repo: Repository, manifest: dict[str, Any]) -> int:
        """Enqueue again, with the run's id, time and options (its manifest), the
        owners of a run whose state Redis lost (``coffer backup --resume``) whose
        report of the run is not in the repository; returns how many: 0 when
        every owner's report is there (nothing is done). Like the follower's
        recovery, it waits one lease lifetime first (jobs still running take
        their leases back meanwhile). Idempotent: raises RunNotLost (3) while
        Redis holds the run's state (the run is going, or another resume claimed
        it first: of two at once, one enqueues), BrokerUnreachable (15) if the
        broker fails meanwhile, CliError for a manifest that names no services."""
        run_id = str(manifest["run"])
        messages = messages_of(manifest)
        state = RunState(self.redis, run_id, self.cluster.result_seconds)
        stored = owner_reports(repo, run_id)
        left = sum(1 for m in messages if m.field not in stored)
        if not left:
            return 0
        going = RunNotLost(
            f"run {run_id}: the broker holds the run ({len(stored)} of {len(messages)} owners "
            f"finished): nothing to resume; `coffer report {run_id}` shows it when it is done"
        )
        try:
            if state.known():
                raise going
            log.warning(
                "run %s: the broker holds no state of it; enqueueing the owners not "
                "finished again in %.0fs",
                run_id[:12],
                self.cluster.lease_seconds,
            )
            time.sleep(self.cluster.lease_seconds)
            if state.claim(len(messages)) is None:
                raise going
            self._runs[run_id] = (repo, messages)
            done = self._recover_backup(run_id)
            for field, outcome in done.items():
                state.owner_done(field, outcome)
        except redis.RedisError as exc:
            raise BrokerUnreachable(
                f"broker {self.cluster.label} failed while resuming run {run_id}: {exc}"
            ) from None
        return len(messages) - len(done)

    def follow(
        self,
        run_id: str,
        total: int,
        progress: Progress | None,
        recover: Recover | None = None,
    ) -> dict[str, Any]:
        """Wait until every owner of the run has an outcome; returns the counters.
        ``recover`` (default: this process's backup run) is called when Redis lost
        the run's state or jobs. Raises RunStalled (19) or BrokerUnreachable (15)
        after ``stall_timeout`` without progress (see the module docstring)."""
        state = RunState(self.redis, run_id, self.cluster.result_seconds)
        started = time.monotonic()
        if progress is not None:
            progress.owners_total = total

            def eta() -> float | None:
                # Owners left at the pace of the owners done so far (owners vary
                # in size; largest first, so the estimate errs long at the start).
                done = progress.owners_done
                if not done or done >= total:
                    return None
                return (time.monotonic() - started) / done * (total - done)

            progress.eta_source = eta
        watch = RunWatch(self.cluster.stall_seconds)
        outage_noted = False
        while True:
            try:
                now = state.snapshot()
                verdict = watch.check(now, self._queued, self._alive)
                if verdict in (Verdict.LOST, Verdict.JOBS_GONE):
                    watch.recovered(self._recover(state, total, verdict, recover))
                    continue
            except redis.RedisError as exc:
                if watch.idle_seconds() > self.cluster.stall_seconds:
                    raise BrokerUnreachable(
                        f"broker {self.cluster.label} unreachable for "
                        f"{watch.idle_seconds():.0f}s while following run {run_id}: {exc} "
                        f"(the run goes on; `coffer report {run_id}` shows it)"
                    ) from None
                if not outage_noted:
                    log.warning("broker unreachable (%s); waiting for it", exc)
                    outage_noted = True
                time.sleep(2.0)
                continue
            if outage_noted:
                log.warning("broker back; following the run again")
                outage_noted = False
            if verdict is Verdict.STALLED:
                left = total - len(now["owners"])
                raise RunStalled(
                    f"run {run_id}: no progress for {watch.idle_seconds():.0f}s with "
                    f"{left} owner(s) left and no worker serving queue {self.cluster.queue}: "
                    f"start `coffer worker` (the jobs stay queued; `coffer report {run_id}` "
                    "shows the run when they are done)"
                )
            if progress is not None:
                progress.owners_done = len(now["owners"])
                progress.items = now["items"]
                progress.bytes = now["bytes"]
                progress.throttled_seconds = now["throttled"]
                progress.current = " ".join(f"{w}:{n}" for w, n in sorted(now["workers"].items()))
            if len(now["owners"]) >= total:
                return now
            time.sleep(POLL_SECONDS)

    def _queued(self) -> int:
        return int(self.redis.llen(self.cluster.queue))

    def _alive(self) -> list[str]:
        return live_workers(self.redis, self.cluster.queue)

    def _recover(
        self, state: RunState, total: int, verdict: Verdict, recover: Recover | None
    ) -> str:
        """Re-establish a run whose state or jobs Redis lost; returns the new epoch.
        Raises redis.RedisError (the follower waits and looks again)."""
        run_id = state.run_id
        log.warning(
            "run %s: the broker lost the run's %s (restarted without persistence, "
            "flushed, evicted or failed over?); recovering from the repository in %.0fs",
            run_id[:12],
            "state" if verdict is Verdict.LOST else "jobs",
            self.cluster.lease_seconds,
        )
        # Running jobs take their owner leases back at their next renewal (a third
        # of a lease's life): after one lifetime, a job enqueued again for an owner
        # still running finds the lease held and waits instead of running beside it.
        time.sleep(self.cluster.lease_seconds)
        epoch = state.start(total)
        done = (recover or (lambda: self._recover_backup(run_id)))()
        for field, outcome in done.items():
            state.owner_done(field, outcome)
        return epoch

    def report(
        self, repo: Repository, manifest: dict[str, Any], counters: dict[str, Any]
    ) -> dict[str, Any]:
        report, _pending = assemble(
            repo,
            manifest,
            counters["owners"],
            finished=_iso(time.time()),
            seconds=time.time() - float(manifest["started_epoch"]),
        )
        return report


def lost_by_broker(cluster: ClusterSettings, run_id: str) -> bool:
    """Whether the broker answers and holds no state of the run (Redis lost it,
    or its keys expired); False when it does not answer (nobody can tell)."""
    try:
        return not RunState(redis_client(cluster), run_id, cluster.result_seconds).known()
    except redis.RedisError as exc:
        log.warning("broker unreachable (%s): cannot tell whether it lost the run", exc)
        return False


def outcomes_of(cluster: ClusterSettings, run_id: str) -> dict[str, dict[str, Any]]:
    """The outcomes the broker holds for a run (empty if it has none or is down)."""
    try:
        return dict(
            RunState(redis_client(cluster), run_id, cluster.result_seconds).snapshot()["owners"]
        )
    except redis.RedisError as exc:
        log.warning("broker unreachable (%s): outcomes only from the repository", exc)
        return {}
