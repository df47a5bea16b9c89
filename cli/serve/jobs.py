"""Restores started from the browser, run on a thread each by the same command code
as ``coffer restore`` (cli/commands/restore.py): to the original location,
another user or site (``--to``), or into a directory that is then zipped for
download (``--to-dir``). The console adds no logic of its own about the
repository or Microsoft 365; it only passes options and keeps the result.

A job holds the repository's lock while it runs (the engine's objects are
not used concurrently), so pages that read the repository wait for it.
Zips live in a private temporary directory removed when the server stops.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from cli.errors import CliError
from cli.serve.console import Console, ServedRepo
from cli.serve.jobjournal import JobJournal
from cli.ui.progress import Progress, watching
from sources.errors import SourceError
from store import ExitCode, StoreError, default_cache_root

log = logging.getLogger(__name__)

DOWNLOAD = "download"


@dataclass
class RestoreRequest:
    snapshot: str  # the snapshot's full ID
    paths: tuple[str, ...]  # folders and items inside the snapshot (none: all of it)
    target: str  # "original", "user:UPN[/FOLDER]", "site:...", or DOWNLOAD
    on_conflict: str
    dry_run: bool

    def args(self, directory: Path | None) -> list[str]:
        out = [self.snapshot, "--on-conflict", self.on_conflict]
        for path in self.paths:
            out += ["--path", path]
        if directory is not None:
            out += ["--to-dir", str(directory)]
        else:
            out += ["--to", self.target]
            if self.dry_run:
                out.append("--dry-run")
        return out


@dataclass
class RestoreJob:
    id: str
    user: str
    repo: str
    request: RestoreRequest
    state: str = "queued"  # queued, running, done, failed, interrupted (the server stopped)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    exit_code: int | None = None
    error: str | None = None
    report_key: str | None = None
    report: dict[str, Any] | None = None
    zip_path: Path | None = None
    progress: Progress | None = None

    def follow(self, progress: Progress) -> None:
        """Called with the restore's progress display (cli/ui/progress.py watching())."""
        self.progress = progress

    def to_map(self) -> dict[str, Any]:
        now = self.finished or time.time()
        p = self.progress
        return {
            "items": p.items if p else 0,
            "items_total": p.items_total if p else 0,
            "bytes": p.bytes if p else 0,
            "owners_done": p.owners_done if p else 0,
            "owners_total": p.owners_total if p else 0,
            "id": self.id,
            "state": self.state,
            "seconds": round(now - self.started, 1),
            "exit_code": self.exit_code,
            "error": self.error,
            "report": self.report_key,
            "summary": (self.report or {}).get("summary"),
            "download": self.zip_path is not None,
            "paths": list(self.request.paths),
        }


class RestoreJobs:
    """The background service running restores (cli/serve/services.py)."""

    name = "restore-jobs"

    def __init__(self, console: Console) -> None:
        self.console = console
        self.jobs: dict[str, RestoreJob] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._dir: Path | None = None
        cache = console.cli_app.cache_root() or default_cache_root()
        self.journal = JobJournal(cache / "console-jobs")

    def start(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="coffer-console-"))
        # Restores the last stop cut short: reported now, in the audit log.
        for entry in self.journal.leftovers():
            served = self.console.repo(str(entry.get("repo") or ""))
            user = str(entry.pop("user", ""))
            entry.pop("repo", None)
            log.warning(
                "restore %s of %s was interrupted by the server's stop", entry.get("id"), user
            )
            served.audit.record("restore-interrupted", user, "", **entry)

    def stop(self) -> None:
        for thread in list(self._threads):
            thread.join(timeout=5)  # restores in flight finish their current item
        for job in list(self.jobs.values()):
            if job.state in ("queued", "running"):
                # Its thread dies with the process; its journal file stays, so the
                # next start records it as interrupted.
                job.state = "interrupted"
                log.warning("stopping: restore %s of %s is interrupted", job.id, job.user)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def unfinished(self) -> list[RestoreJob]:
        """Jobs whose thread is still at work (after stop(): those it interrupted)."""
        with self._lock:
            return [j for j in self.jobs.values() if j.finished is None]

    def get(self, job_id: str) -> RestoreJob | None:
        with self._lock:
            return self.jobs.get(job_id)

    def submit(self, served: ServedRepo, user: str, request: RestoreRequest) -> RestoreJob:
        job = RestoreJob(secrets.token_hex(8), user, served.name, request)
        with self._lock:
            self.jobs[job.id] = job
        self.journal.begin(
            job.id,
            {
                "id": job.id,
                "user": user,
                "repo": served.name,
                "snapshot": request.snapshot,
                "paths": list(request.paths),
                "target": request.target,
                "on_conflict": request.on_conflict,
                "dry_run": request.dry_run,
                "started": datetime.fromtimestamp(job.started, UTC).isoformat(timespec="seconds"),
            },
        )
        thread = threading.Thread(
            target=self._run, args=(served, job), name=f"restore-{job.id}", daemon=True
        )
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return job

    def _run(self, served: ServedRepo, job: RestoreJob) -> None:
        if self._dir is None:
            self.start()
        assert self._dir is not None
        request = job.request
        out_dir = self._dir / job.id if request.target == DOWNLOAD else None
        # The invocation's own App, sharing the open repository and configuration.
        app = replace(self.console.cli_app, quiet=True, _repo=served.repo, _others=[])
        job.state = "running"
        try:
            with served.lock:
                before = set(served.repo.list_reports("restore"))
                ctx = self.console.restore_command.make_context(
                    "restore", request.args(out_dir), obj=app
                )
                with ctx, watching(job.follow):
                    code = self.console.restore_command.invoke(ctx)
                new = sorted(set(served.repo.list_reports("restore")) - before)
                if new:
                    job.report_key = new[-1]
                    job.report = served.repo.load_report(new[-1])
            job.exit_code = int(code) if isinstance(code, int) else ExitCode.OK
            if out_dir is not None and out_dir.exists():
                archive = shutil.make_archive(str(out_dir), "zip", root_dir=out_dir)
                shutil.rmtree(out_dir, ignore_errors=True)
                job.zip_path = Path(archive)
            job.state = "done"
        except (CliError, StoreError, SourceError) as exc:
            job.state, job.error = "failed", str(exc)
            job.exit_code = exc.exit_code
        except click.ClickException as exc:
            job.state, job.error = "failed", exc.format_message()
            job.exit_code = exc.exit_code
        except Exception as exc:  # a bug: the job fails, the server lives on
            log.exception("restore job %s failed", job.id)
            job.state, job.error = "failed", f"unexpected error: {type(exc).__name__}"
        finally:
            job.finished = time.time()
            served.forget_caches()
            self.journal.end(job.id)
