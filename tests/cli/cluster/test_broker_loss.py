"""A broker that loses its data in the middle of a run (FLUSHALL, a restart without
persistence, the queue gone), and a run nobody serves: real redis-server, real
``coffer worker`` processes, the simulator over HTTPS, one shared repository.

Without the defence (cli/cluster/watch.py and the coordinator's recovery), the
following ``coffer backup`` waits forever for counters that are gone: these
tests then fail on their time limit.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.cli.cluster.kit import (
    RedisServer,
    Worker,
    cluster_config,
    run_snapshots,
    running_redis,
    slow_bodies,
    the_run,
    wait_until,
    workers,
)
from tests.cli.support.helpers import CofferEnv, reaped
from tools.graphsim.testing import RunningTenant

pytestmark = [pytest.mark.sim, pytest.mark.server]

LIMIT = 300.0  # seconds a run may take here under load; without the defence: forever


@contextmanager
def following(env: CofferEnv, config: Path, *command: str) -> Iterator[subprocess.Popen[str]]:
    """``coffer COMMAND --json`` (default: backup) following its run; killed if the
    test fails first."""
    with reaped(env.popen(*(command or ("backup",)), "--json", COFFER_CONFIG=str(config))) as proc:
        yield proc


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"coffer backup still waiting after {LIMIT:.0f}s: {err[-2000:]}")
    return proc.returncode, out, err


def _each_owner_committed_once(env: CofferEnv, code: int, out: str, err: str) -> dict[str, Any]:
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    owners = report["owners"]
    assert len(owners) >= 10
    assert not report["owners_pending"]
    assert all(o["status"] == "ok" and o["snapshot"] for o in owners), report["summary"]
    complete = [s for s in run_snapshots(env, report["run"]) if not s.get("partial")]
    assert sorted(s["id"] for s in complete) == sorted(o["snapshot"] for o in owners)
    identities = [(s["owner_kind"], s["owner"]) for s in complete]
    assert len(identities) == len(set(identities))  # one snapshot per owner
    return report


def _loses_data_mid_run(
    env: CofferEnv, config: Path, server: RedisServer, tmp_path: Path, lose: Callable[[], None]
) -> tuple[int, str, str]:
    """A followed backup over two workers; ``lose`` runs once some owners are done
    and others are still to come."""
    client = server.client()
    with workers(env, config, tmp_path, 2), following(env, config) as proc:
        run = the_run(client)
        wait_until(lambda: client.hlen(f"coffer:run:{run}:owners") >= 2, "no owner finished")
        total = int(client.hget(f"coffer:run:{run}", "total") or 0)
        assert client.hlen(f"coffer:run:{run}:owners") < total  # hit in the middle
        lose()
        # The run's state is gone (a new connection: the old one died with a restart).
        assert not server.client().hexists(f"coffer:run:{run}", "epoch")
        return _finish(proc)


def test_the_run_completes_when_redis_is_flushed_in_the_middle(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    config = cluster_config(tenant.sim.state_dir, broker)
    with slow_bodies(tenant):
        result = _loses_data_mid_run(env, config, broker, tmp_path, client.flushall)
    _each_owner_committed_once(env, *result)
    assert "lost the run's state" in result[2]


@pytest.mark.slow  # 30 to 60 s under load (FLUSHALL, in the fast suite, takes the same path)
def test_the_run_completes_when_redis_restarts_without_persistence(
    env: CofferEnv, tenant: RunningTenant, tmp_path: Path
) -> None:
    with running_redis(tmp_path / "redis", persistent=False) as server:
        config = cluster_config(tenant.sim.state_dir, server, "volatile.toml")
        with slow_bodies(tenant):
            result = _loses_data_mid_run(
                env, config, server, tmp_path, lambda: server.restart(down_seconds=1.0)
            )
    _each_owner_committed_once(env, *result)
    assert "lost the run's state" in result[2]


def test_a_run_nobody_serves_stops_with_one_line_and_exit_19(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, client: redis.Redis
) -> None:
    config = cluster_config(tenant.sim.state_dir, broker, "stall.toml", "stall_timeout = 3\n")
    started = time.monotonic()
    result = env.run("backup", check=False, timeout=120, COFFER_CONFIG=str(config))
    assert result.code == 19, result.err
    assert result.err.count("\n") == 1
    assert "no worker serving queue coffer" in result.err
    assert "start `coffer worker`" in result.err
    assert time.monotonic() - started < 90
    # The jobs stay queued for workers that start later.
    assert client.llen("coffer") >= 10


@pytest.mark.slow  # 40 s under load: two looks 15 s apart, then the run
def test_jobs_lost_without_the_counters_are_enqueued_again(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    # The stall detector and the visibility timeout far beyond the limit: the
    # coordinator finds the owners whose job is nowhere by itself (accounting.py).
    config = cluster_config(
        tenant.sim.state_dir,
        broker,
        "gone.toml",
        "stall_timeout = 3600\nvisibility_timeout = 3600\n",
    )
    with following(env, config) as proc:
        run = the_run(client)
        total = int(client.hget(f"coffer:run:{run}", "total") or 0)
        wait_until(lambda: client.llen("coffer") == total, "the jobs were not queued")
        client.delete("coffer")  # the queue lost, the run's counters kept
        started = time.monotonic()
        worker = Worker(env, config, tmp_path / "worker.log", concurrency=2)
        try:
            result = _finish(proc)
        finally:
            worker.stop()
    _each_owner_committed_once(env, *result)
    assert f"the broker lost the jobs of {total} owner(s)" in result[2]
    assert "lost the run's" not in result[2]  # not the stall detector's recovery
    assert time.monotonic() - started < 240


@pytest.mark.slow  # a minute under load: a backup, a restore over two workers, the same again
def test_a_restore_completes_when_redis_is_flushed_in_the_middle(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    config = cluster_config(tenant.sim.state_dir, broker)
    env.run("backup", "--service", "mail", COFFER_CONFIG=str(tenant.sim.state_dir / "coffer.toml"))
    target = "bianca.novak@contoso.onmicrosoft.com"
    restore = ("restore", "latest", "--service", "mail", "--to", f"user:{target}/After a flush")
    tenant.admin.inject_faults(
        {"kind": "slow", "match": "/messages", "methods": ["POST"], "delay": 0.05}
    )
    try:
        with (
            workers(env, config, tmp_path, 2),
            following(env, config, *restore) as proc,
        ):
            run = the_run(client)
            wait_until(lambda: client.hlen(f"coffer:run:{run}:owners") >= 1, "no owner restored")
            total = int(client.hget(f"coffer:run:{run}", "total") or 0)
            assert client.hlen(f"coffer:run:{run}:owners") < total  # hit in the middle
            client.flushall()
            code, out, err = _finish(proc)
    finally:
        tenant.admin.clear_faults()
    assert code == 0, err
    assert "lost the run's state" in err
    report = json.loads(out)
    assert report["totals"]["failed"] == 0
    assert report["totals"]["owners"] == total
    # Nothing was written twice: the same restore again finds everything in place.
    with workers(env, config, tmp_path / "again", 1):
        again = env.run(*restore, "--json", COFFER_CONFIG=str(config)).json()
    assert again["totals"]["created"] == 0
    assert again["totals"]["failed"] == 0
