"""What a followed run needs: going on, recovering lost jobs, or giving up.

The coordinator (coordinator.py) polls the run's state in Redis; :class:`RunWatch`
reads each poll and says what it means:

- ``LOST``: the run's epoch (runstate.py) is missing or another. Redis lost its
  data: restarted without persistence, flushed, evicted (the run's keys expire,
  so ``volatile-*`` policies pick them first), failed over to an empty or
  lagging replica. The queued jobs are gone with it, or may be. The coordinator
  recovers: the owners with a report of this run in the repository (the truth)
  are recorded as done, every other owner is enqueued again (jobs are
  idempotent: the lease keeps two deliveries of one owner apart, and a job
  that finds its owner's snapshot of this run commits nothing).
- ``JOBS_GONE``: the epoch is intact but, for ``stall_seconds``, nothing moved,
  no owner is running, the queue is empty and workers are alive: the jobs were
  lost without the counters (a replica that had the run's keys but not the
  queue). Recovered the same way.
- ``STALLED``: nothing moved for ``stall_seconds``, owners are left and no
  worker is alive (heartbeat.py): nobody will run the jobs. The coordinator
  stops following with RunStalled (exit 19); the jobs stay queued.
- ``GOING``: anything else (including owners that run long: a live worker
  with an owner running is never a stall).

Pure logic over the polled values and a clock (no Redis here), so it is tested
without a broker as well as through the coordinator.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Any


class Verdict(enum.Enum):
    GOING = "going"
    LOST = "lost"
    JOBS_GONE = "jobs gone"
    STALLED = "stalled"


class RunWatch:
    """The state of one followed run between polls (not thread-safe: one follower)."""

    def __init__(self, stall_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self._clock = clock
        self.epoch: str | None = None
        self._mark: tuple[int, ...] | None = None
        self._since = clock()

    def recovered(self, epoch: str) -> None:
        """The coordinator re-established the run with ``epoch``."""
        self.epoch = epoch
        self._mark = None
        self._since = self._clock()

    def idle_seconds(self) -> float:
        """How long nothing has moved."""
        return self._clock() - self._since

    def check(
        self,
        now: dict[str, Any],
        queued: Callable[[], int],
        alive: Callable[[], list[str]],
    ) -> Verdict:
        """What the poll ``now`` (RunState.snapshot) means. ``queued`` and
        ``alive`` are asked only when nothing has moved for ``stall_seconds``
        (they may raise redis.RedisError, for the caller)."""
        if self.epoch is None:
            self.epoch = now["epoch"] or None
            if self.epoch is None:
                return Verdict.LOST
        elif now["epoch"] != self.epoch:
            return Verdict.LOST
        mark = (
            len(now["owners"]),
            int(now["items"]),
            int(now["bytes"]),
            int(now["requests"]),
            len(now["active"]),
        )
        if mark != self._mark:
            self._mark = mark
            self._since = self._clock()
            return Verdict.GOING
        if self.idle_seconds() < self.stall_seconds:
            return Verdict.GOING
        if not alive():
            return Verdict.STALLED
        self._since = self._clock()  # alive and quiet: look again after another period
        if not now["active"] and queued() == 0:
            return Verdict.JOBS_GONE
        return Verdict.GOING
