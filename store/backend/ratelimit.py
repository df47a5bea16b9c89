"""Bandwidth limits (``--limit-upload`` / ``--limit-download``) as a backend wrapper.

One token bucket per direction, shared by every thread that uses the backend,
so the limit holds for the whole process however many uploads run in
parallel. The unit is whole objects: an upload waits for its tokens before it
starts, a download pays for its bytes once they arrived. Over any stretch of
several objects the average rate is the limit; a single object still moves at
the link's speed (restic shapes the byte stream instead; our Backend.put takes
bytes, and packs are at most ~16 MiB, so the bursts are short).

Listings and stats are small and not counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from store.backend.base import Backend, ObjectInfo

KIB = 1024
# How much unused bandwidth may be saved up for a burst, in seconds of the rate.
DEFAULT_BURST_SECONDS = 0.25


class TokenBucket:
    """A thread-safe token bucket of ``rate`` bytes per second.

    The bucket holds at most ``burst`` bytes of credit. A request bigger than
    the credit is allowed to go into debt: its caller waits until the debt is
    paid, and later callers queue behind it, so the long-run rate never exceeds
    ``rate`` whatever the request sizes.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else self.rate * DEFAULT_BURST_SECONDS
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last = clock()

    def reserve(self, amount: int) -> float:
        """Take ``amount`` bytes of credit now; return the seconds to wait before using them."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= amount
            return max(0.0, -self._tokens / self.rate)

    def take(self, amount: int) -> None:
        """Block until ``amount`` bytes may pass."""
        wait = self.reserve(amount)
        if wait > 0:
            self._sleep(wait)


class RateLimitedBackend(Backend):
    """Limits upload and download bandwidth of ``inner``, in KiB/s (None: unlimited).

    Thread-safe. Errors of the inner backend pass through unchanged; bytes of
    a failed upload still count (they were most likely sent).
    """

    def __init__(
        self,
        inner: Backend,
        *,
        upload_kib: float | None = None,
        download_kib: float | None = None,
        burst_seconds: float = DEFAULT_BURST_SECONDS,
    ) -> None:
        self.inner = inner
        self.upload = (
            TokenBucket(upload_kib * KIB, upload_kib * KIB * burst_seconds) if upload_kib else None
        )
        self.download = (
            TokenBucket(download_kib * KIB, download_kib * KIB * burst_seconds)
            if download_kib
            else None
        )

    @property
    def location(self) -> str:
        return self.inner.location

    def put(self, key: str, data: bytes) -> None:
        if self.upload is not None:
            self.upload.take(len(data))
        self.inner.put(key, data)

    def put_buffer(self, key: str, data: bytearray) -> None:
        if self.upload is not None:
            self.upload.take(len(data))
        self.inner.put_buffer(key, data)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(key, offset, length)
        if self.download is not None:
            self.download.take(len(data))
        return data

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def close(self) -> None:
        self.inner.close()
