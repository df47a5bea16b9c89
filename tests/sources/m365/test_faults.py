"""When Graph misbehaves: throttling storms, dropped connections, failing owners,
users without a mailbox, and the Teams protected API refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sources.m365.support.helpers import compare, dump, expected_counts, snapshot_counts
from tests.sources.m365.support.tenant import Setup, make_setup

pytestmark = pytest.mark.sim


def _complete(setup: Setup) -> None:
    expected = expected_counts(setup.tenant.admin.inventory())
    assert compare(snapshot_counts(setup.repo, setup.cache), expected) == []


def test_storm_on_a_mailbox_and_dropped_connections(setup: Setup) -> None:
    """Half the mail requests of one mailbox answer 429 (Retry-After 1), and 5% of all
    requests lose their connection, before or in the middle of the answer."""
    admin = setup.tenant.admin
    user = next(u for u in admin.users() if u["purpose"] == "user")
    admin.inject_faults(
        {
            "kind": "429",
            "rate": 0.5,
            "retry_after": 1,
            "match": f"/users/{user['id']}/(messages|mailFolders)",
        },
        {"kind": "drop", "rate": 0.025},
        {"kind": "drop_mid", "rate": 0.025},
        seed=11,
    )
    report = setup.backup()
    fired = {rule["kind"]: rule["fired"] for rule in admin.faults()}
    admin.clear_faults()
    assert report["status"] == "ok", dump(report)
    assert fired["429"] >= 5
    assert fired["drop"] + fired["drop_mid"] > 3
    owner = next(o for o in report["owners"] if o["name"] == user["userPrincipalName"])
    assert owner["throttled_seconds"] > 0
    other = next(o for o in report["owners"] if o["kind"] == "sites")
    assert other["throttled_seconds"] == 0  # only the throttled mailbox waited
    _complete(setup)


@pytest.fixture
def throttled(tmp_path: Path) -> Iterator[Setup]:
    """Microsoft's rate limits, scaled down so that a small tenant reaches them."""
    yield from make_setup(tmp_path, throttling=0.1)


def test_scaled_down_rate_limits(throttled: Setup) -> None:
    report = throttled.backup()
    stats = throttled.tenant.admin.stats()
    assert report["status"] == "ok", dump(report)
    assert stats["by_status"].get("429", 0) > 0
    assert report["totals"]["throttled_seconds"] > 0
    _complete(throttled)


@pytest.mark.slow
def test_storm_everywhere_with_dropped_connections(tmp_path: Path) -> None:
    """The issue's storm: 50% of all requests 429, 5% dropped connections."""
    for setup in make_setup(tmp_path, seed=5):
        setup.tenant.admin.inject_faults(
            {"kind": "429", "rate": 0.5, "retry_after": 1},
            {"kind": "503", "rate": 0.02, "retry_after": 1},
            {"kind": "drop", "rate": 0.025},
            {"kind": "drop_mid", "rate": 0.025},
            seed=5,
        )
        report = setup.backup()
        setup.tenant.admin.clear_faults()
        assert report["status"] == "ok", dump(report)
        _complete(setup)


def test_a_failing_owner_does_not_fail_the_others(setup: Setup) -> None:
    admin = setup.tenant.admin
    victim = next(u for u in admin.users() if u["purpose"] == "user")
    admin.inject_faults({"kind": "500", "rate": 1.0, "match": f"/users/{victim['id']}/"})
    report = setup.backup()
    admin.clear_faults()
    assert report["exit_code"] == 3
    owners = {o["name"]: o for o in report["owners"]}
    failed = owners.pop(victim["userPrincipalName"])
    assert failed["status"] == "failed"
    assert failed["snapshot"] is None
    assert all(o["status"] == "ok" and o["snapshot"] for o in owners.values()), dump(report)
    counts = snapshot_counts(setup.repo, setup.cache)
    expected = expected_counts(admin.inventory())
    expected.pop(victim["userPrincipalName"])
    assert compare(counts, expected) == []


def test_users_without_mailbox_or_licence_are_not_failures(setup: Setup) -> None:
    admin = setup.tenant.admin
    user = next(u for u in admin.users() if u["purpose"] == "user")
    admin.switches(unlicensed=[user["userPrincipalName"]])
    report = setup.backup()
    assert report["exit_code"] == 0, dump(report)
    owner = next(o for o in report["owners"] if o["name"] == user["userPrincipalName"])
    assert owner["status"] == "not_applicable"
    assert owner["services"]["mail"]["status"] == "not_applicable"
    admin.switches(licensed=[user["userPrincipalName"]])
    report = setup.backup()
    assert report["exit_code"] == 0
    _complete(setup)


def test_teams_protected_api_refused_is_reported_once(setup: Setup) -> None:
    admin = setup.tenant.admin
    admin.switches(protected_api_approved=False)
    report = setup.backup()
    assert report["exit_code"] == 3
    assert len(report["problems"]) == 1
    assert "ChannelMessage.Read.All" in report["problems"][0]
    teams = [o for o in report["owners"] if o["kind"] == "teams"]
    assert teams
    assert all(o["services"]["teams"]["status"] == "partial" for o in teams)
    assert all(o["snapshot"] for o in teams)  # the team and its channels are kept
    assert all(o["status"] == "ok" for o in report["owners"] if o["kind"] != "teams")
    stats = admin.stats()
    refused = sum(
        n for name, n in stats["by_endpoint"].items() if "/messages" in name and "teams" in name
    )
    assert refused == 1  # asked once, then not again in this run


def test_expired_download_urls_are_renewed(setup: Setup) -> None:
    """Download URLs live 2 s; the first two downloads wait 2.5 s before being served."""
    admin = setup.tenant.admin
    admin.settings(download_url_lifetime=2)
    admin.inject_faults({"kind": "slow", "delay": 2.5, "match": "/_dl/", "count": 2})
    user = next(u for u in admin.users() if u["purpose"] == "user" and u["drive"])
    report = setup.backup(users=[user["userPrincipalName"]], services=["onedrive"])
    admin.clear_faults()
    assert report["status"] == "ok", dump(report)
    stats = admin.stats()
    assert stats["by_status"].get("401", 0) >= 2  # the expired URLs
    counts = snapshot_counts(setup.repo, setup.cache)[user["userPrincipalName"]]
    expected = expected_counts(admin.inventory())[user["userPrincipalName"]]
    assert counts["driveFiles"] == expected["driveFiles"]
    assert counts["driveBytes"] == expected["driveBytes"]


def _a_users_first_message(setup: Setup) -> tuple[dict[str, Any], str]:
    """A user, and the ID (immutable, as Coffer asks for them) of its inbox's first message."""
    user = next(u for u in setup.tenant.admin.users() if u["purpose"] == "user")
    inbox = (
        setup.tenant.graph()
        .get(
            setup.tenant.url(f"/users/{user['id']}/mailFolders/inbox/messages"),
            headers={"Prefer": 'IdType="ImmutableId"'},
        )
        .json()
    )
    return user, str(inbox["value"][0]["id"])


def test_a_bad_item_is_recorded_with_its_reason(setup: Setup) -> None:
    """One message whose MIME never comes (5xx every time): recorded as a failed item
    (failures.py), listed, exit code 3; everything else is backed up, and the next
    run retries it and picks it up (its record goes)."""
    admin = setup.tenant.admin
    user, victim = _a_users_first_message(setup)
    admin.inject_faults({"kind": "500", "rate": 1.0, "match": f"{victim}/\\$value"})
    report = setup.backup()
    admin.clear_faults()
    assert report["exit_code"] == 3
    owner = next(o for o in report["owners"] if o["name"] == user["userPrincipalName"])
    mail = owner["services"]["mail"]
    assert mail["status"] == "partial"
    assert mail["items_failed_new"] == 1
    assert mail["failed"][0]["code"] == "generalException"
    assert mail["failed"][0]["status"] == 500
    assert owner["snapshot"]
    assert all(o["status"] in ("ok", "not_applicable") for o in report["owners"] if o is not owner)
    again = setup.backup()
    assert again["exit_code"] == 0, dump(again)
    assert again["failed_items"] == []
    _complete(setup)


def test_a_message_whose_connection_drops_four_times_is_still_backed_up(setup: Setup) -> None:
    """A lost connection says nothing about the message asked for: it is retried as
    any request is (8 tries), not only as often as a message's own server errors
    (ITEM_ATTEMPTS, 3). With three tries, 5% of dropped connections skipped about
    one download in 8,000 (the storm test above failed in CI with one item skipped)."""
    admin = setup.tenant.admin
    _user, victim = _a_users_first_message(setup)
    admin.inject_faults(
        {"kind": "drop", "rate": 1.0, "count": 2, "match": f"{victim}/\\$value"},
        {"kind": "drop_mid", "rate": 1.0, "count": 2, "match": f"{victim}/\\$value"},
    )
    report = setup.backup()
    fired = sum(rule["fired"] for rule in admin.faults())
    admin.clear_faults()
    assert fired == 4
    assert report["status"] == "ok", dump(report)
    assert report["failed_items"] == []
    _complete(setup)
