"""The maintenance lock (FORMAT.md §12): one prune or repair at a time.

Backups never take it and never wait for it: garbage collection is safe
against backups by marks, grace periods and session markers (store/maintenance/prune/pruning.py).
The lock keeps two maintenance commands, on one machine or several, from
rewriting the index at the same time. How it is won depends on what the
backend can promise (docs/backends.md has the table):

- **Conditional creation** (local directories, S3, Azure, GCS, SFTP;
  ``Backend.create``): the lock object is created only if absent, so of two
  hosts racing exactly one wins, however their clocks and latencies fall. A
  holder that stopped refreshing for ``stale_ns``, or that provably died, is
  taken over through a second create-if-absent, of
  ``locks/takeover-<its token>``: of several hosts that found the same stale
  holder, one wins the takeover.
- **Lease** (rclone, and servers that ignore preconditions): the contender
  writes the lock, waits ``settle`` seconds and reads it back; the last
  writer holds it. Two contenders both win only if one's write took longer
  than ``settle`` to land; the heartbeat then tells the loser (below).

Every holder refreshes the lock every 2 minutes (a heartbeat), reading it
first: once it is no longer its own, it stops writing it, and
:meth:`MaintenanceLock.ensure_held` raises RepositoryLocked. Prune and repair
call it before they delete anything.

A holder is *dead* (taken over at once, without waiting for ``stale_ns``)
only when it ran in this very process space: same host identity (hostname,
machine ID, boot ID and PID namespace, so containers sharing a hostname are
different hosts) and its process is gone or is another process now (its
start time differs). Anything else waits for staleness.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from store.backend import ConditionalWriteUnsupported
from store.errors import ObjectNotFound, RepositoryLocked, StoreError
from store.format.codec import decode, encode
from store.format.snapshot import format_time
from store.names import LOCK_TAKEOVER, MAINTENANCE_LOCK
from store.repository.repository import Repository

STALE_NS = 30 * 60 * 10**9
LEASE_SETTLE_SECONDS = 10.0
_REFRESH_SECONDS = 120.0
_ATTEMPTS = 5


def _read_first_line(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def host_identity() -> str | None:
    """Who "this host" is for the dead-holder test, or None when unknowable.

    The hostname alone is not enough: containers often share one (and their
    PIDs overlap). The PID namespace is what makes a PID mean a process.
    """
    try:
        pid_namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    parts = [
        socket.gethostname(),
        _read_first_line("/etc/machine-id") or "",
        _read_first_line("/proc/sys/kernel/random/boot_id") or "",
        pid_namespace,
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def process_start(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), or None when it does not exist."""
    raw = _read_first_line(f"/proc/{pid}/stat")
    if raw is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after it.
    fields = raw.rpartition(")")[2].split()
    try:
        return int(fields[19])  # field 22 of stat(5), the 20th after the name
    except (IndexError, ValueError):
        return None


def _dead(holder: dict[str, object]) -> bool:
    """True when the holder provably ran here and its process is gone (killed)."""
    pid, started = holder.get("pid"), holder.get("pstart")
    here = host_identity()
    if here is None or holder.get("hostid") != here or not isinstance(pid, int) or pid <= 0:
        return False
    now = process_start(pid)
    return now is None or (isinstance(started, int) and now != started)


class MaintenanceLock:
    """Hold the repository's maintenance lock (a context manager).

    ``clock`` gives the times written into the lock (prune passes its own);
    ``stale_ns`` is how long a holder may go without refreshing; ``settle``
    is the lease's wait (backends without conditional writes only).
    """

    def __init__(
        self,
        repo: Repository,
        what: str,
        *,
        clock: Callable[[], int] = time.time_ns,
        stale_ns: int = STALE_NS,
        settle: float = LEASE_SETTLE_SECONDS,
        refresh_seconds: float = _REFRESH_SECONDS,
    ) -> None:
        self._repo = repo
        self._what = what
        self._clock = clock
        self._stale_ns = stale_ns
        self._settle = settle
        self._refresh_seconds = refresh_seconds
        self._token = os.urandom(16).hex()
        self._started = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost = threading.Event()
        self.mode = ""  # "conditional" or "lease", once acquired

    def _content(self) -> bytes:
        pid = os.getpid()
        return encode(
            {
                "v": 1,
                "token": self._token,
                "what": self._what,
                "host": socket.gethostname(),
                "hostid": host_identity(),
                "pid": pid,
                "pstart": process_start(pid),
                "started": self._started,
                "refreshed": self._clock(),
            }
        )

    def _sealed(self, key: str) -> bytes:
        return self._repo.seal_object("lock", key, self._content())

    def _read(self, key: str = MAINTENANCE_LOCK) -> dict[str, object] | bytes | None:
        """The holder's fields; None when there is no lock; the raw bytes of a
        damaged one (a damaged lock protects nothing; check reports it)."""
        try:
            data = decode(self._repo.load_object("lock", key), key)
        except ObjectNotFound:
            return None
        except StoreError:
            try:
                return self._repo.backend.get(key)
            except ObjectNotFound:
                return None
        return data if isinstance(data, dict) else b"not a map"

    def _alive(self, holder: dict[str, object]) -> bool:
        if _dead(holder):
            return False
        refreshed = holder.get("refreshed")
        return isinstance(refreshed, int) and self._clock() - refreshed < self._stale_ns

    def _refuse(self, holder: dict[str, object]) -> RepositoryLocked:
        # The lock is sealed, but whoever holds a key writes it: every field is checked.
        started = holder.get("started")
        since = (
            format_time(started, precision=0)
            if isinstance(started, int) and 0 <= started < 1 << 63
            else "an unknown time"
        )
        return RepositoryLocked(
            f"{holder.get('what')} is running on {holder.get('host')} "
            f"(pid {holder.get('pid')}) since {since}; try again when it is done"
        )

    def acquire(self) -> None:
        """Take the lock. Raises RepositoryLocked while another holder is alive."""
        try:
            self._acquire_conditional()
            self.mode = "conditional"
        except ConditionalWriteUnsupported:
            self._acquire_lease()
            self.mode = "lease"
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)
        self._thread.start()

    def _acquire_conditional(self) -> None:
        backend = self._repo.backend
        for _ in range(_ATTEMPTS):
            if backend.create(MAINTENANCE_LOCK, self._sealed(MAINTENANCE_LOCK)):
                return
            holder = self._read()
            if holder is None:
                continue  # released meanwhile: create again
            if isinstance(holder, dict):
                if holder.get("token") == self._token:
                    return  # our own create, retried after a lost answer
                if self._alive(holder):
                    raise self._refuse(holder)
                victim = str(holder.get("token"))
            else:
                victim = "damaged-" + hashlib.sha256(holder).hexdigest()[:32]
            claim = f"{LOCK_TAKEOVER}{victim}"
            if not backend.create(claim, self._sealed(claim)):
                mine = self._read(claim)
                if not (isinstance(mine, dict) and mine.get("token") == self._token):
                    raise RepositoryLocked(
                        "another maintenance command is taking over a stale maintenance lock"
                    )
            # One winner per stale holder: replacing its lock is ours alone.
            self._repo.save_object("lock", MAINTENANCE_LOCK, self._content())
            self._forget_old_claims(keep=claim)
            return
        raise RepositoryLocked("the maintenance lock keeps changing hands; try again")

    def _forget_old_claims(self, keep: str) -> None:
        """Delete takeover claims of long-gone holders (they only need to
        outlive a contender that read the same stale holder)."""
        for info in list(self._repo.backend.list(LOCK_TAKEOVER)):
            if info.key == keep:
                continue
            claim = self._read(info.key)
            refreshed = claim.get("refreshed") if isinstance(claim, dict) else None
            if isinstance(refreshed, int) and self._clock() - refreshed > 2 * self._stale_ns:
                self._repo.backend.delete(info.key)

    def _acquire_lease(self) -> None:
        holder = self._read()
        if isinstance(holder, dict) and holder.get("token") != self._token and self._alive(holder):
            raise self._refuse(holder)
        self._repo.save_object("lock", MAINTENANCE_LOCK, self._content())
        # Another contender that read "free" before our write landed writes
        # too; after the settle time the last writer is the holder.
        time.sleep(self._settle)
        holder = self._read()
        if not (isinstance(holder, dict) and holder.get("token") == self._token):
            raise RepositoryLocked("another maintenance command took the lock at the same time")

    def _heartbeat(self) -> None:
        while not self._stop.wait(self._refresh_seconds):
            try:
                holder = self._read()
                if not (isinstance(holder, dict) and holder.get("token") == self._token):
                    self._lost.set()  # taken over: never write over the new holder
                    return
                self._repo.save_object("lock", MAINTENANCE_LOCK, self._content())
            except StoreError:
                continue

    def ensure_held(self) -> None:
        """Raise RepositoryLocked if the lock is no longer ours (read afresh).

        Call before destructive steps: a holder that stalled past ``stale_ns``
        may have been taken over.
        """
        holder = self._read()
        if self._lost.is_set() or not (
            isinstance(holder, dict) and holder.get("token") == self._token
        ):
            self._lost.set()
            raise RepositoryLocked(
                "the maintenance lock was taken over while this command stalled; "
                "nothing more is deleted"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder = self._read()
        if isinstance(holder, dict) and holder.get("token") == self._token:
            self._repo.backend.delete(MAINTENANCE_LOCK)

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
