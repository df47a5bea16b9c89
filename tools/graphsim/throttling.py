"""Throttling like Microsoft Graph's (limits and sources in config.ThrottlePolicy).

`Throttler.admit()` charges one request to every limit that applies to it and either
returns a `Ticket` (release it when the response has been sent) or raises `Throttled`
with the status, error code, message and `Retry-After` seconds to answer. As Microsoft
documents, throttled requests still count against the limits (throttling.md: "Microsoft
Graph continues to log resource usage while a client is being throttled").

Thread-safe: one lock guards all counters.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from .config import RateLimit, ThrottlePolicy


class Throttled(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        retry_after: int,
        status: int = 429,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = max(1, retry_after)
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Charge:
    """What one request costs. Built by the router from the route and the request."""

    service: str = "other"  # outlook | sharepoint | teams | other
    mailbox: str = ""  # Outlook: the mailbox (user id)
    units: int = 0  # SharePoint/OneDrive resource units
    channel: str = ""  # Teams: team or channel key
    channel_message_get: bool = False
    upload_bytes: int = 0


class _Window:
    """Sliding-window counter of units."""

    def __init__(self) -> None:
        self.events: deque[tuple[float, float]] = deque()
        self.total = 0.0

    def _expire(self, now: float, window: float) -> None:
        while self.events and self.events[0][0] <= now - window:
            _, units = self.events.popleft()
            self.total -= units

    def charge(
        self, now: float, limit: RateLimit, units: float, *, keep_refused: bool = True
    ) -> float | None:
        """Record `units`; return seconds to wait if the limit is now exceeded, else None.

        With ``keep_refused`` False a refused charge is taken back, and a charge
        alone in the window is never refused: used for byte limits, where a
        refused upload delivered nothing, and where one request larger than the
        whole limit (a 3 MiB fragment under a limit scaled down for tests) must
        still pass once the window is empty. (Otherwise each retry would be
        refused for the bytes of the refused one before it: a livelock.)
        """
        self._expire(now, limit.window)
        alone = not self.events
        self.events.append((now, units))
        self.total += units
        if self.total <= limit.requests or (alone and not keep_refused):
            return None
        excess = self.total - limit.requests  # to free before this charge fits
        if not keep_refused:
            self.events.pop()
            self.total -= units
        freed = 0.0
        for ts, u in self.events:
            freed += u
            if freed >= excess:
                return max(0.0, ts + limit.window - now)
        return limit.window

    def usage(self, now: float, limit: RateLimit) -> float:
        self._expire(now, limit.window)
        return self.total


@dataclass
class Ticket:
    """An admitted request. `release()` is idempotent."""

    throttler: Throttler | None = None
    key: tuple[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    _released: bool = False

    def release(self) -> None:
        if self._released or self.throttler is None or self.key is None:
            self._released = True
            return
        self._released = True
        self.throttler._release(self.key)


class Throttler:
    def __init__(self, policy: ThrottlePolicy) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, ...], _Window] = {}
        self._inflight: dict[tuple[str, str], int] = {}
        self.set_policy(policy)

    def set_policy(self, policy: ThrottlePolicy) -> None:
        with self._lock:
            self.policy = policy
            self._limits = policy.effective()
            self._windows.clear()

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()

    def inflight(self, app: str, mailbox: str) -> int:
        with self._lock:
            return self._inflight.get((app, mailbox), 0)

    def _window(self, *key: str) -> _Window:
        win = self._windows.get(key)
        if win is None:
            win = self._windows[key] = _Window()
        return win

    def _release(self, key: tuple[str, str]) -> None:
        with self._lock:
            left = self._inflight.get(key, 0) - 1
            if left <= 0:
                self._inflight.pop(key, None)
            else:
                self._inflight[key] = left

    def admit(self, app: str, charge: Charge) -> Ticket:
        """Admit or refuse one request. Raises Throttled."""
        now = time.monotonic()
        lim = self._limits
        with self._lock:
            waits: list[tuple[float, str, str]] = []
            headers: dict[str, str] = {}
            if lim.enabled:
                w = self._window("global", app).charge(now, lim.global_requests, 1)
                if w is not None:
                    waits.append((w, "TooManyRequests", "Too many requests from this app."))
                if charge.service == "outlook" and charge.mailbox:
                    w = self._window("outlook", app, charge.mailbox).charge(
                        now, lim.outlook_requests, 1
                    )
                    if w is not None:
                        waits.append(
                            (w, "ApplicationThrottled", "Application is over its request limit.")
                        )
                    if charge.upload_bytes:
                        w = self._window("outbytes", app, charge.mailbox).charge(
                            now, lim.outlook_upload_bytes, charge.upload_bytes, keep_refused=False
                        )
                        if w is not None:
                            waits.append(
                                (
                                    w,
                                    "ApplicationThrottled",
                                    "Application is over its IncomingBytes limit.",
                                )
                            )
                if charge.service == "sharepoint" and charge.units:
                    win = self._window("sharepoint", app)
                    w = win.charge(now, lim.sharepoint_units, charge.units)
                    used = win.usage(now, lim.sharepoint_units)
                    limit = lim.sharepoint_units.requests
                    # "RateLimit headers are returned when the app has consumed 80% of its
                    # limit" (Avoid getting throttled or blocked in SharePoint Online).
                    if used >= 0.8 * limit:
                        headers["RateLimit-Limit"] = str(int(limit))
                        headers["RateLimit-Remaining"] = str(max(0, int(limit - used)))
                        headers["RateLimit-Reset"] = str(
                            max(1, math.ceil(w if w is not None else lim.sharepoint_units.window))
                        )
                    if w is not None:
                        waits.append((w, "activityLimitReached", "The request has been throttled."))
                if charge.service == "teams" and charge.channel_message_get:
                    w = self._window("teams", app).charge(now, lim.teams_messages, 1)
                    if w is not None:
                        waits.append((w, "TooManyRequests", "Too many requests."))
                    if charge.channel:
                        w = self._window("teamsch", app, charge.channel).charge(
                            now, lim.teams_per_channel, 1
                        )
                        if w is not None:
                            waits.append((w, "TooManyRequests", "Too many requests."))
            if waits:
                wait, code, message = max(waits)
                raise Throttled(code, message, math.ceil(wait), headers=headers)
            if charge.service == "outlook" and charge.mailbox:
                key = (app, charge.mailbox)
                if self._inflight.get(key, 0) >= lim.mailbox_concurrency:
                    raise Throttled(
                        "ApplicationThrottled",
                        "Application is over its MailboxConcurrency limit.",
                        1,
                    )
                self._inflight[key] = self._inflight.get(key, 0) + 1
                return Ticket(self, key, headers)
            return Ticket(None, None, headers)
