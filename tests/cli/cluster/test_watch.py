"""What a followed run's polls mean (cli/cluster/watch.py), on a clock the test moves:
a lost epoch, a quiet run that is still served, one nobody serves, lost jobs."""

from __future__ import annotations

from typing import Any

from cli.cluster.watch import RunWatch, Verdict
from tests.store.support.helpers import Clock


def poll(epoch: str = "e1", done: int = 0, items: int = 0, active: int = 0) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "owners": {f"users:{i}": {} for i in range(done)},
        "items": items,
        "bytes": items * 100,
        "requests": items,
        "active": {f"users:a{i}": "host:1" for i in range(active)},
    }


def test_an_epoch_missing_or_changed_means_redis_lost_the_run() -> None:
    watch = RunWatch(60, Clock())
    assert watch.check(poll(), lambda: 5, lambda: ["w"]) is Verdict.GOING
    assert watch.check(poll(epoch=""), lambda: 5, lambda: ["w"]) is Verdict.LOST
    assert watch.check(poll(epoch="e0"), lambda: 5, lambda: ["w"]) is Verdict.LOST
    watch.recovered("e2")
    assert watch.check(poll(epoch="e2"), lambda: 5, lambda: ["w"]) is Verdict.GOING
    # Lost before the first poll: no epoch at all.
    assert RunWatch(60, Clock()).check(poll(epoch=""), lambda: 0, list) is Verdict.LOST


def test_a_long_owner_on_a_live_worker_is_never_a_stall() -> None:
    clock = Clock()
    watch = RunWatch(60, clock)
    for _ in range(10):  # ten minutes of nothing visible but a running owner
        assert watch.check(poll(active=1), lambda: 3, lambda: ["w"]) is Verdict.GOING
        clock.now += 61


def test_nothing_moving_and_no_live_worker_is_a_stall_only_after_the_timeout() -> None:
    clock = Clock()
    watch = RunWatch(60, clock)
    assert watch.check(poll(done=2, items=9), lambda: 3, list) is Verdict.GOING
    clock.now += 59
    assert watch.check(poll(done=2, items=9), lambda: 3, list) is Verdict.GOING
    clock.now += 2
    assert watch.check(poll(done=2, items=9), lambda: 3, list) is Verdict.STALLED
    # Progress resets the clock.
    assert watch.check(poll(done=3, items=9), lambda: 3, list) is Verdict.GOING
    clock.now += 30
    assert watch.check(poll(done=3, items=9), lambda: 3, list) is Verdict.GOING


def test_workers_alive_with_nothing_running_and_nothing_queued_means_the_jobs_are_gone() -> None:
    clock = Clock()
    watch = RunWatch(60, clock)
    assert watch.check(poll(done=1), lambda: 0, lambda: ["w"]) is Verdict.GOING
    clock.now += 61
    assert watch.check(poll(done=1), lambda: 4, lambda: ["w"]) is Verdict.GOING  # still queued
    clock.now += 61
    assert watch.check(poll(done=1), lambda: 0, lambda: ["w"]) is Verdict.JOBS_GONE
