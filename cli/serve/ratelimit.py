"""Sign-in rate limiting: too many failures for a user name or from an address lock
that name or address out for a while.

A lock-out is checked before the password, so a locked name cannot be probed
(the answer is the same whether the password is right or wrong). Counting per
name stops guessing one account from many addresses; per address stops one
address spraying many names. Thread-safe. Memory is bounded: at most
``max_keys`` names and addresses are tracked (the oldest are forgotten).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SignInLimiter:
    """Failures within ``window`` seconds; ``attempts`` of them lock out for ``lockout``."""

    def __init__(
        self,
        attempts: int,
        window: float,
        lockout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self.lockout = lockout
        self.clock = clock
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, user: str, address: str) -> float:
        """Seconds until sign-in may be tried again for this name and address (0: now)."""
        now = self.clock()
        with self._lock:
            waits = [
                until - now
                for key in (f"u:{user.lower()}", f"a:{address}")
                if (until := self._locked.get(key)) is not None and until > now
            ]
        return max(waits, default=0.0)

    def failed(self, user: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (f"u:{user.lower()}", f"a:{address}"):
                times = self._failures.pop(key, None) or deque()
                times.append(now)
                while times and times[0] < now - self.window:
                    times.popleft()
                if len(times) >= self.attempts:
                    self._locked[key] = now + self.lockout
                    times.clear()
                self._failures[key] = times
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
            for key in [k for k, until in self._locked.items() if until <= now]:
                del self._locked[key]

    def succeeded(self, user: str) -> None:
        """A correct password clears the name's failures (not the address's)."""
        with self._lock:
            self._failures.pop(f"u:{user.lower()}", None)
