"""A detached run (``coffer backup --detach``) whose state Redis loses: ``coffer
report RUN`` says so in one line (exit 19), ``coffer backup --resume RUN``
enqueues again exactly the owners whose report is not in the repository, with
the run's id, time and services, once (a second resume enqueues nothing), and
the run completes with every owner committed once. The same when Redis keeps
the run's state but loses its queue: the owners whose job is nowhere (not done,
in no worker's hands, not queued) are reported and enqueued again, and only
those. Real redis-server, real ``coffer worker`` processes, the simulator over
HTTPS, one repository.

Without the defences, ``coffer report RUN`` says "not finished yet" forever
and nothing enqueues the lost owners (docs/scale-out.md "When Redis loses its
data").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.cli.cluster.kit import (
    RedisServer,
    Worker,
    cluster_config,
    run_snapshots,
    slow_bodies,
    wait_until,
    workers,
)
from tests.cli.support.helpers import CofferEnv
from tools.graphsim.testing import RunningTenant

pytestmark = [pytest.mark.sim, pytest.mark.server]

LIMIT = 300.0  # seconds a run may take here under load


def _flushed_mid_run(
    env: CofferEnv,
    config: Path,
    client: redis.Redis,
    root: Path,
    lose: Callable[[], Any] | None = None,
) -> tuple[str, int]:
    """A detached mail run on one worker of one thread, FLUSHALL (or ``lose``)
    once an owner is done and others are to come; the worker then stops (warm:
    the owner it runs finishes and stores its report). Returns the run id and
    its owner count."""
    root.mkdir(parents=True, exist_ok=True)
    worker = Worker(env, config, root / "worker.log", concurrency=1)
    try:
        detached = env.run(
            "backup", "--detach", "--json", "--service", "mail", COFFER_CONFIG=str(config)
        )
        run = str(detached.json()["run"])
        wait_until(lambda: client.hlen(f"coffer:run:{run}:owners") >= 1, "no owner finished")
        total = int(client.hget(f"coffer:run:{run}", "total") or 0)
        assert client.hlen(f"coffer:run:{run}:owners") < total - 2  # hit in the middle
        (lose or client.flushall)()
    finally:
        worker.stop()
    return run, total


def _each_owner_committed_once(env: CofferEnv, report: dict[str, Any], total: int) -> None:
    owners = report["owners"]
    assert len(owners) == total
    assert not report["owners_pending"]
    # Every owner ok, but the one with no mailbox (nothing to commit).
    committed = [o for o in owners if o["status"] == "ok" and o["snapshot"]]
    assert [o["name"] for o in owners if o not in committed] == [
        "contractor@contoso.onmicrosoft.com"
    ]
    assert report["exit_code"] == 0, report.get("summary")
    # The resumed jobs kept the run's services (mail only, not every service).
    assert all(set(o["services"]) == {"mail"} for o in owners)
    complete = [s for s in run_snapshots(env, report["run"]) if not s.get("partial")]
    assert sorted(s["id"] for s in complete) == sorted(o["snapshot"] for o in committed)
    identities = [(s["owner_kind"], s["owner"]) for s in complete]
    assert len(identities) == len(set(identities)) == total - 1  # one snapshot per owner
    assert len({s["time"] for s in complete}) == 1  # the run's time, resumed or not


def test_a_lost_detached_run_is_reported_then_resumed_once(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    config = cluster_config(tenant.sim.state_dir, broker)
    cfg = {"COFFER_CONFIG": str(config)}
    with slow_bodies(tenant):
        run, total = _flushed_mid_run(env, config, client, tmp_path / "first")

    lost = env.run("report", run, check=False, **cfg)
    assert lost.code == 19, lost.err
    assert lost.err.count("\n") == 1, lost.err
    assert "the broker holds no state of this run" in lost.err
    assert f"`coffer backup --resume {run}`" in lost.err

    # Two resumes at once (both find the run lost, both wait a lease lifetime):
    # one enqueues the owners whose report is not in the repository, the other
    # finds the run claimed and enqueues nothing; so does a third one after.
    both = [env.popen("backup", "--resume", run, "--detach", "--json", **cfg) for _ in "ab"]
    results = sorted((p.wait(timeout=120), *p.communicate()) for p in both)
    assert [code for code, _, _ in results] == [0, 3], results
    left = int(json.loads(results[0][1])["enqueued"])
    assert 0 < left < total
    assert "nothing to resume" in results[1][2]
    third = env.run("backup", "--resume", run[:10], "--detach", check=False, **cfg)
    assert third.code == 3, third.err
    assert "nothing to resume" in third.err
    assert client.llen("coffer") == left
    waiting = env.run("report", run, check=False, **cfg)
    assert waiting.code == 3, waiting.err  # known to the broker again: not finished yet
    assert "not finished yet" in waiting.err

    with workers(env, config, tmp_path / "second", 2):
        wait_until(lambda: env.run("report", run, check=False, **cfg).code == 0, "not done", LIMIT)
    report = env.run("report", run, "--json", **cfg).json()["report"]
    _each_owner_committed_once(env, report, total)

    # A resume of a finished run does nothing.
    before = run_snapshots(env, run)
    again = env.run("backup", "--resume", run, "--json", **cfg)
    assert again.json()["enqueued"] == 0
    assert "nothing to resume" in again.err
    assert client.llen("coffer") == 0
    assert run_snapshots(env, run) == before


def test_a_followed_resume_completes_the_run_and_writes_its_report(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    config = cluster_config(tenant.sim.state_dir, broker, "follow.toml")
    cfg = {"COFFER_CONFIG": str(config)}
    with slow_bodies(tenant):
        run, total = _flushed_mid_run(env, config, client, tmp_path / "first")
    with workers(env, config, tmp_path / "second", 2):
        resumed = env.run("backup", "--resume", run, "--json", timeout=LIMIT, **cfg)
    report = resumed.json()
    assert report["run"] == run
    _each_owner_committed_once(env, report, total)
    # The one report of the run is the one `coffer report RUN` shows.
    shown = env.run("report", run, "--json", **cfg).json()
    assert shown["key"] == report["report"]


def test_a_detached_run_whose_queue_is_lost_is_reported_then_resumed_once(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    # The visibility timeout far beyond the test: nothing but --resume brings
    # the lost jobs back.
    config = cluster_config(
        tenant.sim.state_dir, broker, "queue.toml", "visibility_timeout = 3600\n"
    )
    cfg = {"COFFER_CONFIG": str(config)}

    def lose_the_queue() -> None:
        # The list of the Celery queue deleted, the run's state kept (a replica
        # that had the run's keys and not the queue, a snapshot taken between
        # the run's start and its enqueue, an operator's DEL).
        client.delete("coffer")

    with slow_bodies(tenant):
        run, total = _flushed_mid_run(env, config, client, tmp_path / "first", lose_the_queue)
    client.delete("coffer")  # and what the stopping worker gave back
    assert client.hexists(f"coffer:run:{run}", "epoch")
    finished = len(client.hkeys(f"coffer:run:{run}:owners"))
    missing = total - finished

    lost = env.run("report", run, check=False, **cfg)
    assert lost.code == 19, lost.err
    assert lost.err.count("\n") == 1, lost.err
    assert f"the jobs of {missing} owner(s) are lost" in lost.err
    assert f"`coffer backup --resume {run}` enqueues those {missing} again" in lost.err

    # Two resumes at once: one enqueues exactly the lost owners, the other
    # enqueues nothing; so does a third one after (they are queued now).
    both = [env.popen("backup", "--resume", run, "--detach", "--json", **cfg) for _ in "ab"]
    results = sorted((p.wait(timeout=120), *p.communicate()) for p in both)
    assert [code for code, _, _ in results] == [0, 3], results
    assert int(json.loads(results[0][1])["enqueued"]) == missing
    assert "nothing to resume" in results[1][2]
    third = env.run("backup", "--resume", run, "--detach", check=False, **cfg)
    assert third.code == 3, third.err
    assert "nothing to resume" in third.err
    queued = [json.loads(raw) for raw in client.lrange("coffer", 0, -1)]
    assert len(queued) == missing
    waiting = env.run("report", run, check=False, **cfg)
    assert waiting.code == 3, waiting.err  # queued again: not finished yet
    assert "not finished yet" in waiting.err

    with workers(env, config, tmp_path / "second", 2):
        wait_until(lambda: env.run("report", run, check=False, **cfg).code == 0, "not done", LIMIT)
    report = env.run("report", run, "--json", **cfg).json()["report"]
    _each_owner_committed_once(env, report, total)
