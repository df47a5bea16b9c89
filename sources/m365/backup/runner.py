"""A Microsoft 365 backup run: discover owners, back them up in parallel, report.

Each owner (user, site, team) gets its own OwnerSession and commits its own
snapshot: one failing owner never fails the others, and inside an owner one
failing service never fails the others (the owner's snapshot keeps that
service's previous data and its sync state stays where it was). Owners run
in parallel (``parallel_owners``), each with ``workers_per_owner`` download
workers; Graph's limits (4 requests per mailbox) are enforced by the client.
Interrupted runs leave the engine's checkpoints; the next run resumes from
them without fetching again what they hold.

The result is the run report (report.py, docs/layout.md "Backup reports").
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sources.m365.backup.calendar import backup_calendar
from sources.m365.backup.contacts import backup_contacts
from sources.m365.backup.context import OwnerJob, OwnerRun, RunFlags, ServiceContext
from sources.m365.backup.discovery import discover, signed_in_user
from sources.m365.backup.groups import backup_group
from sources.m365.backup.mail import backup_mail
from sources.m365.backup.onedrive import backup_onedrive
from sources.m365.backup.report import (
    FAILED,
    NOT_APPLICABLE,
    OK,
    PARTIAL,
    OwnerReport,
    failed_items,
    totals,
)
from sources.m365.backup.sites import backup_site
from sources.m365.backup.state import SyncState
from sources.m365.backup.teams import backup_team
from sources.m365.backup.writer import AttributingWriter, attributed_to
from sources.m365.graph.auth import DeviceCodeTokens
from sources.m365.graph.client import GraphClient, connect
from sources.m365.graph.errors import AuthError, GraphError, MailboxUnavailable, ResourceLocked
from sources.m365.graph.throttle import Resource
from sources.m365.services import spec
from sources.m365.settings import TenantSettings
from sources.m365.workers import Workers
from store import BackupRun, ExitCode, Owner, Repository, StoreError, latest_per_owner

REPORT_FORMAT = "coffer-backup-report"
REPORT_VERSION = 1

# The backup function of each service of the registry (services.py).
BACKUPS: dict[str, Callable[[ServiceContext], None]] = {
    "mail": backup_mail,
    "contacts": backup_contacts,
    "calendar": backup_calendar,
    "onedrive": backup_onedrive,
    "sharepoint": backup_site,
    "teams": backup_team,
    "groups": backup_group,
}


class Progress(Protocol):
    """What the command line shows (all calls may come from any thread)."""

    def item(self, name: str, size: int) -> None: ...

    def owners(self, total: int) -> None: ...

    def owner_done(self, name: str) -> None: ...

    def throttled(self, seconds: float) -> None: ...


def _resource(service: str, job: OwnerJob) -> Resource:
    return spec(service).resource(job.key)  # a group mailbox is an Exchange mailbox


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class TenantBackup:
    """One ``coffer backup`` of a tenant (see the module docstring)."""

    def __init__(
        self,
        repo: Repository,
        settings: TenantSettings,
        *,
        progress: Progress | None = None,
        prompt: Callable[[str], None] | None = None,
        checkpoint_seconds: float = 300.0,
        wait: float = 0.0,
        only_users: tuple[str, ...] = (),
        only_services: tuple[str, ...] = (),
        client: GraphClient | None = None,
    ) -> None:
        self.repo = repo
        self.settings = settings
        self.progress = progress
        self.checkpoint_seconds = checkpoint_seconds
        self.wait = wait
        self.only_users = only_users
        self.only_services = only_services
        self.flags = RunFlags()
        self.problems: list[str] = []
        self.skipped_owners: list[dict[str, str]] = []
        self.client = connect(settings.connection, prompt) if client is None else client

    # -- owners ----------------------------------------------------------------------------

    def jobs(self) -> list[OwnerJob]:
        """The owners of this run (signs in; raises AuthError, GraphError, M365ConfigError).

        Problems listing sites or teams are kept for the report.
        """
        if isinstance(self.client.tokens, DeviceCodeTokens):
            return [signed_in_user(self.client, self.settings, self.only_services)]
        jobs, problems = discover(
            self.client,
            self.settings,
            only_users=self.only_users,
            only_services=self.only_services,
            skipped=self.skipped_owners,
        )
        self.problems.extend(problems)
        self.skipped_owners.extend(self._absent(jobs))
        return jobs

    def _absent(self, jobs: list[OwnerJob]) -> list[dict[str, str]]:
        """Users of this tenant with snapshots whom discovery no longer lists: deleted
        or soft-deleted (Graph's ``/users`` leaves those out; they sit in
        ``/directory/deletedItems``), or no longer selected. Their snapshots stay
        under the retention policy; the report says so. Only for unnarrowed runs."""
        if self.only_users or self.only_services:
            return []
        present = {(j.kind, j.key) for j in jobs}
        tenant = self.settings.connection.tenant_id
        out: list[dict[str, str]] = []
        for snap in latest_per_owner(self.repo.list_snapshots()):
            owner = snap.owner
            if owner.kind != "users" or (owner.kind, owner.key) in present:
                continue
            if snap.source.get("type") != "m365" or snap.source.get("tenant") != tenant:
                continue
            out.append(
                {
                    "kind": "users",
                    "name": owner.name,
                    "reason": "no longer listed by Microsoft 365 (deleted, soft-deleted or "
                    "no longer selected); its snapshots are kept under the retention policy",
                    "last_snapshot": snap.id_hex,
                }
            )
        return out

    def owner(self, run: BackupRun, job: OwnerJob) -> OwnerReport:
        """Back up one owner in ``run`` and return its report (its snapshot
        committed, or its checkpoints left). Never raises for the owner's own
        failures: they are in the report. The per-owner job of a scale-out
        worker (cli/cluster/jobs.py) calls this, one owner per run object."""
        return self._owner(run, job)

    def _owner(self, run: BackupRun, job: OwnerJob) -> OwnerReport:
        report = OwnerReport(job.kind, job.key, job.name)
        if self.progress is not None:
            report.meter.listeners.append(self.progress.throttled)
        started = time.monotonic()
        try:
            session = run.owner(
                Owner(job.kind, job.key, job.name),
                source={
                    "type": "m365",
                    "tenant": self.settings.connection.tenant_id,
                    "kind": job.kind,
                    "id": job.key,
                    "name": job.name,
                    "services": list(job.services),
                },
                wait=self.wait,
            )
        except StoreError as exc:
            report.error = str(exc)
            report.status = FAILED
            return report
        if session.base_warning:
            report.warnings.append(session.base_warning)
        workers = Workers(self.settings.workers_per_owner)
        owner = OwnerRun(
            job,
            session,
            self.client,
            self.settings,
            SyncState(session.sync_state),
            workers,
            report,
            self.flags,
            self.progress,
        )
        try:
            self._services(owner)
            statuses = {s.status for s in report.services.values()}
            if statuses & {OK, PARTIAL}:
                snapshot = session.commit(
                    stats={
                        "items_skipped": report.total("items_skipped"),
                        "items_excluded": report.total("items_excluded"),
                        "services": {n: s.status for n, s in report.services.items()},
                        "graph_requests": report.meter.requests,
                    }
                )
                report.snapshot = snapshot.id_hex
        except (StoreError, AuthError) as exc:
            report.error = str(exc)
        except Exception as exc:  # a bug must not take the other owners down
            report.error = f"unexpected error: {type(exc).__name__}: {exc}"
        finally:
            workers.close()
            session.close()
            report.seconds = time.monotonic() - started
        report.settle()
        if report.error and report.snapshot is None:
            report.status = FAILED
        return report

    def _services(self, owner: OwnerRun) -> None:
        report = owner.report
        no_mailbox = False
        for name in owner.job.services:
            service = report.service(name)
            started = time.monotonic()
            try:
                if spec(name).needs_mailbox and no_mailbox:
                    service.status = NOT_APPLICABLE
                    service.note("the user has no mailbox")
                    continue
                ctx = ServiceContext(owner, name, _resource(name, owner.job))
                with attributed_to(service):
                    BACKUPS[name](ctx)
                    owner.workers.drain()
            except MailboxUnavailable as exc:
                self._settle_workers(owner)
                service.status = NOT_APPLICABLE
                home = spec(name).home
                service.note(f"the user has no usable {home} ({exc.code}: {exc.message})")
                # Mail reads the mailbox itself: without it, the services that need one are moot.
                no_mailbox = no_mailbox or (home == "mailbox" and not spec(name).needs_mailbox)
            except ResourceLocked as exc:
                # An administrator locked the site (no access): nothing can be read
                # until it is unlocked; its earlier snapshots stay as they are.
                self._settle_workers(owner)
                service.status = NOT_APPLICABLE
                service.note(
                    f"locked by an administrator ({exc.inner_code or exc.code}); "
                    "not backed up until unlocked, earlier snapshots kept"
                )
            except AuthError:
                self._settle_workers(owner)
                raise
            except GraphError as exc:
                self._settle_workers(owner)
                service.fail(str(exc))
            finally:
                service.seconds = time.monotonic() - started

    @staticmethod
    def _settle_workers(owner: OwnerRun) -> None:
        with contextlib.suppress(Exception):
            owner.workers.drain()

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Back up every selected owner; returns the run report (not yet saved)."""
        started = time.time()
        clock = time.monotonic()
        jobs = self.jobs()
        if self.progress is not None:
            self.progress.owners(len(jobs))
        writer = AttributingWriter(self.repo)
        reports: list[OwnerReport] = []
        with BackupRun(
            self.repo, checkpoint_seconds=self.checkpoint_seconds, writer=cast(Any, writer)
        ) as run:
            lock = threading.Lock()
            with ThreadPoolExecutor(
                self.settings.parallel_owners, thread_name_prefix="coffer-owner"
            ) as pool:
                futures: list[Future[OwnerReport]] = []

                def one(job: OwnerJob) -> OwnerReport:
                    result = self._owner(run, job)
                    with lock:
                        reports.append(result)
                    if self.progress is not None:
                        self.progress.owner_done(job.name)
                    return result

                try:
                    futures = [pool.submit(one, job) for job in jobs]
                    for future in futures:
                        future.result()
                except BaseException:
                    # Ctrl-C (or a bug): stop sending requests; owners end without
                    # committing, their checkpoints stay for the next run.
                    self.client.gates.stop()
                    for future in futures:
                        future.cancel()
                    raise
            run_id = run.run_id
            host = run.host
        stats = writer.stats
        reports.sort(key=lambda r: (r.kind, r.name.lower()))
        problems = list(self.problems)
        if self.flags.teams_protected_refused:
            problems.append(self.flags.teams_protected_refused)
        summary = totals(reports)
        applicable = [r for r in reports if r.status != NOT_APPLICABLE]
        if applicable and all(r.status == FAILED for r in applicable):
            status, code = FAILED, ExitCode.ERROR
        elif any(r.status in (FAILED, PARTIAL) for r in reports) or problems:
            status, code = PARTIAL, ExitCode.PARTIAL
        else:
            status, code = OK, ExitCode.OK
        conn = self.settings.connection
        return {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "kind": "backup",
            "source": "m365",
            "run": run_id,
            "host": host,
            "started": _iso(started),
            "finished": _iso(time.time()),
            "seconds": round(time.monotonic() - clock, 3),
            "status": status,
            "exit_code": code,
            "tenant": {
                "tenant_id": conn.tenant_id,
                "graph_url": conn.graph_url,
                "auth": conn.auth if conn.auth == "device_code" else conn.credential,
            },
            "settings": {
                "mime_dedup": self.settings.mime_dedup,
                "onedrive_versions": self.settings.onedrive_versions,
                "parallel_owners": self.settings.parallel_owners,
                "workers_per_owner": self.settings.workers_per_owner,
            },
            "totals": summary,
            "repository": {
                "bytes_added_stored": stats.bytes_new_stored,
                "bytes_added_raw": stats.bytes_new_raw,
                "blobs_added": stats.blobs_new,
                "blobs_deduplicated": stats.blobs_duplicate,
            },
            "problems": problems,
            "owners_skipped": list(self.skipped_owners),
            "failed_items": failed_items(reports),
            "owners": [r.to_map() for r in reports],
        }
