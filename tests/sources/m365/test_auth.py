"""Signing in: client secret, certificate, a wrong secret, tokens that expire in the
middle of a run, and device-code sign-in for one's own mailbox (real msal, real HTTPS)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from sources.m365 import AuthError, TenantBackup
from tests.sources.m365.support.helpers import (
    compare,
    dump,
    expected_counts,
    open_repo,
    settings_for,
    snapshot_counts,
)
from tests.sources.m365.support.tenant import Setup

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("credential", ["secret", "certificate"])
def test_both_credentials_back_up(setup: Setup, credential: str) -> None:
    if credential == "secret":
        overrides = {"certificate": None, "private_key": None}
    else:
        overrides = {"client_secret_file": None}
    report = setup.backup(services=["teams", "contacts"], **overrides)
    assert report["status"] == "ok", dump(report)
    assert report["tenant"]["auth"] == credential
    assert report["totals"]["items_new"] > 0


def test_a_wrong_secret_fails_in_one_clear_line(setup: Setup) -> None:
    wrong = setup.root / "wrong-secret.txt"
    wrong.write_text("not-the-secret\n")
    repo = open_repo(setup.repo, setup.cache)
    settings = settings_for(
        setup.state, client_secret_file=str(wrong), certificate=None, private_key=None
    )
    with pytest.raises(AuthError) as caught:
        TenantBackup(repo, settings).run()
    repo.close()
    message = str(caught.value)
    assert "invalid_client" in message
    assert "not-the-secret" not in message
    assert "\n" not in message


def test_tokens_expiring_mid_run_are_renewed(setup: Setup) -> None:
    admin = setup.tenant.admin
    stop = threading.Event()

    def expire() -> None:
        while not stop.wait(0.7):
            admin.expire_tokens()

    thread = threading.Thread(target=expire)
    thread.start()
    try:
        report = setup.backup()
    finally:
        stop.set()
        thread.join()
    assert report["status"] == "ok", dump(report)
    assert admin.stats()["by_status"].get("401", 0) > 0
    assert (
        compare(snapshot_counts(setup.repo, setup.cache), expected_counts(admin.inventory())) == []
    )


def test_device_code_sign_in_backs_up_ones_own_data(setup: Setup, tmp_path: Path) -> None:
    admin = setup.tenant.admin
    admin.settings(device_code_interval=1)
    me = next(u for u in admin.users() if u["purpose"] == "user")
    cache_file = tmp_path / "tokens.json"
    settings = settings_for(
        setup.state,
        auth="device_code",
        client_secret_file=None,
        certificate=None,
        private_key=None,
        token_cache=str(cache_file),
    )
    prompts: list[str] = []
    stop = threading.Event()

    def approve() -> None:
        while not stop.wait(0.2):
            for code in admin.device_codes():
                admin.approve_device_code(code["user_code"], me["userPrincipalName"])
                return

    def run() -> dict[str, object]:
        repo = open_repo(setup.repo, setup.cache)
        try:
            return TenantBackup(repo, settings, prompt=prompts.append).run()
        finally:
            repo.close()

    thread = threading.Thread(target=approve)
    thread.start()
    try:
        report = run()
    finally:
        stop.set()
        thread.join()
    assert report["status"] == "ok", dump(report)  # type: ignore[arg-type]
    assert len(prompts) == 1
    assert "code" in prompts[0]
    owners = report["owners"]
    assert [o["name"] for o in owners] == [me["userPrincipalName"]]  # type: ignore[index]
    assert oct(cache_file.stat().st_mode & 0o777) == "0o600"
    # The next run signs in silently from the token cache.
    started = time.monotonic()
    again = run()
    assert again["status"] == "ok"
    assert len(prompts) == 1
    assert time.monotonic() - started < 60
    counts = snapshot_counts(setup.repo, setup.cache)[me["userPrincipalName"]]
    expected = expected_counts(admin.inventory())[me["userPrincipalName"]]
    assert {k: counts.get(k, 0) for k in expected} == expected
