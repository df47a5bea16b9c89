"""A job whose owner's lease another holds waits for it in its thread, in hand
(so the coordinator does not take it for lost), and a warm shutdown gives it
back to the queue instead of waiting for the other holder. Real redis-server,
a real ``coffer worker``, the simulator over HTTPS."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from cli.cluster.accounting import queued
from cli.cluster.lease import lease_key
from tests.cli.cluster.kit import (
    RedisServer,
    Worker,
    cluster_config,
    detach_mailbox,
    user_id,
    wait_until,
)
from tests.cli.support.helpers import CofferEnv
from tools.graphsim.testing import RunningTenant

pytestmark = [pytest.mark.sim, pytest.mark.server]


def test_a_job_waits_for_a_busy_lease_in_hand_and_a_warm_shutdown_gives_it_back(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    config = cluster_config(tenant.sim.state_dir, broker, "busy.toml")
    upn = "alex.kim@contoso.onmicrosoft.com"
    user = user_id(tenant, upn)
    # Another job (of another run, on another machine) holds the owner.
    client.set(lease_key(tenant.info.tenant_id, "users", user), "elsewhere", px=300_000)
    worker = Worker(env, config, tmp_path / "worker.log", concurrency=1)
    try:
        run = detach_mailbox(env, config, upn)
        hand = f"coffer:run:{run}:hand:users:{user}"
        wait_until(lambda: "waiting for its lease" in worker.text(), worker.text(), 60)
        time.sleep(12.0)  # past the key's renewal period: still in hand
        assert client.exists(hand)
        assert client.llen("coffer") == 0
        assert not client.hlen(f"coffer:run:{run}:owners")
        started = time.monotonic()
        assert worker.stop(timeout=60) == 0, worker.text()
        assert time.monotonic() - started < 30  # not held up by the other holder
    finally:
        worker.stop()
    # Given back: queued again, no longer in hand, nothing done.
    assert client.llen("coffer") == 1
    assert queued(client, "coffer", run) == {f"users:{user}"}
    assert not client.exists(hand)
    assert not client.hlen(f"coffer:run:{run}:owners")
