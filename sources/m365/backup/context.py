"""What the services work with: one owner's session, client, state and counters.

:class:`OwnerRun` holds everything one owner (user, site, team) shares during
a run; :class:`ServiceContext` is one service's view of it, with the write
helpers every service uses: they count items new / changed / deleted /
unchanged into the service report, report progress, and keep the tree's
invariants (an item's Graph ID is its ``item_id``; folders are directories
carrying their Graph JSON).

Write helpers may be called from download workers (the session is
thread-safe); the structural ones (move, enumeration) from the owner's thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import IO, Any, Protocol, cast

from sources.m365.backup.failures import SUFFIX as FAILED_SUFFIX
from sources.m365.backup.report import OwnerReport, ServiceReport
from sources.m365.backup.state import SyncState
from sources.m365.backup.writer import attributed_to
from sources.m365.graph.client import GraphClient
from sources.m365.graph.throttle import Resource
from sources.m365.settings import TenantSettings
from sources.m365.workers import Workers
from store import FILE, Content, ContentSink, Entry, OwnerSession

SPOOL_BYTES = 1024 * 1024  # downloads larger than this spill to a temporary file


class ProgressSink(Protocol):
    def item(self, name: str, size: int) -> None: ...


@dataclass(frozen=True)
class OwnerJob:
    """An owner to back up: ``kind`` users | sites | teams | groups, its Graph ID and
    display name."""

    kind: str
    key: str
    name: str
    services: tuple[str, ...]
    graph: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class RunFlags:
    """Facts learnt once per run and shared by every owner (thread-safe enough:
    flags only go from False to True)."""

    teams_protected_refused: str | None = None
    # Until one channel-message request has answered, teams wait for it
    # (teams_probe) instead of all asking a protected API that may refuse.
    teams_messages_allowed: bool = False
    teams_probe: threading.Lock = field(default_factory=threading.Lock)
    lock: threading.Lock = field(default_factory=threading.Lock)


def content_version(body: bytes) -> str:
    """A version key for documents without a changeKey: a hash of their bytes."""
    return "h:" + hashlib.sha256(body).hexdigest()[:24]


def graph_json(data: dict[str, Any], *, drop: tuple[str, ...] = ()) -> str:
    """Compact, stable JSON of a Graph object (what the ``graph`` attribute holds)."""
    kept = {k: v for k, v in data.items() if k not in drop}
    return json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class OwnerRun:
    job: OwnerJob
    session: OwnerSession
    client: GraphClient
    settings: TenantSettings
    state: SyncState
    workers: Workers
    report: OwnerReport
    flags: RunFlags
    progress: ProgressSink | None = None
    tmpdir: str | None = None


class ServiceContext:
    """One service of one owner (see the module docstring)."""

    def __init__(self, owner: OwnerRun, name: str, res: Resource) -> None:
        self.owner = owner
        self.name = name
        self.job = owner.job
        self.report: ServiceReport = owner.report.service(name)
        self.res = res.with_meter(self.report.meter).with_meter(owner.report.meter)
        self.state = owner.state.service(name)
        self.session = owner.session
        self.client: GraphClient = owner.client
        self.settings = owner.settings
        self.selection = owner.settings.selection

    # -- queries -----------------------------------------------------------------------

    def entry(self, path: str) -> Entry | None:
        return self.session.entry(path)

    def lookup(self, item_id: str) -> str | None:
        return self.session.lookup_id(item_id)

    def children(self, path: str) -> dict[str, tuple[str, str | None]]:
        """Name -> (type, version) in the parent snapshot."""
        return {os.fsdecode(k): v for k, v in self.session.children(path).items()}

    # -- writes --------------------------------------------------------------------------

    def unchanged(self, path: str, version: str) -> bool:
        if self.session.unchanged(path, version):
            self.report.add("items_unchanged")
            return True
        return False

    def unchanged_all(self, paths: Sequence[str], version: str, *, count: bool = True) -> bool:
        """True (all kept, one item counted) when the item and every companion file
        of it (``paths``: its ``.json`` first, then renderings and attachments) are
        stored with ``version``. False when any is missing or differs: the caller
        stores the whole item again (in a :meth:`group`)."""
        if self.session.unchanged_all(paths, version):
            if count:
                self.report.add("items_unchanged")
            return True
        return False

    def group(self) -> AbstractContextManager[None]:
        """One item and its companion files, committed as a unit (OwnerSession.group)."""
        return self.session.group()

    def add_file(
        self,
        path: str,
        content: Content | None = None,
        *,
        version: str | None,
        item_id: str | None = None,
        attrs: dict[str, str] | None = None,
        mtime_ns: int = 0,
        reuse_from: str | None = None,
        count: bool = True,
    ) -> Entry:
        """Store a file item (or re-describe stored content with ``reuse_from``)."""
        existed = self.session.entry(path) is not None or (
            reuse_from is not None and reuse_from != path
        )
        entry = self.session.add_item(
            path,
            content,
            mtime_ns=mtime_ns,
            version=version,
            item_id=item_id,
            attrs=attrs,
            reuse_content_of=reuse_from,
        )
        if count:
            self.report.add("items_changed" if existed else "items_new")
        if reuse_from is None and count:
            self.report.add("bytes_read", entry.size)
        if self.owner.progress is not None:
            self.owner.progress.item(path, 0 if reuse_from else entry.size)
        return entry

    def add_dir(
        self,
        path: str,
        *,
        item_id: str | None = None,
        attrs: dict[str, str] | None = None,
        version: str | None = None,
        mtime_ns: int = 0,
    ) -> None:
        self.session.add_directory(
            path, mtime_ns=mtime_ns, version=version, item_id=item_id, attrs=attrs
        )

    def remove(self, path: str, *, count: bool = True) -> None:
        entry = self.session.entry(path)
        if entry is None:
            return
        self.session.remove(path)
        if count:
            self.report.add("items_deleted", _count_files(self, path, entry))

    def move_tree(self, src: str, dst: str) -> None:
        """Move what is at ``src`` to ``dst`` (a renamed or moved folder): entries
        are re-described at the new place, their content reused, nothing read."""
        if src == dst or self.session.entry(src) is None:
            return
        self._copy_tree(src, dst)
        self.session.remove(src)

    def _copy_tree(self, src: str, dst: str) -> None:
        entry = self.session.entry(src)
        if entry is None:
            return
        if entry.is_dir:
            self.session.add_directory(
                dst,
                mode=entry.mode,
                mtime_ns=entry.mtime_ns,
                version=entry.version,
                item_id=entry.item_id,
                attrs=dict(entry.attrs),
            )
            for name in self.children(src):
                self._copy_tree(f"{src}/{name}", f"{dst}/{name}")
        elif entry.is_file:
            self.session.add_item(
                dst,
                mode=entry.mode,
                mtime_ns=entry.mtime_ns,
                version=entry.version,
                item_id=entry.item_id,
                attrs=dict(entry.attrs),
                reuse_content_of=src,
            )
            self.report.add("items_changed")

    # -- problems and notes -----------------------------------------------------------------

    def skip(self, item: str, reason: str) -> None:
        self.report.skip(item, reason)

    def note(self, message: str) -> None:
        self.report.note(message)

    def excluded(self, path: str, size: int = 0) -> str | None:
        """Why ``path`` is excluded by the configuration (and counted), or None."""
        if self.selection.path_excluded(path):
            reason = "excluded by exclude_paths"
        elif size and self.selection.too_large(size):
            reason = f"larger than max_item_size ({self.selection.max_item_size} bytes)"
        else:
            return None
        self.report.add("items_excluded")
        return reason

    # -- state and workers ---------------------------------------------------------------

    def publish(self) -> None:
        """Hand the sync state to the session (only for fully added collections)."""
        self.owner.state.publish(self.session)

    def submit(self, task: Callable[[], None]) -> None:
        report = self.report

        def run() -> None:
            with attributed_to(report):
                task()

        self.owner.workers.submit(run)

    def drain(self) -> None:
        self.owner.workers.drain()

    def content_sink(self) -> ContentSink:
        """Where an item's download goes when it is stored as it is: the content is
        cut and stored as it arrives, not spooled to a file and read back
        (store/backup/sink.py); pass it to :meth:`add_file`. The caller closes it."""
        return self.session.run.content_sink(self.owner.tmpdir)

    def spool(self) -> IO[bytes]:
        # The caller closes it (it is used as a context manager).
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=self.owner.tmpdir)  # noqa: SIM115
        return cast(IO[bytes], spool)


def _count_files(ctx: ServiceContext, path: str, entry: Entry) -> int:
    if not entry.is_dir:
        return 1
    return sum(
        _count_files(ctx, f"{path}/{name}", sub)
        for name in ctx.children(path)
        if (sub := ctx.session.entry(f"{path}/{name}")) is not None
    )


class Enumeration:
    """Names seen directly in one directory during a full enumeration of it.

    :meth:`finish` removes the files the parent snapshot had there that were
    not seen (they are gone from Microsoft 365), except the records of failed
    items (failures.py keeps and removes those). Call it only when the
    enumeration completed. Thread-safe.
    """

    def __init__(self, ctx: ServiceContext, directory: str) -> None:
        self.ctx = ctx
        self.directory = directory
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def saw(self, name: str) -> None:
        with self._lock:
            self._seen.add(name)

    def finish(self) -> None:
        for name, (kind, _version) in self.ctx.children(self.directory).items():
            if kind == FILE and name not in self._seen and not name.endswith(FAILED_SUFFIX):
                self.ctx.remove(f"{self.directory}/{name}")
