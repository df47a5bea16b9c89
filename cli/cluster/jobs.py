"""The per-owner backup job a worker runs: one owner, one snapshot, one report.

A job's message carries ids only (:class:`BackupMessage`): the run, its time,
the tenant's id, the owner's kind, Graph ID and name, the services and the
run's options. Tenant credentials and the repository password come from the
worker's own configuration (:class:`WorkerContext`), never through the broker.

Contract of :func:`run_backup_job` (idempotent; safe to deliver twice):

- it holds the owner's lease (lease.py) while it works, so no two jobs of one
  owner run at once on any machine; a held lease raises LeaseBusy (retry later);
- an owner already finished in this run (in Redis, or a complete snapshot of
  this run in the repository) is recorded and not backed up again;
- otherwise the owner goes through TenantBackup's per-owner path inside a
  BackupRun with the run's id and time, so a job killed half way left
  checkpoints that the redelivered job resumes from;
- the owner's full report (with item names) is stored in the repository
  (``reports/backup-owner/``); Redis gets counters and ids only.

Raises JobFailed for what no retry fixes (the worker has no repository
password, the configuration is wrong): the caller records it for the owner.
Other exceptions (broker or storage outages) are for the caller to retry.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis

from cli.app import App
from cli.cluster.indexsync import IndexRefresher
from cli.cluster.lease import OwnerLease, lease_key
from cli.cluster.limiter import RedisGates, rates_for
from cli.cluster.runreport import owner_kind
from cli.cluster.runstate import RunState, owner_field
from cli.cluster.settings import ClusterSettings
from cli.errors import CliError
from sources.m365 import M365ConfigError, TenantBackup, TenantSettings, from_table
from sources.m365.backup.lookup import owner_job
from sources.m365.backup.writer import AttributingWriter
from sources.m365.graph.auth import token_source
from sources.m365.graph.client import GraphClient, make_http_session
from sources.m365.graph.throttle import Gates
from store import (
    BackupRun,
    ExitCode,
    Owner,
    Repository,
    Snapshot,
    SnapshotId,
    SnapshotNotFound,
    StoreError,
    latest_per_owner,
)
from store.ids import from_hex

log = logging.getLogger(__name__)

MESSAGE_VERSION = 1
# At most this many snapshot ids in a message (one complete snapshot and its
# owner's checkpoints: more than a few means something is wrong; the job then
# sees only these, and a later run's listing cleans the rest up).
MAX_SNAPSHOT_HINTS = 64
# Errors opening the repository that no retry fixes.
_PERMANENT = (
    ExitCode.REPOSITORY_NOT_FOUND,
    ExitCode.WRONG_PASSWORD,
    ExitCode.DAMAGED,
    ExitCode.FORMAT_TOO_NEW,
)
KINDS = ("users", "sites", "teams", "groups")


class JobFailed(Exception):
    """The job cannot run on this worker and retrying will not help (the
    message says why, without secrets)."""


def worker_name() -> str:
    """This process's name in reports: ``host:pid`` (unique per process)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class BackupMessage:
    """What the broker carries for one owner: ids and options, no secret."""

    run: str
    time_ns: int
    tenant: str
    kind: str
    key: str
    name: str
    services: tuple[str, ...]
    checkpoint_seconds: float = 300.0
    wait: float = 0.0
    # The owner's snapshots the enqueuing run saw (its latest complete one and
    # its checkpoints), so that the job needs no listing of the repository; None
    # (a resumed or recovered run) makes the job list it (run_backup_job).
    snapshots: tuple[str, ...] | None = None

    @property
    def field(self) -> str:
        return owner_field(self.kind, self.key)

    def to_map(self) -> dict[str, Any]:
        out = {
            "v": MESSAGE_VERSION,
            "run": self.run,
            "time_ns": self.time_ns,
            "tenant": self.tenant,
            "owner": {"kind": self.kind, "key": self.key, "name": self.name},
            "services": list(self.services),
            "options": {"checkpoint_seconds": self.checkpoint_seconds, "wait": self.wait},
        }
        if self.snapshots is not None:
            out["snapshots"] = list(self.snapshots)
        return out

    @classmethod
    def from_map(cls, raw: Any) -> BackupMessage:
        """Check a message (the broker is shared: anything may be in it). Raises JobFailed."""
        try:
            if raw.get("v") != MESSAGE_VERSION:
                raise JobFailed(f"job message version {raw.get('v')!r} is not {MESSAGE_VERSION}")
            owner = raw["owner"]
            options = raw.get("options") or {}
            message = cls(
                str(raw["run"]),
                int(raw["time_ns"]),
                str(raw["tenant"]),
                str(owner["kind"]),
                str(owner["key"]),
                str(owner["name"]),
                tuple(str(s) for s in raw["services"]),
                float(options.get("checkpoint_seconds", 300.0)),
                float(options.get("wait", 0.0)),
                _snapshot_ids(raw.get("snapshots")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise JobFailed(f"malformed job message ({type(exc).__name__})") from None
        if message.kind not in KINDS or not message.key or not message.run.isalnum():
            raise JobFailed("malformed job message (owner kind, key or run)")
        return message


class WorkerContext:
    """What one ``coffer worker`` process shares between its jobs: its own
    configuration and repository (opened on first use), one Graph client whose
    throttling gates are shared through Redis, and the Redis client.
    Thread-safe."""

    def __init__(self, app: App, cluster: ClusterSettings, client: redis.Redis) -> None:
        self.app = app
        self.cluster = cluster
        self.redis = client
        self.name = worker_name()
        self._lock = threading.Lock()
        self._repo: Repository | None = None
        self._refresher: IndexRefresher | None = None
        self._settings: TenantSettings | None = None
        self._graph: GraphClient | None = None
        self._writer: GraphClient | None = None

    def repo(self) -> Repository:
        """The repository, opened once. Raises JobFailed (no password, wrong
        password, no repository) or StoreError (an outage: retried)."""
        with self._lock:
            if self._repo is None:
                try:
                    self._repo = self.app.open_repo()
                except CliError as exc:
                    raise JobFailed(f"worker {self.name}: {exc}") from None
                except StoreError as exc:
                    if exc.exit_code in _PERMANENT:
                        raise JobFailed(f"worker {self.name}: {exc}") from None
                    raise
                if self.cluster.index_refresh_seconds > 0:
                    self._refresher = IndexRefresher(self._repo, self.cluster.index_refresh_seconds)
            return self._repo

    def indexing(self) -> contextlib.AbstractContextManager[None]:
        """Around a job that stores blobs: the blob index learns, while it runs,
        what other workers commit (indexsync.py; off with index_refresh = 0)."""
        refresher = self._refresher
        return refresher.running() if refresher is not None else contextlib.nullcontext()

    def tenant(self, tenant_id: str) -> TenantSettings:
        """This worker's [tenant] settings; JobFailed if none, or another tenant."""
        with self._lock:
            if self._settings is None:
                table = self.app.config.section("tenant")
                if not table:
                    raise JobFailed(f"worker {self.name}: no [tenant] in its configuration")
                try:
                    self._settings = from_table(table, self.app.config.base_dir)
                except M365ConfigError as exc:
                    raise JobFailed(f"worker {self.name}: {exc}") from None
            settings = self._settings
        if settings.connection.tenant_id != tenant_id:
            raise JobFailed(
                f"worker {self.name} is configured for tenant {settings.connection.tenant_id}, "
                f"not {tenant_id}"
            )
        return settings

    def graph(self, settings: TenantSettings) -> GraphClient:
        """One Graph client per worker process: its tokens are shared by its jobs,
        its throttling gates by every worker (limiter.py)."""
        with self._lock:
            if self._graph is None:
                conn = settings.connection
                http = make_http_session(str(conn.ca_file) if conn.ca_file else None)
                gates = Gates(shared=self._shared_gates(conn.tenant_id))
                self._graph = GraphClient(conn.graph_url, token_source(conn, http), http, gates)
            return self._graph

    def _shared_gates(self, tenant_id: str) -> RedisGates:
        rates = rates_for(self.cluster.sharepoint_units)
        return RedisGates(self.redis, tenant_id, rates=rates)

    def restore_graph(self, base: TenantSettings, settings: TenantSettings) -> GraphClient:
        """The Graph client restores write with: ``settings`` are the [tenant] and
        [restore] tables merged (its own app registration, write permissions)."""
        with self._lock:
            if self._writer is None:
                conn = settings.connection
                http = make_http_session(str(conn.ca_file) if conn.ca_file else None)
                gates = Gates(shared=self._shared_gates(base.connection.tenant_id))
                tokens = token_source(conn, http, write=True)
                self._writer = GraphClient(conn.graph_url, tokens, http, gates)
            return self._writer

    def close(self) -> None:
        with self._lock:
            for client in (self._graph, self._writer):
                if client is not None:
                    client.gates.stop()
            if self._refresher is not None:
                self._refresher.stop()
        self.app.close()


class LiveCounters:
    """The run's live progress, sent to Redis about once a second (the Progress
    protocol of sources.m365.backup.runner). Thread-safe."""

    def __init__(self, state: RunState, period: float = 1.0) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._items = 0
        self._bytes = 0
        self._throttled = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(period,), daemon=True)
        self._thread.start()

    def item(self, name: str, size: int) -> None:
        with self._lock:
            self._items += 1
            self._bytes += size

    def owners(self, total: int) -> None:
        return

    def owner_done(self, name: str) -> None:
        return

    def throttled(self, seconds: float) -> None:
        with self._lock:
            self._throttled += seconds

    def flush(self) -> None:
        with self._lock:
            items, size, throttled = self._items, self._bytes, self._throttled
            self._items = self._bytes = 0
            self._throttled = 0.0
        if items or size or throttled:
            try:
                self._state.progress(items, size, throttled)
            except redis.RedisError:
                with self._lock:  # keep them for the next flush
                    self._items += items
                    self._bytes += size
                    self._throttled += throttled

    def _loop(self, period: float) -> None:
        while not self._stop.wait(period):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()


def _snapshot_ids(raw: Any) -> tuple[str, ...] | None:
    """A message's snapshot ids, each a full 64-digit id. Raises ValueError,
    TypeError (a malformed message)."""
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > MAX_SNAPSHOT_HINTS:
        raise ValueError("snapshots")
    return tuple(from_hex(str(text)).hex() for text in raw)


def owner_snapshot_hints(snapshots: list[Snapshot]) -> dict[str, tuple[str, ...]]:
    """For each owner (``kind/key``) of a listing: the ids of its newest complete
    snapshot and of its checkpoints, what its job's session looks for
    (store/backup/session.py, ``_find_parent``)."""
    newest = {s.owner.identity: s for s in latest_per_owner(snapshots)}
    hints: dict[str, list[str]] = {key: [snap.id_hex] for key, snap in newest.items()}
    for snap in snapshots:
        if snap.partial:
            hints.setdefault(snap.owner.identity, []).append(snap.id_hex)
    return {key: tuple(ids[:MAX_SNAPSHOT_HINTS]) for key, ids in hints.items()}


def _told_snapshots(repo: Repository, ids: tuple[str, ...]) -> Callable[[Owner], list[Snapshot]]:
    """The session's source of its owner's snapshots: the ones the message named,
    loaded by id (one cache lookup or read each); gone ones are left out."""

    def load(owner: Owner) -> list[Snapshot]:
        found = []
        for text in ids:
            try:
                found.append(repo.load_snapshot(SnapshotId(from_hex(text))))
            except SnapshotNotFound:
                continue  # forgotten or pruned since the run listed it
        return found

    return load


def _finished_snapshot(snapshots: list[Snapshot], message: BackupMessage) -> str | None:
    """The complete snapshot this run already committed for the owner, if any."""
    identity = Owner(message.kind, message.key, message.name).identity
    for snap in snapshots:
        if snap.run == message.run and not snap.partial and snap.owner.identity == identity:
            return snap.id_hex
    return None


def run_backup_job(ctx: WorkerContext, raw: Any) -> dict[str, Any]:
    """Run one owner's job (see the module docstring); returns its outcome
    (ids and counters), also recorded in Redis."""
    message = BackupMessage.from_map(raw)
    state = RunState(ctx.redis, message.run, ctx.cluster.result_seconds)
    recorded = state.done(message.field)
    if recorded is not None:
        log.info("%s: already finished in run %s", message.name, message.run[:8])
        return recorded
    key = lease_key(message.tenant, message.kind, message.key)
    with OwnerLease(ctx.redis, key, ctx.name, ctx.cluster.lease_seconds) as lease:
        recorded = state.done(message.field)  # finished while we waited for the lease
        if recorded is not None:
            return recorded
        started = time.monotonic()
        first = state.owner_started(message.field, ctx.name)
        settings = ctx.tenant(message.tenant)
        repo = ctx.repo()
        client = ctx.graph(settings)
        writer = AttributingWriter(repo)
        live = LiveCounters(state)
        # The snapshots the message names are enough on the owner's first start in
        # this run. A start after another (a redelivery, a retry) lists the
        # repository: the earlier start may have committed, or left a checkpoint
        # to resume from, after the run listed it. Runs enqueued again after the
        # broker lost them carry no names (coordinator.py), for the same reason.
        told = message.snapshots if first else None
        try:
            # The index refresher counts this job only once its run has written
            # its session marker (a refresh is then never older than the marker).
            with (
                BackupRun(
                    repo,
                    run_id=message.run,
                    time_ns=message.time_ns,
                    checkpoint_seconds=message.checkpoint_seconds,
                    writer=cast(Any, writer),  # duck-typed like the BlobWriter (runner.py)
                    owner_snapshots=None if told is None else _told_snapshots(repo, told),
                ) as run,
                ctx.indexing(),
            ):
                # Without names, one listing of the repository per job, shared
                # with the owner's session (which looks for its parent snapshot in
                # it). With them, this is the owner's first start in the run:
                # nothing of this run can be committed yet.
                done = None if told is not None else _finished_snapshot(run.snapshots(), message)
                if done is not None:
                    # Delivered again after it committed (the worker died before
                    # acknowledging): nothing new to commit.
                    outcome = {
                        "status": "ok",
                        "snapshot": done,
                        "worker": ctx.name,
                        "redelivered": True,
                    }
                    state.owner_done(message.field, outcome)
                    return state.done(message.field) or outcome
                job = owner_job(client, message.kind, message.key, message.name, message.services)
                backup = TenantBackup(
                    repo,
                    settings,
                    progress=live,
                    checkpoint_seconds=message.checkpoint_seconds,
                    wait=message.wait,
                    client=client,
                )
                opened = time.monotonic()
                report = backup.owner(run, job)
                owner_done = time.monotonic()
        finally:
            live.close()
        closed = time.monotonic()
        if lease.lost.is_set():
            log.warning("%s: the owner lease was lost during the job", message.name)
        entry = report.to_map()
        entry["worker"] = ctx.name
        stats = writer.stats
        entry["repository"] = {
            "bytes_added_stored": stats.bytes_new_stored,
            "bytes_added_raw": stats.bytes_new_raw,
            "blobs_added": stats.blobs_new,
            "blobs_deduplicated": stats.blobs_duplicate,
        }
        entry["run"] = message.run
        refused = backup.flags.teams_protected_refused
        entry["problems"] = [refused] if refused else []
        report_key = repo.save_report(owner_kind(message.run), entry)
        log.info(
            "%s: %s in %.1fs (setup %.1fs, owner %.1fs, closing the run %.1fs, report %.1fs)",
            message.name,
            report.status,
            time.monotonic() - started,
            opened - started,
            owner_done - opened,
            closed - owner_done,
            time.monotonic() - closed,
        )
        outcome = {
            "status": report.status,
            "snapshot": report.snapshot,
            "report": report_key,
            "worker": ctx.name,
            "seconds": round(time.monotonic() - started, 3),
            "requests": report.meter.requests,
        }
        state.progress(0, 0, 0.0, report.meter.requests)
        state.owner_done(message.field, outcome)
        return outcome
