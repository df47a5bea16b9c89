"""The maintenance lock (FORMAT.md §12): one prune or repair at a time.

Backups never take it and never wait for it: garbage collection is safe
against backups by marks, grace periods and session markers (store/pruning.py).
The lock only keeps two maintenance commands from rewriting the index at the
same time. Backends offer no compare-and-swap, so it is advisory: written,
read back to see who won, refreshed while held, and taken over when its
holder stopped refreshing it for ``stale_ns``, or at once when the holder ran
on this host and its process no longer exists (killed).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

from store.codec import pack, unpack
from store.errors import ObjectNotFound, RepositoryLocked, StoreError
from store.repository import Repository
from store.snapshot import format_time

LOCK_KEY = "locks/maintenance"
STALE_NS = 30 * 60 * 10**9
_REFRESH_SECONDS = 120.0


def _dead(holder: dict[str, object]) -> bool:
    """True when the holder ran on this host and its process is gone (killed)."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class MaintenanceLock:
    """Hold the repository's maintenance lock (a context manager)."""

    def __init__(
        self,
        repo: Repository,
        what: str,
        *,
        clock: Callable[[], int] = time.time_ns,
        stale_ns: int = STALE_NS,
    ) -> None:
        self._repo = repo
        self._what = what
        self._clock = clock
        self._stale_ns = stale_ns
        self._token = os.urandom(16).hex()
        self._started = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _content(self) -> bytes:
        return pack(
            {
                "v": 1,
                "token": self._token,
                "what": self._what,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": self._started,
                "refreshed": self._clock(),
            }
        )

    def _holder(self) -> dict[str, object] | None:
        try:
            data = unpack(self._repo.load_object("lock", LOCK_KEY), LOCK_KEY)
        except ObjectNotFound:
            return None
        except StoreError:
            return None  # a damaged lock protects nothing; check reports it
        return data if isinstance(data, dict) else None

    def acquire(self) -> None:
        """Take the lock. Raises RepositoryLocked while another holder is alive."""
        holder = self._holder()
        if holder is not None and holder.get("token") != self._token and not _dead(holder):
            refreshed = holder.get("refreshed")
            if isinstance(refreshed, int) and self._clock() - refreshed < self._stale_ns:
                raise RepositoryLocked(
                    f"{holder.get('what')} is running on {holder.get('host')} "
                    f"(pid {holder.get('pid')}) since "
                    f"{format_time(int(str(holder.get('started', 0))), precision=0)}; "
                    "try again when it is done"
                )
        self._repo.save_object("lock", LOCK_KEY, self._content())
        holder = self._holder()
        if holder is None or holder.get("token") != self._token:
            raise RepositoryLocked("another maintenance command took the lock at the same time")
        self._thread = threading.Thread(target=self._refresh, daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        while not self._stop.wait(_REFRESH_SECONDS):
            try:
                self._repo.save_object("lock", LOCK_KEY, self._content())
            except StoreError:
                continue

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder = self._holder()
        if holder is not None and holder.get("token") == self._token:
            self._repo.backend.delete(LOCK_KEY)

    def __enter__(self) -> MaintenanceLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
