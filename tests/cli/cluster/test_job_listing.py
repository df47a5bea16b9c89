"""A cluster job costs the same at 10 owners or 10,000: it is told its owner's
snapshots and does not list the repository (issue 15's benchmark found each job
decoding every snapshot of every owner: O(owners^2) CPU per run).

In-process jobs against the real parts: redis-server, the simulated tenant over
HTTPS, a real repository. ``Repository.list_snapshots`` is wrapped to count its
calls (it still lists: nothing is faked).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cli.app import App
from cli.cluster.broker import redis_client
from cli.cluster.jobs import BackupMessage, WorkerContext, owner_snapshot_hints, run_backup_job
from cli.cluster.restorejobs import RestoreMessage, run_restore_job
from cli.cluster.runstate import RunState, owner_field
from cli.cluster.settings import ClusterSettings, cluster_settings
from sources.m365 import from_table
from sources.m365.restore import ItemQuery, RestoreTarget
from sources.m365.restore.target import ORIGINAL
from store import Repository, Snapshot
from tests.cli.cluster.kit import RedisServer, cluster_config
from tests.cli.support.helpers import CofferEnv
from tools.graphsim.testing import RunningTenant

UPN = "alex.kim@contoso.onmicrosoft.com"


def _app(env: CofferEnv, config: Path, cache: str = "worker-cache") -> App:
    return App(
        repo_option=str(env.repo),
        config_option=config,
        password_file_option=env.password_file,
        cache_dir_option=env.root / cache,
        quiet=True,
    )


def _tenant_id(app: App) -> str:
    table = app.config.section("tenant")
    return from_table(table, app.config.base_dir).connection.tenant_id


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = Repository.list_snapshots

    def counted(self: Repository) -> list[Snapshot]:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(Repository, "list_snapshots", counted)
    return calls


def _the_owner(repo: Repository) -> Snapshot:
    mine = [s for s in repo.list_snapshots() if s.owner.name == UPN and not s.partial]
    assert mine, "the one-process backup made no snapshot of the owner"
    return max(mine, key=lambda s: s.time_ns)


def _backed_up(
    env: CofferEnv, tenant: RunningTenant, broker: RedisServer
) -> tuple[App, ClusterSettings, WorkerContext]:
    """The owner backed up by one process; a worker's context on the same repository."""
    config = cluster_config(tenant.sim.state_dir, broker)
    plain = str(tenant.sim.state_dir / "coffer.toml")
    env.run("backup", "--user", UPN, "--service", "mail", COFFER_CONFIG=plain)
    app = _app(env, config)
    settings = cluster_settings(app.config)
    assert settings is not None
    return app, settings, WorkerContext(app, settings, redis_client(settings))


def test_a_backup_job_told_its_snapshots_lists_nothing_and_builds_on_the_parent(
    env: CofferEnv,
    tenant: RunningTenant,
    broker: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, settings, ctx = _backed_up(env, tenant, broker)
    try:
        repo = app.open_repo()
        parent = _the_owner(repo)
        told = owner_snapshot_hints(repo.list_snapshots())[parent.owner.identity]
        assert told == (parent.id_hex,)
        calls = _counting(monkeypatch)

        def message(run: str) -> BackupMessage:
            owner = parent.owner
            return BackupMessage(
                run, time.time_ns(), _tenant_id(app), owner.kind, owner.key,
                owner.name, ("mail",), 300.0, 0.0, told,
            )  # fmt: skip

        run = os.urandom(16).hex()
        outcome = run_backup_job(ctx, message(run).to_map())
        assert outcome["status"] == "ok", outcome
        assert calls == [], "a job told its owner's snapshots listed the repository"
        monkeypatch.undo()
        made = next(s for s in repo.list_snapshots() if s.id_hex == outcome["snapshot"])
        assert made.parent == parent.snapshot_id
        # Incremental on the told parent (its delta state): nothing fetched again.
        assert parent.stats["items_new"] > 0
        assert made.stats["items_new"] == 0

    finally:
        ctx.close()
    # A second start of an owner in one run (a redelivery, a retry) may have a
    # checkpoint or a commit the names do not include: it lists. On another
    # machine (its own cache), so that nothing else makes it list.
    other_app = _app(env, cluster_config(tenant.sim.state_dir, broker), "other-worker-cache")
    other = WorkerContext(other_app, settings, redis_client(settings))
    try:
        again = os.urandom(16).hex()
        RunState(other.redis, again, 3600).owner_started(
            owner_field(parent.owner.kind, parent.owner.key), "first-host:1"
        )
        calls = _counting(monkeypatch)
        outcome = run_backup_job(other, message(again).to_map())
        assert outcome["status"] == "ok", outcome
        assert calls, "a second start of the owner trusted the names instead of listing"
    finally:
        other.close()


def test_a_restore_job_loads_its_one_snapshot_without_a_listing(
    env: CofferEnv,
    tenant: RunningTenant,
    broker: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, _settings, ctx = _backed_up(env, tenant, broker)
    try:
        snap = _the_owner(app.open_repo())
        calls = _counting(monkeypatch)
        message = RestoreMessage(
            os.urandom(16).hex(), _tenant_id(app), snap.id_hex, snap.owner.kind,
            snap.owner.key, snap.owner.name, RestoreTarget(ORIGINAL, "", (), False),
            ItemQuery(services=("mail",)), "skip", True,
        )  # fmt: skip
        outcome = run_restore_job(ctx, message.to_map())
        assert outcome["status"] == "ok", outcome
        assert calls == [], "a restore job listed the repository to find one snapshot"
    finally:
        ctx.close()
