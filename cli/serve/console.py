"""The state one ``coffer serve`` process shares between requests: its settings,
users, sign-in limiter, and the repositories it serves (each with a lock, a
virtual filesystem for browsing, its audit log and cached figures).

Thread-safety: requests run on worker threads; every use of a repository
holds its ``lock`` (the engine's objects are not meant for concurrent use).
Cached figures are recomputed when older than their time to live.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from cli.app import App
from cli.serve.audit import AuditLog
from cli.serve.config import ServeSettings
from cli.serve.metrics import RepoFigures
from cli.serve.notifylog import NotificationLog
from cli.serve.overview import Overview, build_overview
from cli.serve.ratelimit import SignInLimiter
from cli.serve.users import UserFile
from store import Repository, RepoStats, StoreError, VirtualFS, repository_stats

OVERVIEW_TTL = 30.0
STATS_TTL = 300.0


@dataclass
class ServedRepo:
    """One repository the console serves."""

    name: str
    repo: Repository
    lock: threading.RLock = field(default_factory=threading.RLock)
    _vfs: VirtualFS | None = None
    _overview: Overview | None = None
    _stats: tuple[float, RepoStats] | None = None
    _stats_error: str | None = None

    def __post_init__(self) -> None:
        self.audit = AuditLog(self.repo, self.lock)
        self.notifications = NotificationLog(self.repo, self.lock)

    @property
    def vfs(self) -> VirtualFS:
        with self.lock:
            if self._vfs is None:
                self._vfs = VirtualFS(self.repo, refresh_seconds=OVERVIEW_TTL)
            return self._vfs

    def overview(self, *, fresh: bool = False) -> Overview:
        """Runs and owners, at most OVERVIEW_TTL seconds old. Raises StoreError."""
        with self.lock:
            cached = self._overview
            if fresh or cached is None or time.time() - cached.made_at > OVERVIEW_TTL:
                self.repo.refresh_index()
                cached = self._overview = build_overview(self.repo)
            return cached

    def stats(self) -> RepoStats | None:
        """Size and ratios, at most STATS_TTL seconds old; None if they cannot be read."""
        with self.lock:
            if self._stats is None or time.time() - self._stats[0] > STATS_TTL:
                try:
                    self._stats = (time.time(), repository_stats(self.repo))
                    self._stats_error = None
                except StoreError as exc:
                    self._stats_error = str(exc)
                    return None
            return self._stats[1]

    def forget_caches(self) -> None:
        with self.lock:
            self._overview = None
            self._stats = None

    def figures(self) -> RepoFigures:
        stats = self.stats()
        return RepoFigures(
            self.name,
            self.overview(),
            stats.repository_bytes if stats else None,
            stats.dedup_ratio if stats else None,
            stats.compression_ratio if stats else None,
        )


@dataclass
class Console:
    """Everything a request handler may use (see the module docstring)."""

    settings: ServeSettings
    repos: list[ServedRepo]
    cli_app: App
    # The `coffer restore` command, which runs the console's restores so that
    # they behave exactly as on the command line. Handed in by `coffer serve`
    # (cli/commands/serve.py) rather than imported: commands sit above serve.
    restore_command: click.Command
    users: UserFile = field(init=False)
    limiter: SignInLimiter = field(init=False)
    # Signs session cookies. Random per process: a restart signs everyone out,
    # and no key lies on disk to be stolen.
    session_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if not self.repos:
            raise ValueError("the console needs at least one repository")
        self.users = UserFile(self.settings.users_file)
        self.limiter = SignInLimiter(
            self.settings.login_attempts,
            self.settings.login_window_seconds,
            self.settings.lockout_seconds,
            clock=self.clock,
        )

    @property
    def primary(self) -> ServedRepo:
        """The first repository: sign-ins are audited there."""
        return self.repos[0]

    def repo(self, name: str | None) -> ServedRepo:
        """The repository named ``name`` (the first when None or unknown)."""
        return next((r for r in self.repos if r.name == name), self.repos[0])

    def metrics_token(self) -> str | None:
        """The token /metrics requires, re-read each time (rotation needs no restart);
        None when no token file is configured or it is empty."""
        path: Path | None = self.settings.metrics_token_file
        if path is None:
            return None
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return token or None
