"""What the scheduler remembers across restarts: per schedule, the last cron time
it handled and the last run's outcome, in one JSON file of the cache directory.

Writes are atomic (a temporary file in the same directory, fsync, rename), so
a crash leaves the old state or the new one, never half of either. A missing
or unreadable file is an empty state (a schedule then never counts as missed).
Thread-safe: one lock around every read-modify-write of this process. The
per-schedule run lock (:func:`run_lock`) is an flock, so a run started by
``coffer schedule run`` and one started by ``coffer serve`` never overlap.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from store import default_cache_root


def state_dir(cache_root: Path | None) -> Path:
    return (cache_root or default_cache_root()) / "schedules"


class StateFile:
    """``<cache>/schedules/state.json``: ``{name: {"last_due": ts, "last_run": {...}}}``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "state.json"
        self._lock = threading.Lock()

    def load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, name: str) -> dict[str, Any]:
        entry = self.load().get(name)
        return entry if isinstance(entry, dict) else {}

    def update(self, name: str, **values: Any) -> None:
        """Set keys of ``name``'s entry, atomically."""
        with self._lock:
            data = self.load()
            entry = data.get(name) if isinstance(data.get(name), dict) else {}
            assert isinstance(entry, dict)
            entry.update(values)
            data[name] = entry
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".state-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(data, handle, indent=1, sort_keys=True)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise


@contextlib.contextmanager
def run_lock(directory: Path, name: str) -> Iterator[bool]:
    """Hold ``name``'s run lock while the block runs; yields False (and holds
    nothing) when another thread or process has it. Never blocks."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the flock
