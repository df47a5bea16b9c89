"""Request counters reported by `GET /_sim/stats`.

What counts (issue 3): every HTTP request to Graph (`/v1.0/...`) and to the
pre-authenticated download and upload URLs, throttled and faulted ones included, plus one
more for each part of a `$batch` (the outer `$batch` request is itself counted once).
Token-endpoint and `/_sim` requests are not counted.

Thread-safe: all updates happen under one lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.requests_total = 0
            self.by_endpoint: Counter[str] = Counter()
            self.by_status: Counter[str] = Counter()
            self.by_owner: Counter[str] = Counter()
            self.bytes_served = 0
            self.bytes_received = 0
            self.content_downloads = 0
            self.throttled = 0
            self.faults_injected = 0
            self.batch_parts = 0

    def record(
        self,
        endpoint: str,
        status: int,
        *,
        owner: str = "",
        download: bool = False,
        batch_part: bool = False,
        received: int = 0,
    ) -> None:
        """Count one request (or batch part) once its status is known."""
        with self._lock:
            self.requests_total += 1
            self.by_endpoint[endpoint] += 1
            self.by_status[str(status)] += 1
            if owner:
                self.by_owner[owner] += 1
            if download:
                self.content_downloads += 1
            if batch_part:
                self.batch_parts += 1
            if status == 429:
                self.throttled += 1
            self.bytes_received += received

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_served += n

    def add_fault(self) -> None:
        with self._lock:
            self.faults_injected += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests_total": self.requests_total,
                "by_endpoint": dict(sorted(self.by_endpoint.items())),
                "by_status": dict(sorted(self.by_status.items())),
                "by_owner": dict(sorted(self.by_owner.items())),
                "bytes_served": self.bytes_served,
                "bytes_received": self.bytes_received,
                "content_downloads": self.content_downloads,
                "throttled": self.throttled,
                "faults_injected": self.faults_injected,
                "batch_parts": self.batch_parts,
            }
