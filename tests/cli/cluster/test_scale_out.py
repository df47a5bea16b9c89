"""Scale-out backups: real redis-server, real ``coffer worker`` processes, the simulator
over HTTPS, one repository on the local disk shared by every process."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cluster.kit import (
    REDIS_PASSWORD,
    REPO_PASSWORD,
    RedisServer,
    Worker,
    cluster_config,
    run_snapshots,
    slow_owner_run,
    workers,
)
from tests.cli.support.helpers import CofferEnv
from tests.store.support.servers import free_port
from tools.graphsim.testing import RunningTenant

pytestmark = [pytest.mark.sim, pytest.mark.server]


def _config(tenant: RunningTenant, broker: RedisServer) -> Path:
    return cluster_config(tenant.sim.state_dir, broker)


def test_without_a_broker_backup_imports_neither_celery_nor_redis(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, tmp_path: Path
) -> None:
    plain = str(tenant.sim.state_dir / "coffer.toml")
    probe = (
        "import sys\nfrom cli.main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('celery', 'redis', 'kombu'))\n"
        "print('LOADED', ','.join(bad), 'EXIT', code, file=sys.stderr)\n"
    )

    def loaded(*args: str, **extra: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", probe, *args],
            env=env.env(**extra),
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return [x for x in proc.stderr.splitlines() if x.startswith("LOADED")][-1]

    assert loaded("backup", "--service", "mail", COFFER_CONFIG=plain) == "LOADED  EXIT 0"
    # The same probe sees them when a broker is configured (unreachable: exit 15).
    with_broker = loaded(
        "backup", COFFER_CONFIG=plain, COFFER_BROKER=f"redis://127.0.0.1:{free_port()}/0"
    )
    assert "celery" in with_broker
    assert "redis" in with_broker
    assert with_broker.endswith("EXIT 15")


def test_unreachable_broker_is_one_line_and_exit_15(env: CofferEnv, tenant: RunningTenant) -> None:
    plain = str(tenant.sim.state_dir / "coffer.toml")
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = env.run("backup", check=False, COFFER_CONFIG=plain, COFFER_BROKER=url)
    assert result.code == 15
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"coffer: broker {url} unreachable")
    worker = env.run(
        "worker", "--concurrency", "2", check=False, COFFER_CONFIG=plain, COFFER_BROKER=url
    )
    assert worker.code == 15
    assert worker.err.count("\n") == 1
    zero = env.run(
        "worker", "--concurrency", "0", check=False, COFFER_CONFIG=plain, COFFER_BROKER=url
    )
    assert zero.code == 2
    nothing = env.run("worker", check=False, COFFER_CONFIG=plain)
    assert nothing.code == 16
    assert "no broker" in nothing.err


def test_broker_url_with_a_password_is_refused_without_echoing_it(
    env: CofferEnv, tenant: RunningTenant
) -> None:
    plain = str(tenant.sim.state_dir / "coffer.toml")
    result = env.run(
        "backup",
        "--broker",
        "redis://:hunter2secret@127.0.0.1:6379/0",
        check=False,
        COFFER_CONFIG=plain,
    )
    assert result.code == 16
    assert "hunter2secret" not in result.err + result.out
    assert result.err.count("\n") == 1


def test_every_owner_is_committed_exactly_once_by_the_workers(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, tmp_path: Path
) -> None:
    config = _config(tenant, broker)
    with workers(env, config, tmp_path, 2) as started:
        result = env.run("backup", "--json", COFFER_CONFIG=str(config))
    report = result.json()
    assert report["exit_code"] == 0, report
    # No secret in any log line of the workers or the command.
    logs = result.err + "".join(w.text() for w in started)
    for secret in (REDIS_PASSWORD, REPO_PASSWORD, tenant.info.client_secret):
        assert secret not in logs
    owners = report["owners"]
    names = {w.name for w in started}
    assert len(owners) >= 10
    assert all(o["status"] == "ok" and o["snapshot"] for o in owners)
    assert {o["worker"] for o in owners} == names  # both workers took jobs
    assert sum(report["workers"].values()) == len(owners)
    snaps = run_snapshots(env, report["run"])
    complete = [s for s in snaps if not s.get("partial")]
    assert sorted(s["id"] for s in complete) == sorted(o["snapshot"] for o in owners)
    identities = [(s["owner_kind"], s["owner"]) for s in complete]
    assert len(identities) == len(set(identities))  # one snapshot per owner
    # The same run report is stored and found by its run id.
    shown = env.run("report", report["run"][:12], "--json").json()
    assert shown["report"]["run"] == report["run"]
    assert len(shown["report"]["owners"]) == len(owners)


def _queued_messages(client: Any, queue: str) -> list[dict[str, Any]]:
    out = []
    for raw in client.lrange(queue, 0, -1):
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        out.append({"raw": raw, "body": body, "headers": envelope.get("headers", {})})
    return out


@pytest.mark.slow  # a minute under load: a detached run, then every job delivered again
def test_detached_run_carries_ids_only_and_is_reported_later(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, tmp_path: Path
) -> None:
    config = _config(tenant, broker)
    client = broker.client()
    client.delete("coffer")
    detached = env.run("backup", "--detach", "--json", COFFER_CONFIG=str(config)).json()
    run = detached["run"]
    messages = _queued_messages(client, "coffer")
    assert len(messages) == detached["owners"]
    secrets = [
        tenant.info.client_secret,
        REDIS_PASSWORD,
        REPO_PASSWORD,
    ]
    for message in messages:
        for secret in secrets:
            assert secret not in message["raw"]
        args = message["body"][0]
        assert set(args[0]) == {
            "v", "run", "time_ns", "tenant", "owner", "services", "options", "snapshots",
        }  # fmt: skip
        assert all(len(i) == 64 for i in args[0]["snapshots"])  # ids only
        assert args[0]["run"] == run
    # Not finished yet: coffer report says so, and exits non-zero.
    pending = env.run("report", run, check=False, COFFER_CONFIG=str(config))
    assert pending.code == 3
    assert "not finished" in pending.err
    with workers(env, config, tmp_path, 2):
        deadline = time.monotonic() + 240
        while True:
            shown = env.run("report", run, "--json", check=False, COFFER_CONFIG=str(config))
            if shown.code == 0:
                break
            assert time.monotonic() < deadline, shown.err
            time.sleep(1)
        before = sorted(s["id"] for s in run_snapshots(env, run))
        # Every job delivered again (as after a worker died before acknowledging),
        # with the broker's record of the outcomes gone too: the jobs find their
        # owners' snapshots of this run in the repository and commit nothing new.
        client.delete(f"coffer:run:{run}:owners")
        for message in messages:
            client.lpush("coffer", message["raw"])
        deadline = time.monotonic() + 240
        while client.hlen(f"coffer:run:{run}:owners") < len(messages):
            assert time.monotonic() < deadline
            time.sleep(0.5)
    outcomes = [json.loads(v) for v in client.hvals(f"coffer:run:{run}:owners")]
    assert all(o.get("redelivered") for o in outcomes)
    assert sorted(s["id"] for s in run_snapshots(env, run)) == before
    report = shown.json()["report"]
    assert report["exit_code"] == 0
    assert len(report["owners"]) == detached["owners"]
    assert all(o["worker"] for o in report["owners"])
    # Redis holds counters and ids only: no item names, no secrets.
    for key in client.scan_iter(f"coffer:run:{run}*"):
        kind = client.type(key)
        values = client.hgetall(key) if kind == "hash" else {}
        text = json.dumps(values)
        for secret in secrets:
            assert secret not in text
        assert client.ttl(key) > 0


def test_a_worker_without_the_repository_password_fails_its_jobs_and_others_go_on(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, tmp_path: Path
) -> None:
    config = _config(tenant, broker)
    good = Worker(env, config, tmp_path / "good.log", concurrency=1)
    try:
        bad = Worker(env, config, tmp_path / "bad.log", concurrency=1, COFFER_PASSWORD_FILE="")
        try:
            result = env.run("backup", "--json", check=False, COFFER_CONFIG=str(config))
        finally:
            bad.stop()
    finally:
        good.stop()
    report = result.json()
    assert result.code == 3, report["summary"]
    by_worker: dict[str, list[dict[str, Any]]] = {}
    for owner in report["owners"]:
        by_worker.setdefault(owner["worker"], []).append(owner)
    assert by_worker.get(good.name), "the good worker ran nothing"
    assert by_worker.get(bad.name), "the worker without a password took no job"
    assert all(o["status"] == "ok" for o in by_worker[good.name])
    for owner in by_worker[bad.name]:
        assert owner["status"] == "failed"
        assert owner["snapshot"] is None
        assert f"worker {bad.name}" in owner["error"]
        assert "password" in owner["error"].lower()
    assert "password" in report["summary"].lower()


@pytest.mark.slow  # about two minutes: a checkpoint, a kill, the visibility timeout
def test_a_worker_killed_mid_owner_is_redelivered_and_resumed(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, tmp_path: Path
) -> None:
    config = _config(tenant, broker)
    upn = "alex.kim@contoso.onmicrosoft.com"
    # Every message of one mailbox is slow, so the owner is still running (and has
    # checkpointed) when its worker is killed.
    with contextlib.ExitStack() as stack:
        slow = stack.enter_context(
            slow_owner_run(
                env,
                tenant,
                config,
                tmp_path / "first.log",
                upn,
                2.0,
                "--checkpoint-interval",
                "1",
            )
        )
        first, run = slow.worker, slow.run
        deadline = time.monotonic() + 120
        while not any(s.get("partial") for s in run_snapshots(env, run)):
            assert time.monotonic() < deadline, first.text()
            time.sleep(0.5)
        first.kill()
        checkpoints = [s for s in run_snapshots(env, run) if s.get("partial")]
        assert checkpoints
        tenant.admin.clear_faults()
        second = Worker(env, config, tmp_path / "second.log", concurrency=1)
        stack.callback(second.stop)
        deadline = time.monotonic() + 180
        while True:
            shown = env.run("report", run, "--json", check=False, COFFER_CONFIG=str(config))
            if shown.code == 0:
                break
            assert time.monotonic() < deadline, second.text()
            time.sleep(1)
    report = shown.json()["report"]
    (owner,) = report["owners"]
    assert owner["worker"] == second.name
    complete = [s for s in run_snapshots(env, run) if not s.get("partial")]
    assert [s["id"] for s in complete] == [owner["snapshot"]]
    # Resumed: what the checkpoint held was not fetched again.
    mail = owner["services"]["mail"]
    assert mail["items_unchanged"] > 0
    # Nothing lost: the snapshot holds every message of the mailbox.
    expected = tenant.admin.inventory()["users"][upn]["messages"]
    listing = env.run("ls", "--json", "--recursive", owner["snapshot"][:16]).json()
    emls = [e for e in listing if str(e["path"]).endswith(".eml")]
    assert len(emls) == expected


def test_the_run_completes_when_the_broker_restarts_in_the_middle(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, tmp_path: Path
) -> None:
    config = _config(tenant, broker)
    tenant.admin.inject_faults({"kind": "slow", "match": r"/\$value", "delay": 0.05})
    try:
        with workers(env, config, tmp_path, 2):
            client = broker.client()
            client.delete(*client.keys("coffer:run:*") or ["none"])
            proc = env.popen("backup", "--json", COFFER_CONFIG=str(config))
            deadline = time.monotonic() + 120
            while True:
                runs = list(client.scan_iter("coffer:run:*:owners"))
                if runs and client.hlen(runs[-1]) >= 2:
                    break
                assert time.monotonic() < deadline
                time.sleep(0.2)
            broker.restart(down_seconds=2.0)
            out, err = proc.communicate(timeout=300)
    finally:
        tenant.admin.clear_faults()
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert all(o["status"] == "ok" for o in report["owners"])
    complete = [s for s in run_snapshots(env, report["run"]) if not s.get("partial")]
    assert len(complete) == len(report["owners"])
    assert os.environ.get("COFFER_BROKER") is None


def test_a_tenant_wide_restore_is_spread_over_the_workers(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, tmp_path: Path
) -> None:
    config = _config(tenant, broker)
    plain = str(tenant.sim.state_dir / "coffer.toml")
    env.run("backup", "--service", "mail", COFFER_CONFIG=plain)
    target = "bianca.novak@contoso.onmicrosoft.com"
    restore = ("restore", "latest", "--service", "mail", "--to", f"user:{target}/From the cluster")
    with workers(env, config, tmp_path, 2) as started:
        result = env.run(*restore, "--json", check=False, COFFER_CONFIG=str(config))
    report = result.json()
    assert result.code == 0, report.get("summary")
    owners = [o for o in report["owners"] if o["kind"] == "users"]
    assert len(owners) >= 3
    assert {o["worker"] for o in owners} <= {w.name for w in started}
    assert len({o["worker"] for o in owners}) == 2
    assert report["totals"]["created"] > 0
    assert report["totals"]["failed"] == 0
    # Each owner went to its own folder under the target's, as in one process.
    folders = {o["target"] for o in owners}
    assert len(folders) == len(owners)
    assert all(f.startswith(f"{target}/From the cluster/") for f in folders)
    # Run again: everything is found in place, nothing is created twice.
    with workers(env, config, tmp_path / "again", 1):
        again = env.run(*restore, "--json", COFFER_CONFIG=str(config)).json()
    assert again["totals"]["created"] == 0
    assert again["totals"]["skipped"] == report["totals"]["created"]


def test_sigterm_lets_the_running_owner_finish_then_the_worker_exits_0(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer, tmp_path: Path
) -> None:
    config = _config(tenant, broker)
    upn = "bianca.obrien@contoso.onmicrosoft.com"
    client = broker.client()
    with slow_owner_run(env, tenant, config, tmp_path / "worker.log", upn, 0.5) as slow:
        worker, run = slow.worker, slow.run
        deadline = time.monotonic() + 60
        while not client.hlen(f"coffer:run:{run}:active"):
            assert time.monotonic() < deadline, worker.text()
            time.sleep(0.1)
        time.sleep(1.0)  # well inside the owner (14 messages at 0.5 s)
        assert worker.stop(timeout=120) == 0
    outcome = json.loads(client.hget(f"coffer:run:{run}:owners", f"users:{slow.user_id}") or "{}")
    assert outcome.get("status") == "ok", worker.text()
    assert outcome["snapshot"]
    assert "stopped" in worker.text()
