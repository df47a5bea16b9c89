"""Immutable IDs apply per request: with the simulator answering in the default ID
format to any request without ``Prefer: IdType="ImmutableId"`` (the switch
``strict_immutable_ids``), a restore over an unchanged owner, and over items
changed since the backup, creates nothing with ``--on-conflict skip``: the target
is listed in the format the backup recorded, so each item finds itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sources.m365.support.restoring import Graph, failures, restore, totals
from tests.sources.m365.support.tenant import Setup, make_setup

pytestmark = pytest.mark.sim


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[Setup]:
    for setup in make_setup(tmp_path, switches={"strict_immutable_ids": True}):
        assert setup.backup()["status"] == "ok"
        yield setup


def test_skip_restore_of_an_unchanged_owner_creates_nothing(strict: Setup) -> None:
    g = Graph(strict.tenant)
    user = g.user()
    uid, upn = user["id"], user["userPrincipalName"]
    contacts = g.all(f"/users/{uid}/contacts")
    events = g.all(f"/users/{uid}/events")
    assert contacts
    assert events

    unchanged = restore(strict.repo, strict.cache, strict.state, owner=upn)
    assert failures(unchanged) == []
    assert totals(unchanged)["created"] == 0
    assert totals(unchanged)["kept_both"] == 0
    assert totals(unchanged)["skipped"] > 0

    # Items changed since the backup are the same items in another version: skip
    # leaves them, it does not add copies beside them.
    g.patch(f"/users/{uid}/contacts/{contacts[0]['id']}", {"jobTitle": "Changed afterwards"})
    g.patch(f"/users/{uid}/events/{events[0]['id']}", {"categories": ["Changed afterwards"]})
    changed = restore(strict.repo, strict.cache, strict.state, owner=upn)
    assert failures(changed) == []
    assert totals(changed)["created"] == 0
    assert totals(changed)["kept_both"] == 0
    services = changed["owners"][0]["services"]
    for name in ("contacts", "calendar"):
        assert any("another version" in r for r in services[name]["skipped_reasons"]), name
    assert len(g.all(f"/users/{uid}/contacts")) == len(contacts)
    assert len(g.all(f"/users/{uid}/events")) == len(events)


ALL_SWITCHES = {
    "strict_immutable_ids": True,
    "evolvable_enums": True,
    "list_write_shape": True,
    "request_size_limit": True,
    "max_message_size": 150 * 1024 * 1024,
    "enforce_delegated_scopes": True,
}


def test_with_every_restore_behaviour_on_an_unchanged_tenant_gets_nothing_new(
    tmp_path: Path,
) -> None:
    for setup in make_setup(tmp_path, switches=ALL_SWITCHES):
        assert setup.backup()["status"] == "ok"
        report = restore(setup.repo, setup.cache, setup.state)
        assert failures(report) == []
        assert totals(report)["created"] == 0
        assert totals(report)["kept_both"] == 0
        assert totals(report)["replaced"] == 0
        assert totals(report)["skipped"] > 0
