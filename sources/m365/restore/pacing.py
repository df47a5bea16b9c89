"""Keeping restores within Exchange's upload limit, and estimating how long they take.

Outlook accepts about 150 MB of uploads per app and mailbox in any 5 minutes
(throttling-limits.md, "Outlook service limits"); past that every request
to the mailbox is answered 429 until the window moves on. A restore of a
large mailbox is therefore paced rather than throttled: :class:`UploadBudget`
holds an upload back until the mailbox's last 5 minutes leave room for it
(an upload larger than the whole budget goes alone). Other mailboxes are not
held back. The same limit bounds how soon a mailbox can be finished, which
:class:`Eta` uses: a restore's estimate is the larger of what the throughput
so far predicts and what the budget allows for the mailbox with the most
mail left. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from sources.m365.graph.throttle import RunStopped

MAILBOX_UPLOAD_BYTES = 150_000_000
MAILBOX_UPLOAD_WINDOW = 300.0


class UploadBudget:
    """Bytes sent per mailbox in a sliding window (see the module docstring)."""

    def __init__(
        self,
        limit: int = MAILBOX_UPLOAD_BYTES,
        window: float = MAILBOX_UPLOAD_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent: dict[str, deque[tuple[float, int]]] = {}
        self._stopped = threading.Event()
        self.waited = 0.0

    def stop(self) -> None:
        """Wake every waiter with RunStopped (Ctrl-C)."""
        self._stopped.set()

    def _used(self, key: str, now: float) -> tuple[int, float]:
        """(bytes in the window, seconds until the oldest of them leaves it)."""
        sent = self._sent.setdefault(key, deque())
        while sent and sent[0][0] <= now - self.window:
            sent.popleft()
        used = sum(size for _, size in sent)
        wait = sent[0][0] + self.window - now if sent else 0.0
        return used, wait

    def take(self, key: str, size: int) -> float:
        """Wait until ``size`` bytes may go to mailbox ``key``; returns the seconds waited."""
        waited = 0.0
        while True:
            if self._stopped.is_set():
                raise RunStopped()
            with self._lock:
                now = self._clock()
                used, wait = self._used(key, now)
                if used == 0 or used + size <= self.limit:
                    self._sent[key].append((now, size))
                    self.waited += waited
                    return waited
            step = max(0.05, min(wait, 5.0))
            self._sleep(step)
            waited += step

    def seconds_for(self, size: int) -> float:
        """The least time ``size`` more bytes take to one mailbox at the budget's rate."""
        return (
            max(0.0, (size - self.limit) / self.limit * self.window) if size > self.limit else 0.0
        )


class Eta:
    """Progress of a restore against what it planned, and an estimate of the rest."""

    def __init__(self, budget: UploadBudget, clock: Callable[[], float] = time.monotonic) -> None:
        self._budget = budget
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self.items_total = 0
        self.bytes_total = 0
        self.items_done = 0
        self.bytes_done = 0
        self._mail_left: dict[str, int] = {}

    def plan(self, items: int, size: int, mailbox: str | None = None, mail_bytes: int = 0) -> None:
        with self._lock:
            self.items_total += items
            self.bytes_total += size
            if mailbox is not None and mail_bytes:
                self._mail_left[mailbox] = self._mail_left.get(mailbox, 0) + mail_bytes

    def done(self, size: int, mailbox: str | None = None, mail: bool = False) -> None:
        with self._lock:
            self.items_done += 1
            self.bytes_done += size
            if mail and mailbox is not None:
                self._mail_left[mailbox] = max(0, self._mail_left.get(mailbox, 0) - size)

    def seconds_left(self) -> float | None:
        """The estimate, or None before anything is known."""
        with self._lock:
            elapsed = self._clock() - self._start
            left_bytes = max(0, self.bytes_total - self.bytes_done)
            left_items = max(0, self.items_total - self.items_done)
            if not left_items:
                return 0.0
            rate_estimate = None
            if self.bytes_done > 0 and elapsed > 0:
                rate_estimate = elapsed / self.bytes_done * left_bytes
            elif self.items_done > 0 and elapsed > 0:
                rate_estimate = elapsed / self.items_done * left_items
            biggest = max(self._mail_left.values(), default=0)
        budget_estimate = self._budget.seconds_for(biggest)
        if rate_estimate is None:
            return budget_estimate or None
        return max(rate_estimate, budget_estimate)
