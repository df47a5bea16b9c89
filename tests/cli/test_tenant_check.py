"""``coffer tenant check`` against the simulated tenant: permissions, consent, licences.

Each test sets the simulator's switches it needs (granted application permissions,
protected-API approval, licences) and restores the healthy tenant afterwards, so the
tests do not depend on their order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support.helpers import CofferEnv, Result, new_env
from tools.graphsim.testing import RunningTenant, running_tenant
from tools.graphsim.tokens import APP_ROLES

pytestmark = pytest.mark.sim

SERVICES = ["mail", "contacts", "calendar", "onedrive", "sharepoint", "teams", "groups"]


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTenant]:
    with running_tenant(tmp_path_factory.mktemp("sim"), seed=11, throttling=False) as running:
        yield running


@pytest.fixture
def healthy(tenant: RunningTenant) -> Iterator[RunningTenant]:
    """The tenant as generated: every permission granted, approved, licensed."""

    def reset() -> None:
        users = [u["id"] for u in tenant.admin.users()]
        tenant.admin.switches(
            app_roles=list(APP_ROLES), protected_api_approved=True, licensed=users
        )
        tenant.admin.expire_tokens()  # tokens carry the roles granted when issued

    reset()
    yield tenant
    reset()


def check(env: CofferEnv, tenant: RunningTenant, *args: str) -> tuple[Result, dict[str, Any]]:
    config = str(tenant.info.state_dir / "coffer.toml")
    result = env.run("tenant", "check", "--json", *args, check=False, COFFER_CONFIG=config)
    return result, json.loads(result.out)


def test_a_healthy_tenant_is_ready_and_users_without_a_mailbox_are_not_applicable(
    tmp_path: Path, healthy: RunningTenant
) -> None:
    env = new_env(tmp_path / "coffer")  # no repository is created: none is needed
    result, report = check(env, healthy)
    assert result.code == 0, result.err
    assert report["ok"] is True
    assert set(report["services"]) == set(SERVICES)
    for name in SERVICES:
        assert report["services"][name]["status"] == "ok", (name, report["services"][name])
    assert "Mail.ReadWrite" in report["granted_permissions"]
    no_mailbox = {
        u["userPrincipalName"]
        for u in healthy.admin.users()
        if not u.get("mailbox") and u.get("userType", "Member") != "Guest"
    }
    assert no_mailbox, "the generated tenant has a user without a mailbox"
    assert no_mailbox <= set(report["services"]["mail"]["not_applicable"])
    assert report["users_selected"] >= len(no_mailbox)
    assert report["throttling"]["requests"] > 0
    assert not (tmp_path / "coffer" / "repo").exists()


def test_a_missing_mail_permission_is_named_and_fails_the_check(
    tmp_path: Path, healthy: RunningTenant
) -> None:
    healthy.admin.switches(revoke_roles=["Mail.Read", "Mail.ReadWrite"])
    env = new_env(tmp_path / "coffer")
    result, report = check(env, healthy)
    assert result.code == 3
    mail = report["services"]["mail"]
    assert mail["status"] == "missing_permission"
    assert mail["permissions_needed"] == ["Mail.Read"]
    assert "ErrorAccessDenied" in mail["message"]
    assert "Mail.ReadWrite" not in report["granted_permissions"]
    for other in ("contacts", "calendar", "onedrive", "sharepoint", "teams", "groups"):
        assert report["services"][other]["status"] == "ok", other
    human = env.run(
        "tenant",
        "check",
        check=False,
        COFFER_CONFIG=str(healthy.info.state_dir / "coffer.toml"),
    )
    assert human.code == 3
    assert "Mail.Read" in human.out
    assert "not ready" in human.out


def test_checking_only_other_services_passes_without_the_missing_permission(
    tmp_path: Path, healthy: RunningTenant
) -> None:
    healthy.admin.switches(revoke_roles=["Mail.Read", "Mail.ReadWrite"])
    env = new_env(tmp_path / "coffer")
    result, report = check(env, healthy, "--service", "contacts", "--service", "onedrive")
    assert result.code == 0, report
    assert report["services"]["mail"]["status"] == "not_configured"
    assert report["services"]["contacts"]["status"] == "ok"


def test_teams_protected_api_not_approved_is_told_apart_from_a_missing_permission(
    tmp_path: Path, healthy: RunningTenant
) -> None:
    healthy.admin.switches(protected_api_approved=False)
    env = new_env(tmp_path / "coffer")
    result, report = check(env, healthy)
    assert result.code == 3
    teams = report["services"]["teams"]
    assert teams["status"] == "not_approved"
    assert "teams-protected-apis" in teams["message"]
    healthy.admin.switches(protected_api_approved=True, revoke_roles=["ChannelMessage.Read.All"])
    healthy.admin.expire_tokens()
    result, report = check(env, healthy)
    assert result.code == 3
    assert report["services"]["teams"]["status"] == "missing_permission"
    assert "Missing role permissions" in report["services"]["teams"]["message"]


def test_sharepoint_and_onedrive_without_file_permissions(
    tmp_path: Path, healthy: RunningTenant
) -> None:
    healthy.admin.switches(revoke_roles=["Files.ReadWrite.All", "Sites.ReadWrite.All"])
    env = new_env(tmp_path / "coffer")
    result, report = check(env, healthy)
    assert result.code == 3
    assert report["services"]["onedrive"]["status"] == "missing_permission"
    assert report["services"]["sharepoint"]["status"] == "missing_permission"
    assert report["services"]["mail"]["status"] == "ok"


def test_a_user_without_licences_is_not_applicable_not_a_failure(
    tmp_path: Path, healthy: RunningTenant
) -> None:
    users = [u for u in healthy.admin.users() if u.get("mailbox") and u.get("drive")]
    victim = users[0]
    healthy.admin.switches(unlicensed=[victim["id"]])
    env = new_env(tmp_path / "coffer")
    result, report = check(env, healthy)
    assert result.code == 0, report
    upn = victim["userPrincipalName"]
    assert upn in report["services"]["mail"]["not_applicable"]
    assert upn in report["services"]["onedrive"]["not_applicable"]


def test_without_directory_permissions_the_user_services_cannot_be_checked(
    tmp_path: Path, healthy: RunningTenant
) -> None:
    healthy.admin.switches(revoke_roles=["User.Read.All"])
    env = new_env(tmp_path / "coffer")
    result, report = check(env, healthy, "--service", "mail")
    assert result.code == 3
    assert report["directory"]["status"] == "missing_permission"
    assert "Authorization_RequestDenied" in report["directory"]["message"]
    assert report["services"]["mail"]["status"] == "error"


def test_a_wrong_secret_is_one_line_and_exit_1(tmp_path: Path, healthy: RunningTenant) -> None:
    state = healthy.info.state_dir
    secret = tmp_path / "wrong-secret.txt"
    secret.write_text("not-the-secret\n")
    secret.chmod(0o600)
    # Beside the generated configuration, whose paths are relative to its folder.
    config = state / f"wrong-secret-{tmp_path.name}.toml"
    lines = []
    for line in (state / "coffer.toml").read_text().splitlines():
        if line.startswith(("credential", "certificate", "private_key", "client_secret_file")):
            continue
        lines.append(line)
        if line.strip() == "[tenant]":
            lines.append(f'client_secret_file = "{secret}"')
            lines.append('credential = "secret"')
    config.write_text("\n".join(lines) + "\n")
    env = new_env(tmp_path / "coffer")
    result = env.run("tenant", "check", check=False, COFFER_CONFIG=str(config))
    assert result.code == 1, (result.out, result.err)
    assert result.err.count("\n") == 1
    assert "not-the-secret" not in result.err + result.out


def test_groups_without_the_conversation_permission(tmp_path: Path, healthy: RunningTenant) -> None:
    # Group.Read.All also reads conversations (group-list-conversations.md): both go.
    healthy.admin.switches(revoke_roles=["Group-Conversation.Read.All", "Group.Read.All"])
    healthy.admin.switches(grant_roles=["GroupMember.Read.All"])  # listing groups still works
    env = new_env(tmp_path / "coffer")
    result, report = check(env, healthy)
    assert result.code == 3
    groups = report["services"]["groups"]
    assert groups["status"] == "missing_permission", groups
    assert "ErrorAccessDenied" in groups["message"]
    assert "Group-Conversation.Read.All" in groups["permissions_needed"]
    assert groups["owners_checked"] >= 3
    assert report["services"]["teams"]["status"] == "ok"
