"""Retry of temporary backend failures, as a wrapper around any backend.

Only :class:`TransientBackendError` is retried: ObjectNotFound, BackendFull and
every other error pass through at once. Every backend method is safe to retry
(``put`` is atomic and replaces, ``delete`` is idempotent), so the wrapper can
repeat any call.

Delays grow exponentially with "full jitter" (a random delay between zero and
the exponential bound, as AWS recommends), so many clients hit by the same
outage do not come back in lockstep.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from store.backend.base import Backend, ObjectInfo
from store.errors import TransientBackendError

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 8
DEFAULT_BASE_DELAY = 0.5  # seconds before the second attempt (at most)
DEFAULT_MAX_DELAY = 30.0  # seconds between two attempts at most


class RetryingBackend(Backend):
    """Retries TransientBackendError with exponential backoff and jitter.

    ``attempts`` bounds the calls per operation (the first included); when they
    are used up the last TransientBackendError is raised. Thread-safe: the
    wrapper holds no state but a lock-protected random source and counters.
    ``sleep`` and ``rng`` can be replaced (tests use a fake clock and a seed).
    """

    def __init__(
        self,
        inner: Backend,
        *,
        attempts: int = DEFAULT_ATTEMPTS,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.inner = inner
        self._attempts = attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._lock = threading.Lock()
        self.retries = 0  # retries performed so far (for reports and tests)

    @property
    def location(self) -> str:
        return self.inner.location

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        bound = min(self._max_delay, self._base_delay * 2 ** (failures - 1))
        with self._lock:
            return self._rng.uniform(0, bound)

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        failures = 0
        while True:
            try:
                return operation()
            except TransientBackendError as exc:
                failures += 1
                if failures >= self._attempts:
                    raise
                pause = self.delay(failures)
                with self._lock:
                    self.retries += 1
                log.info(
                    "%s on %s failed (%s); attempt %d of %d in %.1fs",
                    what,
                    self.location,
                    exc,
                    failures + 1,
                    self._attempts,
                    pause,
                )
                self._sleep(pause)

    def put(self, key: str, data: bytes) -> None:
        self._call(f"put {key}", lambda: self.inner.put(key, data))

    def put_buffer(self, key: str, data: bytearray) -> None:
        self._call(f"put {key}", lambda: self.inner.put_buffer(key, data))

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call(f"get {key}", lambda: self.inner.get(key, offset, length))

    def stat(self, key: str) -> ObjectInfo:
        return self._call(f"stat {key}", lambda: self.inner.stat(key))

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", lambda: self.inner.delete(key))

    def create(self, key: str, data: bytes) -> bool:
        # A retried create may answer False for what the failed attempt
        # created; Backend.create tells callers to read back when it matters.
        return self._call(f"create {key}", lambda: self.inner.create(key, data))

    def delete_temporary(self, key: str) -> None:
        self._call(f"delete {key}", lambda: self.inner.delete_temporary(key))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """List, restarting the listing after a transient failure.

        Keys already yielded are not yielded again, so a caller sees each key
        once even when the listing restarted half-way.
        """
        seen: set[str] = set()
        failures = 0
        progress_at_failure = 0
        while True:
            try:
                for info in self.inner.list(prefix):
                    if info.key not in seen:
                        seen.add(info.key)
                        yield info
                return
            except TransientBackendError as exc:
                # A listing that got further than last time is making
                # progress: only consecutive fruitless attempts count. (It
                # still ends, since the keys are finite.)
                failures = 1 if len(seen) > progress_at_failure else failures + 1
                progress_at_failure = len(seen)
                if failures >= self._attempts:
                    raise
                pause = self.delay(failures)
                with self._lock:
                    self.retries += 1
                log.info("listing %s on %s failed (%s); retrying", prefix, self.location, exc)
                self._sleep(pause)

    def close(self) -> None:
        self.inner.close()
