"""Retention policies: which snapshots of one owner to keep, and why.

The semantics are restic's (``internal/restic/snapshot_policy.go``), written
out for administrators in docs/retention.md:

- Snapshots are considered newest first. Each ``keep-<period> N`` rule keeps
  the newest snapshot of each period (hour, day, ISO week, month, quarter,
  year) that has snapshots, for the N most recent such periods; periods
  without snapshots are not counted. If a rule still has count left when the
  oldest snapshot is reached, the oldest is kept too (restic >= 0.17): it
  stretches the history kept.
- ``keep-last N`` keeps the N newest snapshots.
- ``keep-within D`` keeps every snapshot taken less than D before the newest
  snapshot (not before now: a repository whose backups stopped keeps its
  last ones). The newest snapshot is the newest not in the future.
- Rules are OR'ed: a snapshot is kept if any rule keeps it, and every rule
  that keeps it is listed as a reason. An empty policy is refused.
- ``keep-deleted-within`` is evaluated elsewhere (store/maintenance/forget.py) and comes
  in as ``protected`` snapshots, kept whatever the other rules say.

Periods are calendar periods in ``tz`` (UTC unless told otherwise). Pure
functions over snapshots and a ``now``: tests pass a fake clock.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from store.format.snapshot import Snapshot
from store.ids import SnapshotId

UNLIMITED = -1
_DURATION = re.compile(r"(\d+)([ymwdh])")


@dataclass(frozen=True)
class Duration:
    """A calendar duration such as ``1y6m``, ``30d`` or ``12h`` (y m w d h)."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``2y3m1w4d5h`` (any subset, in any order). Raises ValueError."""
        compact = text.strip().lower().replace(" ", "")
        if not compact or _DURATION.sub("", compact):
            raise ValueError(f"invalid duration {text!r}: use e.g. 30d, 12h, 1y6m, 2w")
        values = {"y": 0, "m": 0, "w": 0, "d": 0, "h": 0}
        for amount, unit in _DURATION.findall(compact):
            values[unit] += int(amount)
        return cls(values["y"], values["m"], values["w"] * 7 + values["d"], values["h"])

    def __str__(self) -> str:
        parts = [(self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h")]
        return "".join(f"{n}{u}" for n, u in parts if n) or "0h"

    @property
    def zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def before(self, moment: datetime) -> datetime:
        """``moment`` minus this duration. Months and years keep the day of the
        month, clamped to the month's length (31 March - 1m = 28/29 February).
        A duration reaching before the year 1 gives the earliest datetime
        (``--keep-within 99999y`` keeps everything) instead of raising."""
        earliest = datetime.min.replace(tzinfo=moment.tzinfo)
        months = moment.year * 12 + (moment.month - 1) - self.years * 12 - self.months
        year, month = divmod(months, 12)
        if year < 1:
            return earliest
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        shifted = moment.replace(year=year, month=month + 1, day=day)
        try:
            return shifted - timedelta(days=self.days, hours=self.hours)
        except OverflowError:
            return earliest

    def nanoseconds_before(self, time_ns: int) -> int:
        moment = datetime.fromtimestamp(time_ns / 1e9, UTC)
        return int(self.before(moment).timestamp() * 1e9)


@dataclass(frozen=True)
class RetentionPolicy:
    """Counts (0 = rule unused, -1 = unlimited) and durations of one policy."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    quarterly: int = 0
    yearly: int = 0
    within: Duration | None = None
    deleted_within: Duration | None = None

    @property
    def empty(self) -> bool:
        """True when no rule keeps anything (``keep-deleted-within`` alone is empty:
        it protects extra snapshots, it is not a retention policy by itself)."""
        counts = (self.last, self.hourly, self.daily, self.weekly, self.monthly)
        return (
            not any(counts)
            and not self.quarterly
            and not self.yearly
            and (self.within is None or self.within.zero)
        )

    def describe(self) -> str:
        parts = []
        for name in ("last", "hourly", "daily", "weekly", "monthly", "quarterly", "yearly"):
            value = getattr(self, name)
            if value:
                parts.append(f"{'all' if value == UNLIMITED else value} {name}")
        if self.within is not None and not self.within.zero:
            parts.append(f"all within {self.within} of the newest")
        if self.deleted_within is not None and not self.deleted_within.zero:
            parts.append(f"deleted items for {self.deleted_within}")
        return "keep " + ", ".join(parts) if parts else "empty policy"


@dataclass
class Decision:
    """Keep or remove one snapshot, with every reason it is kept."""

    snapshot: Snapshot
    keep: bool
    reasons: list[str] = field(default_factory=list)


Bucketer = Callable[[datetime, int], object]


@dataclass
class _Rule:
    name: str
    count: int  # left to keep; -1 unlimited
    bucketer: Bucketer
    last: object = None  # the period of the last snapshot kept by this rule


def _buckets(policy: RetentionPolicy) -> list[tuple[str, int, Bucketer]]:
    return [
        ("last", policy.last, lambda _d, nr: nr),
        ("hourly", policy.hourly, lambda d, _nr: (d.year, d.month, d.day, d.hour)),
        ("daily", policy.daily, lambda d, _nr: (d.year, d.month, d.day)),
        ("weekly", policy.weekly, lambda d, _nr: d.isocalendar()[:2]),
        ("monthly", policy.monthly, lambda d, _nr: (d.year, d.month)),
        ("quarterly", policy.quarterly, lambda d, _nr: (d.year, (d.month - 1) // 3)),
        ("yearly", policy.yearly, lambda d, _nr: d.year),
    ]


def apply_policy(
    snapshots: list[Snapshot],
    policy: RetentionPolicy,
    *,
    now_ns: int,
    tz: tzinfo = UTC,
    protected: Mapping[SnapshotId, str] | None = None,
) -> list[Decision]:
    """Decide for the snapshots of one owner; returns decisions newest first.

    Raises ValueError for an empty policy (it would delete everything).
    """
    if policy.empty:
        raise ValueError("refusing an empty retention policy: it would remove every snapshot")
    protected = protected or {}
    ordered = sorted(snapshots, key=lambda s: (s.time_ns, s.id_hex), reverse=True)
    if not ordered:
        return []
    not_future = [s.time_ns for s in ordered if s.time_ns <= now_ns]
    latest_ns = max(not_future) if not_future else ordered[-1].time_ns
    within_cut = (
        policy.within.nanoseconds_before(latest_ns)
        if policy.within is not None and not policy.within.zero
        else None
    )
    rules = [_Rule(name, count, bucketer) for name, count, bucketer in _buckets(policy)]
    decisions = []
    for nr, snap in enumerate(ordered):
        reasons: list[str] = []
        moment = datetime.fromtimestamp(snap.time_ns / 1e9, tz)
        if within_cut is not None and snap.time_ns > within_cut:
            reasons.append(f"within {policy.within} of the newest")
        for rule in rules:
            if rule.count == 0:
                continue
            value = rule.bucketer(moment, nr)
            if value != rule.last or nr == len(ordered) - 1:
                label = "last snapshot" if rule.name == "last" else f"{rule.name} snapshot"
                if value == rule.last:
                    label = f"oldest, {rule.name} count left"
                rule.last = value
                if rule.count > 0:
                    rule.count -= 1
                reasons.append(label)
        if snap.snapshot_id is not None and snap.snapshot_id in protected:
            reasons.append(protected[snap.snapshot_id])
        decisions.append(Decision(snap, bool(reasons), reasons))
    return decisions
