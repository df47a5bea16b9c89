"""The throttling gates (sources/m365/graph/throttle.py)."""

from __future__ import annotations

import threading
import time

import pytest

from sources.m365.graph.throttle import Gates, Meter, Resource


def test_gates_pause_only_the_throttled_scope() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    gates = Gates(clock=lambda: now[0], sleep=sleep)
    alice = Resource.mailbox("alice", Meter())
    bob = Resource.mailbox("bob")
    gates.pause("mailbox:alice", 3.0)
    with gates.admit(bob):
        pass
    assert slept == []
    with gates.admit(alice):
        pass
    assert sum(slept) == pytest.approx(3.0)
    assert alice.meters[0].throttled_seconds == pytest.approx(3.0)
    gates.pause("app", 1.0)
    with gates.admit(bob):
        pass
    assert sum(slept) == pytest.approx(4.0)


def test_gates_allow_four_requests_per_mailbox() -> None:
    gates = Gates()
    mailbox = Resource.mailbox("m")
    inside = 0
    most = 0
    lock = threading.Lock()
    # The first requests stay inside until four are: four must get in at
    # once, and a fifth must not, however the threads are scheduled.
    four_inside = threading.Event()

    def request() -> None:
        nonlocal inside, most
        with gates.admit(mailbox):
            with lock:
                inside += 1
                most = max(most, inside)
                if inside == 4:
                    four_inside.set()
            four_inside.wait(timeout=20)
            time.sleep(0.05)  # a fifth let in now would be counted
            with lock:
                inside -= 1

    threads = [threading.Thread(target=request) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 4
