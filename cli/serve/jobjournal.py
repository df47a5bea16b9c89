"""Restores in flight, one small file each in ``<cache>/console-jobs/``: a restore
the server's stop cut short (its thread dies with the process) leaves its file
behind, and the next start reports it in the audit log as
``restore-interrupted`` (who asked, what, when it started), then removes it.

Each file is written atomically (temporary name, fsync, rename) with mode
0600 and holds no secret (the same fields as the ``restore`` audit entry).
Failures to write or remove are logged, never raised: bookkeeping must not
stop a restore. Thread-safe (one file per job).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class JobJournal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.json"

    def begin(self, job_id: str, entry: dict[str, Any]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".job-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(entry, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self._path(job_id))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("restore %s: cannot record it as in flight: %s", job_id, exc.strerror)

    def end(self, job_id: str) -> None:
        try:
            self._path(job_id).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("restore %s: cannot clear its record: %s", job_id, exc.strerror)

    def leftovers(self) -> list[dict[str, Any]]:
        """The restores a stopped server left unfinished (each file read, then removed)."""
        out: list[dict[str, Any]] = []
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError:
            return out
        for path in paths:
            try:
                entry = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError):
                entry = {"id": path.stem, "unreadable": True}
            if isinstance(entry, dict):
                out.append(entry)
            with contextlib.suppress(OSError):
                path.unlink()
        return out
