"""Where an owner's job is (cli/cluster/accounting.py, inhand.py), and enqueueing
through a broker restart (coordinator.py ``send``), on a real redis-server with
real Celery messages; no worker, no simulator."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
import redis

from cli.cluster.accounting import Accounting, queued, unaccounted
from cli.cluster.broker import BACKUP_TASK
from cli.cluster.coordinator import ClusterBackup
from cli.cluster.inhand import InHand, in_hand
from cli.cluster.jobs import BackupMessage
from cli.cluster.settings import ClusterSettings
from tests.cli.cluster.kit import REDIS_PASSWORD, RedisServer
from tests.store.support.helpers import Clock

pytestmark = [pytest.mark.server]


def _settings(broker: RedisServer) -> ClusterSettings:
    return ClusterSettings(url=broker.url, password=REDIS_PASSWORD.encode(), stall_seconds=60)


def _bodies(run: str, n: int) -> list[dict[str, object]]:
    return [
        BackupMessage(run, 1, "tenant", "users", f"u{i}", f"user {i}", ("mail",)).to_map()
        for i in range(n)
    ]


def test_owners_are_found_queued_in_hand_or_done_and_lost_only_at_two_looks(
    broker: RedisServer, client: redis.Redis
) -> None:
    coordinator = ClusterBackup(_settings(broker))
    coordinator.send(BACKUP_TASK, _bodies("runa", 4) + _bodies("runb", 2))
    client.lpush("coffer", "not json", '{"body": "!!"}')  # anything may be in a queue
    fields = [f"users:u{i}" for i in range(4)]
    assert queued(client, "coffer", "runa") == set(fields)
    assert queued(client, "coffer", "runb") == {"users:u0", "users:u1"}
    assert unaccounted(client, "coffer", "runa", fields, done=[]) == set()

    # u0 taken by a worker (in hand), u1 done, u2 and u3 popped and dropped.
    hands = InHand(client, period=0.2)
    try:
        client.delete("coffer")
        coordinator.send(BACKUP_TASK, _bodies("runb", 1))  # other runs do not count
        clock = Clock()
        accounting = Accounting(client, "coffer", "runa", fields, 15.0, clock)
        with hands.holding("runa", "users:u0"):
            assert in_hand(client, "runa", fields) == {"users:u0"}
            time.sleep(1.0)  # renewed: still there after several periods
            assert client.pttl("coffer:run:runa:hand:users:u0") > 0
            assert accounting.due()
            assert accounting.look(["users:u1"]) == set()  # one look is no proof
            assert accounting.suspects == {"users:u2", "users:u3"}
            clock.now += 5
            assert not accounting.due()
            clock.now += 10
            # u3 turned up done meanwhile: only u2 was lost.
            assert accounting.look(["users:u1", "users:u3"]) == {"users:u2"}
            # Counted as found once returned: not lost again at the next look.
            clock.now += 15
            assert accounting.look(["users:u1", "users:u3"]) == set()
        assert in_hand(client, "runa", fields) == set()  # the job ended: no key left
        clock.now += 15
        assert accounting.look(["users:u1", "users:u3"]) == {"users:u2"}
        assert accounting.suspects == {"users:u0"}
    finally:
        hands.stop()


def test_enqueueing_rides_out_a_broker_restart(
    broker: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    coordinator = ClusterBackup(_settings(broker))
    broker.stop()  # down when the enqueueing starts, back 3 s later

    def back() -> None:
        time.sleep(3.0)
        broker.start()

    thread = threading.Thread(target=back)
    thread.start()
    try:
        coordinator.send(BACKUP_TASK, _bodies("runc", 20))
    finally:
        thread.join()
    assert queued(broker.client(), "coffer", "runc") == {f"users:u{i}" for i in range(20)}


def test_a_renewal_never_brings_back_the_key_of_a_job_that_ended(client: redis.Redis) -> None:
    """The renewal thread copies the held keys, then sets them; a job ending
    in between had its key deleted and then set again, so it looked in hand
    for three more periods (30 s in production; this made the test above
    fail now and then). Many short jobs against a fast renewal: no key of an
    ended job is left."""
    hands = InHand(client, period=0.002)
    rng = random.Random(4)
    try:
        back: list[str] = []
        for number in range(400):
            field = f"users:race{number}"
            with hands.holding("race", field):
                time.sleep(rng.random() * 0.003)
            time.sleep(0.004)  # two periods: a renewal in flight has landed
            if in_hand(client, "race", [field]):
                back.append(field)
        assert back == []
    finally:
        hands.stop()
