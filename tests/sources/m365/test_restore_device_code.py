"""Restore with ``auth = "device_code"``: the sign-in asks for the write permissions a
restore needs and shows its code. The simulator refuses a delegated write without
the ReadWrite permission (switch ``enforce_delegated_scopes``), as Graph does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from sources.m365.restore import ItemQuery, TenantRestore, parse_target
from store import latest_per_owner
from tests.sources.m365.support.helpers import open_repo, settings_for
from tests.sources.m365.support.restoring import Graph, failures, totals
from tests.sources.m365.support.tenant import Setup, make_setup

pytestmark = pytest.mark.sim


@pytest.fixture
def enforced(tmp_path: Path) -> Iterator[Setup]:
    for setup in make_setup(tmp_path, switches={"enforce_delegated_scopes": True}):
        assert setup.backup()["status"] == "ok"
        yield setup


def test_device_code_restore_asks_write_permissions_and_shows_the_code(
    enforced: Setup, tmp_path: Path
) -> None:
    admin = enforced.tenant.admin
    admin.settings(device_code_interval=1)
    g = Graph(enforced.tenant)
    me = g.user()
    uid, upn = me["id"], me["userPrincipalName"]
    contacts = g.all(f"/users/{uid}/contacts")
    gone = contacts[0]
    g.delete(f"/users/{uid}/contacts/{gone['id']}")
    settings = settings_for(
        enforced.state,
        auth="device_code",
        client_secret_file=None,
        certificate=None,
        private_key=None,
        token_cache=str(tmp_path / "tokens.json"),
    )
    prompts: list[str] = []
    asked: list[list[str]] = []
    stop = threading.Event()

    def approve() -> None:
        while not stop.wait(0.2):
            for code in admin.device_codes():
                asked.append(list(code["scopes"]))
                admin.approve_device_code(code["user_code"], upn)
                return

    thread = threading.Thread(target=approve)
    thread.start()
    repo = open_repo(enforced.repo, enforced.cache)
    try:
        chosen = [s for s in latest_per_owner(repo.list_snapshots()) if s.owner.name == upn]
        report: dict[str, Any] = TenantRestore(
            repo,
            settings,
            chosen,
            ItemQuery(services=("contacts",)),
            parse_target("original"),
            prompt=prompts.append,
        ).run()
    finally:
        stop.set()
        thread.join()
        repo.close()
    assert failures(report) == []
    assert totals(report)["created"] == 1
    assert len(prompts) == 1
    assert "code" in prompts[0]
    assert asked
    assert any(s.endswith("Contacts.ReadWrite") for s in asked[0])
    assert len(g.all(f"/users/{uid}/contacts")) == len(contacts)


def test_a_read_only_delegated_token_cannot_write(enforced: Setup) -> None:
    """The switch itself: the token of a backup sign-in (read permissions) is refused
    on a write, and one with Contacts.ReadWrite is not."""
    admin = enforced.tenant.admin
    me = Graph(enforced.tenant).user()
    session = enforced.tenant.session()
    authority = enforced.tenant.info.authority
    results = {}
    for scope in ("Contacts.Read", "Contacts.ReadWrite"):
        start = session.post(
            f"{authority}/oauth2/v2.0/devicecode",
            data={"client_id": enforced.tenant.info.client_id, "scope": f"{scope} offline_access"},
            timeout=30,
        ).json()
        admin.approve_device_code(start["user_code"], me["userPrincipalName"])
        token = session.post(
            f"{authority}/oauth2/v2.0/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": enforced.tenant.info.client_id,
                "device_code": start["device_code"],
            },
            timeout=30,
        ).json()["access_token"]
        assert scope in jwt.decode(token, options={"verify_signature": False})["scp"]
        resp = session.post(
            enforced.tenant.url(f"/users/{me['id']}/contacts"),
            json={"givenName": "Scoped"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        results[scope] = resp.status_code
    assert results == {"Contacts.Read": 403, "Contacts.ReadWrite": 201}
