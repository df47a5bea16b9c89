"""A schedule backing up a tenant selection of the Microsoft 365 simulator through
``coffer schedule run``: the child finds the tenant's settings and secrets in the
configuration alone, and no secret reaches the hook or the notification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.support.helpers import init, new_env
from tools.graphsim.testing import running_tenant

from .kit import DUMP, python_hook, webhook_receiver

pytestmark = pytest.mark.sim


def test_a_scheduled_tenant_selection_runs_through_the_simulator(tmp_path: Path) -> None:
    env = new_env(tmp_path / "coffer")
    init(env)
    dump = tmp_path / "post.json"
    with (
        running_tenant(tmp_path / "sim", seed=4, throttling=False) as tenant,
        webhook_receiver() as receiver,
    ):
        config = tmp_path / "sim" / "coffer.toml"
        with config.open("a") as handle:
            handle.write(
                f"""
[[notify.webhook]]
name = "teams"
url = "{receiver.url}"

[[schedule]]
name = "info-mail"
cron = "0 2 * * *"
timezone = "Europe/London"
users = ["info@*"]
services = ["mail"]
post = {python_hook(DUMP, str(dump))}
notify = {{ on = ["succeeded"], webhooks = ["teams"] }}
"""
            )
        result = env.run("-c", str(config), "schedule", "run", "info-mail", "--json", check=False)
        secret = tenant.info.client_secret
    assert result.code == 0, result.err
    run = result.json()
    assert run["outcome"] == "succeeded"
    assert run["owners"] == ["users/info@contoso.onmicrosoft.com"]
    snapshots = env.run("snapshots", "--json").json()
    assert [(s["owner_kind"], s["owner"]) for s in snapshots] == [
        ("users", "info@contoso.onmicrosoft.com")
    ]
    hook_env = json.loads(dump.read_text())["env"]
    assert hook_env["COFFER_REPORT"] == run["report"]
    assert all(secret not in value for value in hook_env.values())
    [body] = receiver.bodies
    assert "coffer: backup info-mail succeeded" in body["text"]
    assert secret not in body["text"]
    assert secret not in result.out + result.err
