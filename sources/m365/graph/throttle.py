"""Throttling: per-resource concurrency, pauses, and where the time went.

Graph throttles per resource: Outlook per app and mailbox (10,000 requests per
10 minutes, at most 4 concurrent), SharePoint and OneDrive per app and tenant
(resource units), Teams per app and tenant and per channel. A throttled answer
(429, or 503 with Retry-After) pauses only what it concerns: the mailbox, all
of SharePoint, Teams, or the whole app for requests that belong to no service
(directory reads). Requests for other mailboxes go on meanwhile.

:class:`Resource` says what a request touches; :class:`Gates` enforces the
limits; :class:`Meter` counts requests and waits for the report. Thread-safe.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

APP = "app"


class RunStopped(BaseException):
    """The run is being interrupted: no further request is sent. A BaseException,
    so that no service mistakes it for a failure and commits half its work."""


MAILBOX_CONCURRENCY = 4  # throttling-limits.md, "Outlook service limits"


class Meter:
    """Counters of one owner (or service): requests, bytes, throttled time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.throttled = 0  # answers 429/503 received
        self.throttled_seconds = 0.0
        self.retries = 0
        self.bytes_downloaded = 0
        self.listeners: list[Callable[[float], None]] = []

    def request(self) -> None:
        with self._lock:
            self.requests += 1

    def retry(self) -> None:
        with self._lock:
            self.retries += 1

    def throttled_answer(self) -> None:
        with self._lock:
            self.throttled += 1

    def waited(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            self.throttled_seconds += seconds
        for listener in self.listeners:
            listener(seconds)

    def downloaded(self, size: int) -> None:
        with self._lock:
            self.bytes_downloaded += size


@dataclass(frozen=True)
class Resource:
    """What a request touches.

    ``scopes``: every pause that holds it back (the app's pause always does);
    ``pause``: the scope a throttled answer pauses; ``concurrency``: a key whose
    requests in flight are limited (a mailbox), or None.
    """

    scopes: tuple[str, ...]
    pause: str
    concurrency: str | None = None
    meters: tuple[Meter, ...] = field(default=(), compare=False)

    @classmethod
    def mailbox(cls, user_id: str, *meters: Meter) -> Resource:
        key = f"mailbox:{user_id}"
        return cls((APP, key), key, key, meters)

    @classmethod
    def sharepoint(cls, *meters: Meter) -> Resource:
        # Resource units are counted per app and tenant: a 429 concerns all sites.
        return cls((APP, "sharepoint"), "sharepoint", None, meters)

    @classmethod
    def teams(cls, channel: str | None, *meters: Meter) -> Resource:
        scopes = (APP, "teams", f"channel:{channel}") if channel else (APP, "teams")
        return cls(scopes, "teams", None, meters)

    @classmethod
    def directory(cls, *meters: Meter) -> Resource:
        return cls((APP,), APP, None, meters)

    def with_meter(self, meter: Meter) -> Resource:
        return Resource(self.scopes, self.pause, self.concurrency, (*self.meters, meter))

    def count_request(self) -> None:
        for meter in self.meters:
            meter.request()

    def count_throttled(self) -> None:
        for meter in self.meters:
            meter.throttled_answer()

    def count_retry(self) -> None:
        for meter in self.meters:
            meter.retry()

    def waited(self, seconds: float) -> None:
        for meter in self.meters:
            meter.waited(seconds)

    def downloaded(self, size: int) -> None:
        for meter in self.meters:
            meter.downloaded(size)


class SharedGates(Protocol):
    """Throttling state shared with other processes (scale-out workers on several
    machines, cli/cluster/limiter.py): Graph's limits are per app and tenant, not
    per process. Every method is thread-safe and may block; none raises for an
    unreachable store (a shared limiter that cannot reach its store admits)."""

    def pause(self, scope: str, seconds: float) -> None:
        """Pause ``scope`` for every process (extends, never shortens)."""

    def remaining(self, scopes: tuple[str, ...]) -> float:
        """Seconds until every scope of ``scopes`` is unpaused everywhere."""

    def acquire(self, resource: Resource) -> object:
        """Block until ``resource`` may send one request (a shared concurrency slot
        and the tenant's rate); returns what :meth:`release` takes back, or None,
        holding nothing, when a scope of ``resource`` is paused (then
        :meth:`remaining` says for how long)."""

    def release(self, resource: Resource, token: object) -> None:
        """Give back the slot :meth:`acquire` returned ``token`` for."""


class Gates:
    """Pauses per scope and concurrency slots per key. Thread-safe.

    With ``shared``, pauses and slots bind other processes too (scale-out)."""

    def __init__(
        self,
        *,
        per_key: int = MAILBOX_CONCURRENCY,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        shared: SharedGates | None = None,
    ) -> None:
        self._shared = shared
        self._per_key = per_key
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._paused_until: dict[str, float] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._stopped = threading.Event()

    def stop(self) -> None:
        """Refuse every request from now on (RunStopped): Ctrl-C ends the run quickly."""
        self._stopped.set()

    def pause(self, scope: str, seconds: float) -> None:
        """Hold back every request in ``scope`` for ``seconds`` (extends, never shortens)."""
        until = self._clock() + max(0.0, seconds)
        with self._lock:
            if until > self._paused_until.get(scope, 0.0):
                self._paused_until[scope] = until
        if self._shared is not None:
            self._shared.pause(scope, seconds)

    def _local_remaining(self, resource: Resource) -> float:
        now = self._clock()
        with self._lock:
            until = max((self._paused_until.get(s, 0.0) for s in resource.scopes), default=0.0)
        return max(0.0, until - now)

    def remaining(self, resource: Resource) -> float:
        left = self._local_remaining(resource)
        if self._shared is not None:
            left = max(left, self._shared.remaining(resource.scopes))
        return left

    def wait(self, resource: Resource) -> float:
        """Sleep while any scope of ``resource`` is paused; returns the seconds slept."""
        waited = 0.0
        while True:
            if self._stopped.is_set():
                raise RunStopped()
            left = self.remaining(resource)
            if left <= 0:
                return waited
            step = min(left, 5.0)
            self._sleep(step)
            waited += step

    def _slot(self, key: str) -> threading.BoundedSemaphore:
        with self._lock:
            sem = self._slots.get(key)
            if sem is None:
                sem = self._slots[key] = threading.BoundedSemaphore(self._per_key)
            return sem

    @contextlib.contextmanager
    def admit(self, resource: Resource) -> Iterator[None]:
        """Wait out pauses, then hold a concurrency slot for the request's duration
        (a local one, and with ``shared`` one that binds every process)."""
        while True:
            resource.waited(self.wait(resource))
            sem = None if resource.concurrency is None else self._slot(resource.concurrency)
            if sem is not None:
                sem.acquire()
            # The shared acquire checks the shared pauses itself (None: paused).
            held = self._shared.acquire(resource) if self._shared is not None else True
            if held is None or self._local_remaining(resource) > 0:
                # Paused while we queued for the slot: give it back and wait again.
                self._release(resource, sem, held)
                continue
            token = held
            try:
                yield
            finally:
                self._release(resource, sem, token)
            return

    def _release(
        self, resource: Resource, sem: threading.BoundedSemaphore | None, token: object
    ) -> None:
        if self._shared is not None:
            self._shared.release(resource, token)
        if sem is not None:
            sem.release()
