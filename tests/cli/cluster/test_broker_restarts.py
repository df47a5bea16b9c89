"""The broker restarted (or crashed) at many moments of a followed run, once or
several times: the run completes within a bound that does not depend on the
visibility timeout or the stall timeout (both set far above it here), every
owner committed once. Real redis-server (append-only, fsync always), real
``coffer worker`` processes, the simulator over HTTPS, one repository.

The logs of the command and of each worker stay in the test's directory.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.cli.cluster.kit import (
    RedisServer,
    cluster_config,
    run_snapshots,
    running_redis,
    slow_bodies,
    the_run,
    wait_until,
    workers,
)
from tests.cli.support.helpers import COFFER, CofferEnv
from tools.graphsim.testing import RunningTenant

pytestmark = [pytest.mark.sim, pytest.mark.server]

# Far above BOUND: a run that needs either to finish fails the test.
SLOW_PARTS = "visibility_timeout = 3600\nstall_timeout = 3600\n"
BOUND = 150.0  # seconds from the last restart to the run's end, under load


def _done(server: RedisServer, run: str) -> int:
    try:
        return int(server.client().hlen(f"coffer:run:{run}:owners"))
    except redis.RedisError:
        return 0


def _bounce(server: RedisServer, down: float, crash: bool) -> None:
    if crash:
        server.crash()
        time.sleep(down)
        server.start()
    else:
        server.restart(down_seconds=down)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("after_done", "downs", "crash"),
    [
        (0, (2.0,), False),
        (0, (0.5,), True),
        (2, (2.0,), True),
        (4, (5.0,), False),
        (1, (1.0, 0.5, 3.0, 0.2), False),
        (1, (1.0, 0.5, 3.0, 0.2), True),
    ],
)
def test_the_run_completes_whenever_the_broker_restarts(
    env: CofferEnv,
    tenant: RunningTenant,
    tmp_path: Path,
    after_done: int,
    downs: tuple[float, ...],
    crash: bool,
) -> None:
    with running_redis(tmp_path / "redis") as server:
        config = cluster_config(tenant.sim.state_dir, server, "restarts.toml", SLOW_PARTS)
        client = server.client()
        log = tmp_path / "backup.log"
        with (
            slow_bodies(tenant),
            workers(env, config, tmp_path, 2),
            open(log, "w") as err,
        ):
            proc = subprocess.Popen(
                [COFFER, "-v", "backup", "--json"],
                env=env.env(COFFER_CONFIG=str(config)),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                stdin=subprocess.DEVNULL,
            )
            try:
                run = the_run(client)
                wait_until(lambda: _done(server, run) >= after_done, "too few owners done", 120)
                for down in downs:
                    _bounce(server, down, crash)
                    time.sleep(1.0)
                try:
                    out, _ = proc.communicate(timeout=BOUND)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    pytest.fail(f"run not done {BOUND:.0f}s after the restarts: {log}")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    assert proc.returncode == 0, log.read_text()[-3000:]
    report = json.loads(out)
    owners = report["owners"]
    assert len(owners) >= 10
    assert all(o["status"] == "ok" and o["snapshot"] for o in owners), report["summary"]
    complete = [s for s in run_snapshots(env, report["run"]) if not s.get("partial")]
    assert sorted(s["id"] for s in complete) == sorted(o["snapshot"] for o in owners)
