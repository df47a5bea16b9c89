"""The owner lease and the shared throttling gates against a real redis-server."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cli.cluster.lease import LeaseBusy, OwnerLease, lease_key
from cli.cluster.limiter import PAUSES_FRESH_SECONDS, RedisGates
from sources.m365.graph.throttle import APP, Gates, Resource
from tests.cli.cluster.kit import REDIS_PASSWORD, RedisServer, running_redis

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def client(server: RedisServer) -> redis.Redis:
    client = server.client()
    client.flushdb()
    return client


def test_an_owner_lease_excludes_a_second_holder_until_released(client: redis.Redis) -> None:
    key = lease_key("tenant", "users", "u1")
    with OwnerLease(client, key, "host-a:1", 5.0), pytest.raises(LeaseBusy):
        OwnerLease(client, key, "host-b:2", 5.0)
    with OwnerLease(client, key, "host-b:2", 5.0) as second:
        assert client.get(key) == second.token


def test_a_lease_is_renewed_while_held_and_expires_when_its_holder_stops(
    client: redis.Redis,
) -> None:
    key = lease_key("tenant", "users", "u2")
    lease = OwnerLease(client, key, "host-a:1", 1.5)
    time.sleep(3.0)  # twice its lifetime: only renewal keeps it
    with pytest.raises(LeaseBusy):
        OwnerLease(client, key, "host-b:2", 1.5)
    # A holder that dies (kill -9) stops renewing: simulate by stopping the thread
    # without the release script, then the lease lapses by itself.
    lease._stop.set()
    lease._thread.join()
    time.sleep(1.8)
    OwnerLease(client, key, "host-b:2", 1.5).release()


def test_an_old_holder_never_releases_a_lease_someone_else_took(client: redis.Redis) -> None:
    key = lease_key("tenant", "users", "u3")
    old = OwnerLease(client, key, "host-a:1", 1.0)
    old._stop.set()
    old._thread.join()
    time.sleep(1.2)  # expired
    new = OwnerLease(client, key, "host-b:2", 5.0)
    old._stop.clear()
    old.release()  # compares its token: must leave the new holder's lease alone
    assert client.get(key) == new.token
    new.release()


def test_a_lease_redis_lost_is_taken_back_by_its_holder_before_anyone_else(
    client: redis.Redis,
) -> None:
    # The broker loses its data (FLUSHALL; a restart without persistence is the
    # same): the running job takes its lease back at its next renewal, so a job
    # enqueued again for the owner (cli/cluster/coordinator.py waits one lease
    # lifetime first) finds it held and waits instead of running beside it.
    key = lease_key("tenant", "users", "u4")
    with OwnerLease(client, key, "host-a:1", 1.5) as lease:
        client.flushall()
        time.sleep(1.5)  # one lifetime: at least two renewals
        assert client.get(key) == lease.token
        assert not lease.lost.is_set()
        with pytest.raises(LeaseBusy):
            OwnerLease(client, key, "host-b:2", 1.5)
    assert client.get(key) is None  # released as usual


def _peak_concurrency(gates: list[Gates], threads_each: int, resource: Resource) -> int:
    lock = threading.Lock()
    inside = 0
    peak = 0

    def request(g: Gates) -> None:
        nonlocal inside, peak
        for _ in range(3):
            with g.admit(resource):
                with lock:
                    inside += 1
                    peak = max(peak, inside)
                # Long enough for every thread to queue up at a slot on a loaded
                # machine (0.05 s let the unshared case peak at 6 of 8 under load).
                time.sleep(0.4)
                with lock:
                    inside -= 1

    pool = [threading.Thread(target=request, args=(g,)) for g in gates for _ in range(threads_each)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    return peak


def test_four_requests_per_mailbox_across_workers(client: redis.Redis) -> None:
    """Two processes' gates (one per worker) share the mailbox's 4 slots."""
    resource = Resource.mailbox("user-1")
    shared = [Gates(shared=RedisGates(client, "tenant")) for _ in range(2)]
    assert _peak_concurrency(shared, 6, resource) == 4
    # Without the shared limiter, each worker allows 4 of its own: 8 at once.
    alone = [Gates() for _ in range(2)]
    assert _peak_concurrency(alone, 6, resource) == 8


def test_a_429_for_the_app_pauses_every_worker(client: redis.Redis) -> None:
    first = Gates(shared=RedisGates(client, "tenant"))
    second = Gates(shared=RedisGates(client, "tenant"))
    other_tenant = Gates(shared=RedisGates(client, "another"))
    first.pause(APP, 1.5)
    mailbox = Resource.mailbox("user-2")
    assert second.remaining(mailbox) > 1.0
    assert other_tenant.remaining(mailbox) == 0.0
    started = time.monotonic()
    with second.admit(mailbox):
        waited = time.monotonic() - started
    assert waited >= 1.0
    # A pause is extended, never shortened, by a shorter one.
    first.pause("sharepoint", 3.0)
    second.pause("sharepoint", 0.5)
    assert second.remaining(Resource.sharepoint()) > 2.0


def test_the_tenant_rate_binds_all_workers_together(client: redis.Redis) -> None:
    rates = {"teams": (20.0, 5.0)}
    gates = [Gates(shared=RedisGates(client, "tenant", rates=rates)) for _ in range(2)]
    resource = Resource.teams(None)
    count = 0
    lock = threading.Lock()

    def run(g: Gates) -> None:
        nonlocal count
        for _ in range(15):
            with g.admit(resource), lock:
                count += 1

    started = time.monotonic()
    pool = [threading.Thread(target=run, args=(g,)) for g in gates for _ in range(2)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    elapsed = time.monotonic() - started
    assert count == 60
    # 60 requests at 20/s with a burst of 5: at least (60 - 5) / 20 seconds.
    assert elapsed >= 2.5


def test_the_limiter_admits_when_redis_is_gone(tmp_path: Path) -> None:
    gone = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    gates = Gates(shared=RedisGates(gone, "tenant"))
    started = time.monotonic()
    for _ in range(50):
        with gates.admit(Resource.mailbox("u")):
            pass
    assert gates.remaining(Resource.mailbox("u")) == 0.0
    # One failed attempt, then no request waits on Redis (the breaker).
    assert time.monotonic() - started < 10


def _round_trips(client: redis.Redis, work: Callable[[], None]) -> int:
    """Commands clients sent redis-server while ``work`` ran, seen through
    MONITOR (a script's own commands show as ``lua`` and are not counted)."""
    seen: list[dict[str, Any]] = []
    watcher = redis.Redis(
        connection_pool=redis.ConnectionPool(**client.connection_pool.connection_kwargs)
    )
    ready = threading.Event()

    def watch() -> None:
        with watcher.monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                if command["command"] == "ECHO coffer-test-stop":
                    return
                seen.append(command)

    thread = threading.Thread(target=watch)
    thread.start()
    ready.wait(10)
    time.sleep(0.2)
    work()
    client.echo("coffer-test-stop")
    thread.join(30)
    return sum(1 for c in seen if c.get("client_type") != "lua")


def test_a_request_costs_two_round_trips_to_redis(client: redis.Redis) -> None:
    """One script admits (pauses, slot, rate) and one command releases: five
    round trips a request made restore jobs wait on Redis more than on Graph."""
    gates = Gates(shared=RedisGates(client, "tenant"))
    resource = Resource.mailbox("user-9")
    with gates.admit(resource):
        pass  # loads the script (EVALSHA's first miss) outside the count

    def fifty() -> None:
        for _ in range(50):
            with gates.admit(resource):
                pass

    sent = _round_trips(client, fifty)
    assert sent <= 2 * 50 + 5, f"{sent} commands for 50 requests"
    # And a pause another worker starts is still seen by the next admission.
    other = Gates(shared=RedisGates(client, "tenant"))
    other.pause(APP, 1.0)
    started = time.monotonic()
    with gates.admit(resource):
        assert time.monotonic() - started >= 0.9


def test_a_lease_left_by_a_broker_outage_is_taken_over_by_its_process_only(
    server: RedisServer, client: redis.Redis
) -> None:
    # A job's attempt ends while the broker is down: its lease cannot be
    # released and stays (append-only file) until it lapses. The job's next
    # attempt in this process takes it over at once instead of waiting
    # lease_seconds for itself; another process still finds it busy.
    key = lease_key("tenant", "users", "u9")
    first = OwnerLease(client, key, "host-a:1", 60.0)
    server.stop()
    first.release()
    server.start()
    assert client.get(key) == first.token
    probe = (
        "import sys, redis\n"
        "from cli.cluster.lease import LeaseBusy, OwnerLease\n"
        f"c = redis.Redis(host='127.0.0.1', port={server.port}, password=sys.argv[1])\n"
        "try:\n"
        f"    OwnerLease(c, {key!r}, 'host-b:2', 60.0)\n"
        "except LeaseBusy:\n"
        "    print('busy')\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", probe, REDIS_PASSWORD],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert other.stdout.strip() == "busy"
    with OwnerLease(client, key, "host-a:1", 60.0) as again:
        assert client.get(key) == again.token == first.token
    assert client.get(key) is None


_HOLDER = """
import sys, threading, time
import redis
from cli.cluster.limiter import PAUSES_FRESH_SECONDS, RedisGates
from sources.m365.graph.throttle import Gates, Resource
client = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), password=sys.argv[2])
gates = Gates(shared=RedisGates(client, "tenant", slot_seconds=float(sys.argv[3])))
entered = threading.Semaphore(0)
def hold():
    with gates.admit(Resource.mailbox("user-k")):
        entered.release()
        time.sleep(3600)
for _ in range(4):
    threading.Thread(target=hold, daemon=True).start()
for _ in range(4):
    entered.acquire()
print("held", flush=True)
time.sleep(3600)
"""


def test_a_killed_workers_mailbox_slots_lapse_and_a_live_holders_stay(
    server: RedisServer, client: redis.Redis
) -> None:
    """A worker killed with -9 while holding a mailbox's four slots must not keep
    that mailbox at a standstill (its job is redelivered to another worker), and a
    live request keeps its slot however long it runs."""
    lifetime = 2.0
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(server.port), REDIS_PASSWORD, str(lifetime)],
        stdout=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        gates = Gates(shared=RedisGates(client, "tenant", slot_seconds=lifetime))
        got = threading.Event()

        def request() -> None:
            with gates.admit(Resource.mailbox("user-k")):
                got.set()

        threading.Thread(target=request, daemon=True).start()
        # Alive, the holder renews: its slots outlast their lifetime twice over.
        assert not got.wait(2.5 * lifetime), "a live holder's slot lapsed"
        holder.kill()
        holder.wait(30)
        killed = time.monotonic()
        assert got.wait(lifetime + 10), "a killed holder's slots did not lapse"
        assert time.monotonic() - killed <= lifetime + 10
    finally:
        holder.kill()
        holder.communicate(timeout=30)  # closes its pipe


def test_requests_waiting_for_the_budget_ask_redis_once_each(client: redis.Redis) -> None:
    """Requests that find SharePoint's bucket empty reserve their turn and sleep
    until it: they polled Redis before, and with four workers waiting for the
    budget the polling cost more CPU than the backup itself."""
    rates = {"sharepoint": (20.0, 1.0)}
    gates = [Gates(shared=RedisGates(client, "tenant", rates=rates)) for _ in range(2)]
    resource = Resource.sharepoint()
    for g in gates:
        with g.admit(resource):
            pass  # loads the script (EVALSHA's first miss) outside the count
    admitted: list[float] = []
    lock = threading.Lock()

    def run(g: Gates) -> None:
        for _ in range(5):
            with g.admit(resource), lock:
                admitted.append(time.monotonic())

    def eight_waiters() -> None:
        pool = [threading.Thread(target=run, args=(g,)) for g in gates for _ in range(4)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(timeout=60)

    sent = _round_trips(client, eight_waiters)
    assert len(admitted) == 40
    # 40 requests at 20 a second from an empty bucket: about two seconds, kept.
    assert max(admitted) - min(admitted) >= 1.7
    # One admission each (SharePoint requests hold no slot, so nothing to release).
    # Besides, each process reads its scopes' pauses (APP and sharepoint) at most
    # once per PAUSES_FRESH_SECONDS: bounded by time, not by the waiters.
    seconds = max(admitted) - min(admitted) + 1
    pause_reads = 2 * 2 * math.ceil(seconds / PAUSES_FRESH_SECONDS)
    assert sent <= 40 + pause_reads, f"{sent} commands for 40 requests in {seconds:.1f} s"
