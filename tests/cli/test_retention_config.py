"""The [retention] table, and after-backup through the ``coffer backup`` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.errors import ConfigError
from cli.flows.afterbackup import forget_after_backup
from cli.settings.config import load_config
from cli.settings.retention import retention_from_config
from store import UNLIMITED, Duration, RetentionPolicy
from tests.cli.support.helpers import CofferEnv, init, make_tree, new_env
from tests.store.support.ops_helpers import ALICE, BOB, DAY, SITE, T0, backup, make_repo


def _config(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "coffer.toml"
    path.write_text(text)
    return load_config(path)


def test_default_and_per_owner_policies(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        """
[retention]
keep-daily = 7
keep-weekly = "unlimited"
keep-deleted-within = "90d"
after-backup = true

[retention.owners."sites/*"]
keep-monthly = 24

[retention.owners."*@example.com"]
keep-last = 3
""",
    )
    retention = retention_from_config(config)
    assert retention is not None
    assert retention.after_backup
    assert retention.policy_for(ALICE) == RetentionPolicy(last=3)
    assert retention.policy_for(SITE) == RetentionPolicy(monthly=24)
    other = ALICE.__class__("teams", "t1", "Team One")
    assert retention.policy_for(other) == RetentionPolicy(
        daily=7, weekly=UNLIMITED, deleted_within=Duration(days=90)
    )


@pytest.mark.parametrize(
    "text",
    [
        "[retention]\nkeep-dayly = 3\n",
        "[retention]\nkeep-daily = -1\n",
        '[retention]\nkeep-within = "soon"\n',
        '[retention]\nkeep-deleted-within = "30d"\n',  # keeps nothing by itself
        '[retention]\nafter-backup = "yes"\nkeep-last = 1\n',
        "[retention]\nkeep-last = true\n",
    ],
)
def test_bad_tables_are_configuration_errors(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        retention_from_config(_config(tmp_path, text))


def test_forget_after_backup_touches_only_the_owners_of_the_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    for day in range(3):
        backup(repo, ALICE, {"a": bytes([day])}, time_ns=T0 + day * DAY)
        backup(repo, BOB, {"b": bytes([day])}, time_ns=T0 + day * DAY + 1)
    off = _config(tmp_path, "[retention]\nkeep-last = 1\n")
    assert forget_after_backup(repo, off, [ALICE]) is None  # after-backup not set
    on = _config(tmp_path, "[retention]\nkeep-last = 1\nafter-backup = true\n")
    outcome = forget_after_backup(repo, on, [ALICE], now_ns=T0 + 5 * DAY)
    assert outcome is not None
    plan, report = outcome
    assert report is not None
    assert len(plan.removed) == 2
    counts = {}
    for snap in repo.list_snapshots():
        counts[snap.owner.name] = counts.get(snap.owner.name, 0) + 1
    assert counts == {ALICE.name: 1, BOB.name: 3}


def _snapshot_ids(env: CofferEnv) -> dict[str, list[str]]:
    by_owner: dict[str, list[str]] = {}
    for snap in env.run("snapshots", "--json").json():
        by_owner.setdefault(snap["owner_key"], []).append(snap["id"])
    return by_owner


def test_after_backup_through_the_coffer_command_forgets_only_that_runs_owners(
    tmp_path: Path,
) -> None:
    # The bug this pins: after-backup was documented but never called, so two
    # backups with keep-last = 1 left two snapshots.
    env = new_env(tmp_path / "env")
    init(env)
    config = tmp_path / "coffer.toml"
    config.write_text("[retention]\nkeep-last = 1\nafter-backup = true\n")
    first, second = tmp_path / "first", tmp_path / "second"
    make_tree(first, files=3, seed=1)
    make_tree(second, files=3, seed=2)
    env.run("backup", "--path", str(first), "--path", str(second))
    env.run("backup", "--path", str(second))
    before = _snapshot_ids(env)
    assert sorted(len(ids) for ids in before.values()) == [1, 2]
    (first / "added.txt").write_text("new\n")
    out = env.run("-c", str(config), "backup", "--path", str(first), "--json").json()
    [run_snapshot] = [o["snapshot"] for o in out["owners"]]
    [first_key] = [k for k, ids in before.items() if len(ids) == 1]
    assert out["forget"]["removed"] == before[first_key]
    after = _snapshot_ids(env)
    # The run's owner keeps only its newest snapshot; the other owner was not
    # in the run and keeps both of its own, though the policy says keep-last 1.
    assert after[first_key] == [run_snapshot]
    [second_key] = [k for k in before if k != first_key]
    assert after[second_key] == before[second_key]
    # The forget is journalled like `coffer forget`'s, so check accepts it.
    reports = env.run("report", "--kind", "forget", "--json").json()
    assert len(reports) == 1
    env.run("check")


def test_without_after_backup_a_backup_forgets_nothing(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    config = tmp_path / "coffer.toml"
    config.write_text("[retention]\nkeep-last = 1\n")
    folder = tmp_path / "folder"
    make_tree(folder, files=3)
    env.run("-c", str(config), "backup", "--path", str(folder))
    out = env.run("-c", str(config), "backup", "--path", str(folder), "--json").json()
    assert "forget" not in out
    assert [len(ids) for ids in _snapshot_ids(env).values()] == [2]
