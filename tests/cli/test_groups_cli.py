"""Microsoft 365 group mailboxes through the real command line: selection and bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.support.helpers import init, new_env
from tools.graphsim.testing import running_tenant

pytestmark = pytest.mark.sim


def test_m365_groups_selects_the_groups_and_calendar_years_is_bounded(tmp_path: Path) -> None:
    env = new_env(tmp_path / "coffer")
    init(env)
    with running_tenant(tmp_path / "sim", seed=4, throttling=False):
        generated = (tmp_path / "sim" / "coffer.toml").read_text()
        config = tmp_path / "sim" / "groups.toml"  # beside the generated one: relative paths

        def configure(extra: str) -> str:
            config.write_text(
                generated.replace("[tenant]\n", f'[tenant]\nservices = ["groups"]\n{extra}', 1)
            )
            return str(config)

        chosen = configure('m365_groups = ["Marketing*"]\ngroup_calendar_years = 1\n')
        report = env.run("backup", "--json", COFFER_CONFIG=chosen).json()
        assert report["exit_code"] == 0
        names = [(o["kind"], o["name"]) for o in report["owners"]]
        assert names
        assert all(kind == "groups" for kind, _ in names)
        assert all(name.startswith("Marketing Announcements [") for _, name in names), names
        refused = env.run(
            "backup", check=False, COFFER_CONFIG=configure("group_calendar_years = 11\n")
        )
        assert refused.code == 16
        assert refused.err.count("\n") == 1
        assert "group_calendar_years" in refused.err
