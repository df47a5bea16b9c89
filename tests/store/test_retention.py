"""Retention semantics against a table of cases, with a fake clock (no repository)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from store import (
    UNLIMITED,
    BlobId,
    Duration,
    Owner,
    RetentionPolicy,
    Snapshot,
    SnapshotId,
    apply_policy,
)

OWNER = Owner("users", "id", "someone@example.com")


def ts(text: str) -> int:
    """'2026-01-05 10:00' (UTC) in nanoseconds."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()) * 10**9


def snap(text: str) -> Snapshot:
    time_ns = ts(text)
    return Snapshot(
        OWNER,
        "run",
        time_ns,
        BlobId(bytes(32)),
        snapshot_id=SnapshotId(time_ns.to_bytes(32, "big")),
    )


def kept(times: list[str], policy: RetentionPolicy, now: str = "2030-01-01 00:00") -> set[str]:
    snapshots = [snap(t) for t in times]
    decisions = apply_policy(snapshots, policy, now_ns=ts(now))
    assert len(decisions) == len(times)
    by_time = {s.time_ns: t for s, t in zip(snapshots, times, strict=True)}
    return {by_time[d.snapshot.time_ns] for d in decisions if d.keep}


DAYS = ["2026-01-01 08:00", "2026-01-01 20:00", "2026-01-02 09:00", "2026-01-04 10:00",
        "2026-01-04 11:00"]  # fmt: skip
# 2026-01-05 is the Monday of ISO week 2
WEEKS = ["2026-01-05 10:00", "2026-01-07 10:00", "2026-01-11 10:00", "2026-01-12 10:00",
         "2026-01-20 10:00"]  # fmt: skip
MONTHS = ["2025-08-01 00:00", "2025-11-15 00:00", "2025-12-01 00:00", "2025-12-20 00:00",
          "2026-01-10 00:00", "2026-02-01 00:00"]  # fmt: skip
HOURS = ["2026-01-05 10:05", "2026-01-05 10:40", "2026-01-05 11:10", "2026-01-05 13:00"]

CASES = [
    # (name, snapshots, policy, now, expected kept)
    ("last 2", DAYS, RetentionPolicy(last=2), None, {"2026-01-04 10:00", "2026-01-04 11:00"}),
    ("last unlimited", DAYS, RetentionPolicy(last=UNLIMITED), None, set(DAYS)),
    (
        "daily 3: newest of each day, days without snapshots not counted",
        DAYS,
        RetentionPolicy(daily=3),
        None,
        {"2026-01-04 11:00", "2026-01-02 09:00", "2026-01-01 20:00"},
    ),
    ("daily 2", DAYS, RetentionPolicy(daily=2), None, {"2026-01-04 11:00", "2026-01-02 09:00"}),
    (
        "daily 10 with count left keeps the oldest too (restic >= 0.17)",
        DAYS[:3],
        RetentionPolicy(daily=10),
        None,
        set(DAYS[:3]),
    ),
    ("hourly 2", HOURS, RetentionPolicy(hourly=2), None, {"2026-01-05 13:00", "2026-01-05 11:10"}),
    (
        "weekly 2 (ISO weeks)",
        WEEKS,
        RetentionPolicy(weekly=2),
        None,
        {"2026-01-20 10:00", "2026-01-12 10:00"},
    ),
    (
        "weekly 3",
        WEEKS,
        RetentionPolicy(weekly=3),
        None,
        {"2026-01-20 10:00", "2026-01-12 10:00", "2026-01-11 10:00"},
    ),
    (
        "monthly 2",
        MONTHS,
        RetentionPolicy(monthly=2),
        None,
        {"2026-02-01 00:00", "2026-01-10 00:00"},
    ),
    (
        "monthly 2 OR yearly 2",
        MONTHS,
        RetentionPolicy(monthly=2, yearly=2),
        None,
        {"2026-02-01 00:00", "2026-01-10 00:00", "2025-12-20 00:00"},
    ),
    (
        "quarterly 2",
        MONTHS,
        RetentionPolicy(quarterly=2),
        None,
        {"2026-02-01 00:00", "2025-12-20 00:00"},
    ),
    (
        "quarterly 3",
        MONTHS,
        RetentionPolicy(quarterly=3),
        None,
        {"2026-02-01 00:00", "2025-12-20 00:00", "2025-08-01 00:00"},
    ),
    (
        "within 2d is measured from the newest snapshot, not from now",
        ["2026-01-05 00:00", "2026-01-06 00:00", "2026-01-08 00:00", "2026-01-08 12:00"],
        RetentionPolicy(within=Duration.parse("2d")),
        "2027-06-01 00:00",
        {"2026-01-08 00:00", "2026-01-08 12:00"},
    ),
    (
        "within: a snapshot exactly at the limit is not kept (strictly newer)",
        ["2026-01-05 00:00", "2026-01-06 00:00"],
        RetentionPolicy(within=Duration.parse("1d")),
        None,
        {"2026-01-06 00:00"},
    ),
    (
        "within: the newest is the newest not in the future",
        ["2026-01-05 00:00", "2026-01-06 00:00", "2026-01-15 00:00"],
        RetentionPolicy(within=Duration.parse("1d")),
        "2026-01-07 00:00",
        {"2026-01-06 00:00", "2026-01-15 00:00"},
    ),
    (
        "rules are OR'ed",
        DAYS,
        RetentionPolicy(last=1, daily=2, within=Duration.parse("2d")),
        None,
        {"2026-01-04 11:00", "2026-01-04 10:00", "2026-01-02 09:00"},
    ),
    (
        "within in months clamps the day (31 March - 1m = 28 February)",
        ["2026-02-27 00:00", "2026-02-28 01:00", "2026-03-31 00:00"],
        RetentionPolicy(within=Duration.parse("1m")),
        None,
        {"2026-02-28 01:00", "2026-03-31 00:00"},
    ),
]


@pytest.mark.parametrize(
    ("snapshots", "policy", "now", "expected"),
    [pytest.param(c[1], c[2], c[3], c[4], id=c[0]) for c in CASES],
)
def test_policy_table(
    snapshots: list[str], policy: RetentionPolicy, now: str | None, expected: set[str]
) -> None:
    assert kept(snapshots, policy, now or "2030-01-01 00:00") == expected


def test_reasons_name_every_rule() -> None:
    decisions = apply_policy(
        [snap(t) for t in DAYS], RetentionPolicy(last=1, daily=1), now_ns=ts("2030-01-01 00:00")
    )
    newest = decisions[0]
    assert newest.keep
    assert newest.reasons == ["last snapshot", "daily snapshot"]
    assert all(not d.keep and not d.reasons for d in decisions[1:])


def test_protected_snapshots_are_kept_whatever_the_rules() -> None:
    snapshots = [snap(t) for t in DAYS]
    oldest = snapshots[0]
    assert oldest.snapshot_id is not None
    decisions = apply_policy(
        snapshots,
        RetentionPolicy(last=1),
        now_ns=ts("2030-01-01 00:00"),
        protected={oldest.snapshot_id: "holds deleted item x"},
    )
    kept_ids = {d.snapshot.snapshot_id: d.reasons for d in decisions if d.keep}
    assert kept_ids[oldest.snapshot_id] == ["holds deleted item x"]
    assert len(kept_ids) == 2


@pytest.mark.parametrize(
    "policy",
    [
        RetentionPolicy(),
        RetentionPolicy(within=Duration()),
        RetentionPolicy(deleted_within=Duration.parse("30d")),
    ],
)
def test_empty_policy_is_refused(policy: RetentionPolicy) -> None:
    assert policy.empty
    with pytest.raises(ValueError, match="empty"):
        apply_policy([snap(DAYS[0])], policy, now_ns=ts("2030-01-01 00:00"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", Duration(days=30)),
        ("1y6m", Duration(years=1, months=6)),
        ("2w3d12h", Duration(days=17, hours=12)),
        (" 12H ", Duration(hours=12)),
    ],
)
def test_duration_parse(text: str, expected: Duration) -> None:
    assert Duration.parse(text) == expected


@pytest.mark.parametrize("text", ["", "30", "3x", "d", "1.5d", "-1d"])
def test_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        Duration.parse(text)


def test_periods_follow_the_given_time_zone() -> None:
    from datetime import timedelta, timezone

    # 23:30 and 00:30 UTC are the same day in UTC-2, two days in UTC.
    times = ["2026-01-05 23:30", "2026-01-06 00:30"]
    policy = RetentionPolicy(daily=5)
    now = ts("2030-01-01 00:00")
    utc = apply_policy([snap(t) for t in times], policy, now_ns=now)
    west = apply_policy(
        [snap(t) for t in times], policy, now_ns=now, tz=timezone(timedelta(hours=-2))
    )
    assert [d.reasons for d in utc] == [["daily snapshot"], ["daily snapshot"]]
    assert [d.reasons for d in west] == [["daily snapshot"], ["oldest, daily count left"]]
