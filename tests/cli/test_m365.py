"""``coffer backup`` of a simulated tenant through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.support.helpers import init, new_env
from tools.graphsim.testing import running_tenant

pytestmark = pytest.mark.sim


def test_config_and_repo_from_the_environment_are_enough(tmp_path: Path) -> None:
    env = new_env(tmp_path / "coffer")
    init(env)
    with running_tenant(tmp_path / "sim", seed=4, throttling=False) as tenant:
        config = str(tmp_path / "sim" / "coffer.toml")
        secret = tenant.info.client_secret
        first = env.run("-vv", "backup", COFFER_CONFIG=config)
        assert "owners (" in first.err
        assert secret not in first.err + first.out
        again = env.run("backup", "--json", COFFER_CONFIG=config)
        report = json.loads(again.out)
        assert report["format"] == "coffer-backup-report"
        assert report["exit_code"] == 0
        assert report["totals"]["items_new"] == 0
        assert report["report"].startswith("reports/backup/")
        only = env.run(
            "backup", "--json", "--service", "mail", "--user", "info@*", COFFER_CONFIG=config
        ).json()
        assert [o["name"] for o in only["owners"]] == ["info@contoso.onmicrosoft.com"]
        assert list(only["owners"][0]["services"]) == ["mail"]
        listing = env.run("snapshots", "--json").json()
        kinds = {s["owner_kind"] for s in listing}
        assert {"users", "sites", "teams", "groups"} <= kinds


def test_configuration_errors_are_one_line(tmp_path: Path) -> None:
    env = new_env(tmp_path / "coffer")
    init(env)
    config = tmp_path / "coffer.toml"
    config.write_text('[tenant]\ntenant_id = "t"\nclient_id = "c"\n')
    result = env.run("backup", check=False, COFFER_CONFIG=str(config))
    assert result.code == 16
    assert result.err.count("\n") == 1
    assert "client_secret_file" in result.err
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    result = env.run("backup", check=False, COFFER_CONFIG=str(empty))
    assert result.code == 16
    assert result.err.count("\n") == 1
    assert "[tenant]" in result.err
