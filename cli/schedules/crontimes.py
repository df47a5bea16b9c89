"""Next fire times of cron expressions, by croniter, in the expressions' zone.

Times go in and out as POSIX timestamps (UTC seconds); the zone matters only
for reading the expressions (``0 2 * * *`` in Europe/Berlin is 01:00 or 00:00
UTC depending on summer time; croniter handles the transitions).
"""

from __future__ import annotations

from datetime import datetime

from croniter import croniter

from cli.schedules.config import Cron


def next_time(cron: Cron, after: float) -> float:
    """The first fire time strictly after ``after`` of any of ``cron``'s expressions."""
    start = datetime.fromtimestamp(after, cron.timezone)
    return min(croniter(e, start).get_next(float) for e in cron.expressions)


def next_times(cron: Cron, after: float, count: int) -> list[float]:
    """The next ``count`` fire times after ``after``."""
    times: list[float] = []
    t = after
    for _ in range(count):
        t = next_time(cron, t)
        times.append(t)
    return times


def previous_time(cron: Cron, before: float) -> float:
    """The last fire time at or before ``before``."""
    start = datetime.fromtimestamp(before + 1e-3, cron.timezone)
    return max(croniter(e, start).get_prev(float) for e in cron.expressions)
