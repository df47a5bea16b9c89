"""A Microsoft 365 restore run: plan, place, write in parallel, report.

1. *Plan*: every chosen snapshot (one per owner) is walked with the filter
   (query.py); owners with nothing chosen drop out. Teams are never written
   to Microsoft 365 (Graph cannot create channel messages): they are skipped
   with one notice. Items that cannot go to the kind of target (mail to a
   site, lists to a user) are skipped with a notice too.
2. *Place*: each owner gets its target (placement): its own user or site
   for ``original``, else the named user or site and the restore folder,
   under a folder per source owner when several go to one target.
3. *Write*: owners in parallel (``parallel_owners``), each owner's services
   one after the other, items of a service by ``workers_per_owner`` workers;
   Graph's limits are kept by the client (4 requests per mailbox, pauses on
   429) and by the mailbox upload budget (pacing.py).
4. *Report* (report.py): per owner and service, what was created, replaced,
   kept both, skipped and failed (with reasons); exit code 3 if anything
   failed.

A restore is idempotent: what is already in the target is found and left
alone (common.py), so an interrupted restore is resumed by running it again.
An item that fails does not stop the others; an error that concerns the
whole service (no mailbox, missing permission) fails its remaining items at
once, with that reason, without sending their requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sources.m365.graph.client import GraphClient, connect
from sources.m365.graph.errors import (
    AccessDenied,
    AuthError,
    GraphError,
    ItemGone,
    MailboxUnavailable,
)
from sources.m365.graph.throttle import Resource
from sources.m365.restore.calendar import CalendarWriter
from sources.m365.restore.common import Placement, ServiceRun
from sources.m365.restore.contacts import ContactsWriter
from sources.m365.restore.drive import DriveWriter
from sources.m365.restore.items import SnapItem, walk_items
from sources.m365.restore.lists import ListWriter
from sources.m365.restore.mail import MailWriter
from sources.m365.restore.pacing import Eta, UploadBudget
from sources.m365.restore.query import ItemQuery
from sources.m365.restore.report import OwnerResult, totals, verdict
from sources.m365.restore.target import USER, RestoreTarget
from sources.m365.services import MAILBOX, restorable_owner, spec, writable_to
from sources.m365.settings import TenantSettings
from sources.m365.workers import Workers
from store import Entry, Repository, Snapshot, format_time

REPORT_FORMAT = "coffer-restore-report"
REPORT_VERSION = 1
GROUPS_NOTICE = (
    "Microsoft 365 group conversations and calendars cannot be written back through "
    "Microsoft Graph: {n} group(s) left out (restore them with --to-dir to export them)"
)
TEAMS_NOTICE = (
    "Teams channel messages cannot be written back through Microsoft Graph: "
    "{n} team(s) left out (restore them with --to-dir to export them)"
)


class Writer(Protocol):
    def restore(self, item: SnapItem) -> None: ...


class RestoreProgress(Protocol):
    """What the command line shows (calls may come from any thread)."""

    def item(self, name: str, size: int) -> None: ...

    def owners(self, total: int) -> None: ...

    def planned(self, items: int, size: int) -> None: ...

    def owner_done(self, name: str) -> None: ...

    def throttled(self, seconds: float) -> None: ...


@dataclass
class _Job:
    snapshot: Snapshot
    result: OwnerResult
    services: dict[str, tuple[int, int]] = field(default_factory=dict)  # service -> items, bytes
    placement: Placement | None = None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def writable_services(owner_kind: str, target: RestoreTarget) -> tuple[str, ...]:
    """The services of an owner that can go to the target's kind (registry order)."""
    if not restorable_owner(owner_kind):
        return ()
    return writable_to(target.kind)


class _Abort:
    """The first service-wide error of a service (then its other items fail at once)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.lock = threading.Lock()

    def set(self, reason: str) -> None:
        with self.lock:
            if self.reason is None:
                self.reason = reason


class TenantRestore:
    """One ``coffer restore`` into Microsoft 365 (see the module docstring)."""

    def __init__(
        self,
        repo: Repository,
        settings: TenantSettings,
        snapshots: list[Snapshot],
        query: ItemQuery,
        target: RestoreTarget,
        *,
        on_conflict: str = "skip",
        dry_run: bool = False,
        selector: str = "",
        progress: RestoreProgress | None = None,
        client: GraphClient | None = None,
        budget: UploadBudget | None = None,
        prompt: Callable[[str], None] | None = None,
    ) -> None:
        self.repo = repo
        self.settings = settings
        self.snapshots = snapshots
        self.query = query
        self.target = target
        self.on_conflict = on_conflict
        self.dry_run = dry_run
        self.selector = selector
        self.progress = progress
        self.notices: list[str] = []
        self.budget = budget or UploadBudget()
        self.eta = Eta(self.budget)
        # A device-code sign-in asks for the write permissions and shows its code.
        self.client = connect(settings.connection, prompt, write=True) if client is None else client
        self._lock = threading.Lock()

    # -- plan ----------------------------------------------------------------------------------

    def plan(self) -> list[_Job]:
        """The owners with something to restore, and what (no request is sent)."""
        jobs: list[_Job] = []
        teams = 0
        groups = 0
        notebooks = 0
        left_out: dict[str, int] = {}
        for snap in self.snapshots:
            owner = snap.owner
            if owner.kind == "teams":
                if any(True for _ in self._items(snap)):
                    teams += 1
                continue
            if owner.kind == "groups":
                if any(True for _ in self._items(snap)):
                    groups += 1
                continue
            allowed = writable_services(owner.kind, self.target)
            result = OwnerResult(
                owner.kind, owner.key, owner.name, snap.id_hex, format_time(snap.time_ns)
            )
            job = _Job(snap, result)
            found: list[str] = []

            def package(path: str, entry: Entry, found: list[str] = found) -> None:
                if entry.attrs.get("type") == "package" and self._folder_chosen(path):
                    found.append(path)

            for item in self._items(snap, on_dir=package):
                if item.service not in allowed or (
                    owner.kind == "sites" and self.target.kind == USER and item.kind == "list-item"
                ):
                    left_out[item.service] = left_out.get(item.service, 0) + 1
                    continue
                count, size = job.services.get(item.service, (0, 0))
                job.services[item.service] = (count + 1, size + item.entry.size)
            notebooks += len(found)
            if job.services:
                jobs.append(job)
        if notebooks:
            self.notices.append(
                f"{notebooks} OneNote notebook(s) left out: Graph offers no content stream "
                "for them (their metadata is in the snapshot)"
            )
        if teams:
            self.notices.append(TEAMS_NOTICE.format(n=teams))
        if groups:
            self.notices.append(GROUPS_NOTICE.format(n=groups))
        for service, count in sorted(left_out.items()):
            what = "lists" if service == "sharepoint" else service  # only list items are refused
            self.notices.append(
                f"{count} {what} item(s) left out: they cannot go to a {self.target.kind} target"
            )
        return jobs

    def _items(
        self, snap: Snapshot, on_dir: Callable[[str, Entry], None] | None = None
    ) -> Iterator[SnapItem]:
        reader = self.repo.reader(snap)
        for item in walk_items(reader, want_dir=self.query.wants_dir, on_dir=on_dir):
            if self.query.matches(item):
                yield item

    def _folder_chosen(self, path: str) -> bool:
        """Whether a folder (a notebook) is within what the filter asks for."""
        query = self.query
        if query.kinds and "file" not in query.kinds:
            return False
        return not (query.subjects or query.senders or query.since or query.until)

    # -- place ---------------------------------------------------------------------------------

    def _placements(self, jobs: list[_Job]) -> None:
        several = len(jobs) > 1
        targets: dict[str, tuple[str, str]] = {}
        for job in jobs:
            owner = job.snapshot.owner
            try:
                job.placement = self._place(owner.kind, owner.key, owner.name, several, targets)
                job.result.target = self._describe(job.placement)
            except (GraphError, AuthError) as exc:
                job.result.error = _one_line(exc)

    def _resolve_user(self, ref: str) -> tuple[str, str]:
        found = self.client.get_json(
            f"/users/{ref}", Resource.directory(), params={"$select": "id,userPrincipalName"}
        )
        return str(found["id"]), str(found.get("userPrincipalName") or ref)

    def _resolve_site(self, ref: str) -> tuple[str, str]:
        path = ref
        if "," not in ref and "/" in ref:
            host, _, rest = ref.partition("/")
            path = f"{host}:/{rest}"
        found = self.client.get_json(f"/sites/{path}", Resource.sharepoint())
        name = str(found.get("webUrl") or ref).split("://", 1)[-1]
        return str(found["id"]), name

    def _place(
        self, kind: str, key: str, name: str, several: bool, cache: dict[str, tuple[str, str]]
    ) -> Placement:
        target = self.target
        if not target.alternate:
            if kind == "users":
                try:
                    uid, upn = self._resolve_user(key)
                except ItemGone:
                    try:
                        uid, upn = self._resolve_user(name)
                    except ItemGone:
                        raise ItemGone(
                            404,
                            "userGone",
                            f"the user {name} no longer exists: restore to another user "
                            "with --to user:<upn>",
                        ) from None
                return Placement(target, user_id=uid, user_name=upn)
            try:
                sid, sname = self._resolve_site(key)
            except ItemGone:
                raise ItemGone(
                    404, "siteGone", f"the site {name} no longer exists: use --to site:<site>"
                ) from None
            return Placement(target, site_id=sid, site_name=sname)
        if target.ref not in cache:
            cache[target.ref] = (
                self._resolve_user(target.ref)
                if target.kind == USER
                else self._resolve_site(target.ref)
            )
        tid, tname = cache[target.ref]
        base = target.folder
        if several:
            base = (*base, name.replace("/", " ").strip() or key)
        if target.kind == USER:
            return Placement(target, user_id=tid, user_name=tname, base=base)
        return Placement(target, site_id=tid, site_name=tname, base=base)

    @staticmethod
    def _describe(placement: Placement) -> str:
        who = placement.user_name or placement.site_name
        folder = "/".join(placement.base)
        return f"{who}/{folder}" if folder else who

    # -- write ---------------------------------------------------------------------------------

    def _writer(self, service: str, run: ServiceRun, owner_kind: str) -> Writer:
        return WRITERS[service](run, owner_kind, self.query.matches)

    def _resource(self, service: str, placement: Placement) -> Resource:
        if spec(service).throttle == MAILBOX and placement.user_id:
            return Resource.mailbox(placement.user_id)
        return Resource.sharepoint()

    def _owner(self, job: _Job) -> None:
        result = job.result
        started = time.monotonic()
        placement = job.placement
        try:
            if placement is None:
                self._fail_all(job, result.error or "no target")
                return
            reader = self.repo.reader(job.snapshot)
            workers = Workers(self.settings.workers_per_owner, name="coffer-restore")
            try:
                for service in WRITERS:  # in the registry's order
                    if service in job.services:
                        self._service(job, service, placement, reader, workers)
            finally:
                workers.close()
        except AuthError as exc:
            result.error = _one_line(exc)
        finally:
            result.seconds = time.monotonic() - started
            result.settle()
            if self.progress is not None:
                self.progress.owner_done(result.name)

    def _fail_all(self, job: _Job, reason: str) -> None:
        for service in job.services:
            svc = job.result.service(service)
            for item in self._items(job.snapshot):
                if item.service == service:
                    svc.record("failed", item.path, reason, planned=self.dry_run)

    def _service(
        self,
        job: _Job,
        service: str,
        placement: Placement,
        reader: Any,
        workers: Workers,
    ) -> None:
        result = job.result.service(service)
        result.meter.listeners.append(self._throttled)
        res = self._resource(service, placement).with_meter(job.result.meter)
        mailbox = placement.user_id if spec(service).throttle == MAILBOX else None
        pacer: Callable[[int], None] | None = None
        if mailbox is not None:

            def pacer(size: int, key: str = mailbox) -> None:
                self.budget.take(key, size)

        run = ServiceRun(
            client=self.client,
            reader=reader,
            result=result,
            res=res,
            placement=placement,
            on_conflict=self.on_conflict,
            dry_run=self.dry_run,
            pacer=pacer,
        )
        writer = self._writer(service, run, job.snapshot.owner.kind)
        abort = _Abort()
        started = time.monotonic()
        allowed = writable_services(job.snapshot.owner.kind, self.target)
        try:
            for item in self._items(job.snapshot):
                if item.service != service or item.service not in allowed:
                    continue
                if (
                    job.snapshot.owner.kind == "sites"
                    and self.target.kind == USER
                    and (item.kind == "list-item")
                ):
                    continue
                workers.submit(self._task(writer, run, item, abort, job.snapshot.owner.key))
            workers.drain()
        finally:
            result.seconds = time.monotonic() - started

    def _task(
        self,
        writer: Writer,
        run: ServiceRun,
        item: SnapItem,
        abort: _Abort,
        eta_key: str,
    ) -> Callable[[], None]:
        def task() -> None:
            if abort.reason is not None:
                run.fail(item.path, abort.reason)
            else:
                try:
                    writer.restore(item)
                except (MailboxUnavailable, AccessDenied) as exc:
                    reason = _service_reason(exc)
                    abort.set(reason)
                    run.fail(item.path, reason)
                except GraphError as exc:
                    run.fail(item.path, _one_line(exc))
                except (OSError, ValueError) as exc:
                    run.fail(item.path, f"{type(exc).__name__}: {exc}")
            self.eta.done(item.entry.size, eta_key, mail=item.kind == "message")
            if self.progress is not None:
                self.progress.item(item.path, item.entry.size)

        return task

    def _throttled(self, seconds: float) -> None:
        if self.progress is not None:
            self.progress.throttled(seconds)

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Restore everything chosen; returns the report (not yet saved)."""
        started = time.time()
        clock = time.monotonic()
        jobs = self.plan()
        for job in jobs:
            for service, (count, size) in job.services.items():
                mailbox = job.snapshot.owner.key if spec(service).mail_budget else None
                self.eta.plan(count, size, mailbox, size if mailbox else 0)
        if self.progress is not None:
            self.progress.owners(len(jobs))
            self.progress.planned(self.eta.items_total, self.eta.bytes_total)
        if jobs:
            self._placements(jobs)
        with ThreadPoolExecutor(
            max(1, self.settings.parallel_owners), thread_name_prefix="coffer-restore-owner"
        ) as pool:
            futures: list[Future[None]] = []
            try:
                futures = [pool.submit(self._owner, job) for job in jobs]
                for future in futures:
                    future.result()
            except BaseException:
                self.client.gates.stop()
                self.budget.stop()
                for future in futures:
                    future.cancel()
                raise
        owners = [job.result for job in jobs]
        owners.sort(key=lambda o: (o.kind, o.name.lower()))
        summary = totals(owners)
        status, code = verdict(bool(owners), summary)
        return {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "kind": "restore",
            "source": "m365",
            "selector": self.selector,
            "snapshots": [s.id_hex for s in self.snapshots],
            "target": {**self.target.describe(), "to": str(self.target)},
            "filters": self.query.describe(),
            "on_conflict": self.on_conflict,
            "dry_run": self.dry_run,
            "started": _iso(started),
            "finished": _iso(time.time()),
            "seconds": round(time.monotonic() - clock, 3),
            "status": status,
            "exit_code": code,
            "tenant": {
                "tenant_id": self.settings.connection.tenant_id,
                "graph_url": self.settings.connection.graph_url,
            },
            "totals": summary,
            "notices": list(self.notices),
            "owners": [o.to_map() for o in owners],
        }


class _SiteWriter:
    """Files (OneDrive and libraries) and list items of one owner."""

    def __init__(self, run: ServiceRun, owner_kind: str) -> None:
        self.files = DriveWriter(run, owner_kind)
        self.lists = ListWriter(run) if run.placement.site_id else None
        self.run = run

    def restore(self, item: SnapItem) -> None:
        if item.kind == "list-item":
            if self.lists is None:
                self.run.done("skipped", item.path, "list items can only go to a site")
                return
            self.lists.restore(item)
            return
        self.files.restore(item)


# The restore writer of each service of the registry (services.py) that can be written
# back, in the registry's order (the order an owner's services are restored in).
WRITERS: dict[str, Callable[[ServiceRun, str, Callable[[SnapItem], bool]], Writer]] = {
    "mail": lambda run, _kind, _matches: MailWriter(run),
    "contacts": lambda run, _kind, _matches: ContactsWriter(run),
    "calendar": lambda run, _kind, matches: CalendarWriter(run, matches),
    "onedrive": lambda run, kind, _matches: _SiteWriter(run, kind),
    "sharepoint": lambda run, kind, _matches: _SiteWriter(run, kind),
}


def _one_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _service_reason(exc: GraphError) -> str:
    if isinstance(exc, MailboxUnavailable):
        return f"the target has no usable mailbox or OneDrive ({exc.code})"
    return (
        f"access denied ({exc.code}): the app registration used for restore needs write "
        "permissions (README: Restoring Microsoft 365)"
    )
