"""Evolvable enums: with the simulator's switch ``evolvable_enums`` on, a shared
channel reads as ``unknownFutureValue`` to a request without ``Prefer:
include-unknown-enum-members`` (channel.md); Coffer asks for the real member on
every request, so the snapshot records ``shared``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store import latest_per_owner
from tests.sources.m365.support.helpers import open_repo
from tests.sources.m365.support.restoring import Graph
from tests.sources.m365.support.tenant import Setup, make_setup

pytestmark = pytest.mark.sim


@pytest.fixture
def evolvable(tmp_path: Path) -> Iterator[Setup]:
    yield from make_setup(tmp_path, switches={"evolvable_enums": True})


def test_shared_channels_are_recorded_as_shared(evolvable: Setup) -> None:
    sim = evolvable.tenant.sim
    assert sim.store is not None
    channel = next(iter(sim.store.iter_live(["channel"])))
    with sim.store.transaction() as tx:
        channel.data["membershipType"] = "shared"
        tx.update(channel)
    g = Graph(evolvable.tenant)
    url = f"/teams/{channel.owner}/channels/{channel.data['id']}"
    assert g.get(url)["membershipType"] == "unknownFutureValue"
    resp = g.session.get(
        evolvable.tenant.url(url),
        headers={"Prefer": "include-unknown-enum-members"},
        timeout=30,
    )
    assert resp.json()["membershipType"] == "shared"

    assert evolvable.backup()["status"] in ("ok", "partial")
    repo = open_repo(evolvable.repo, evolvable.cache)
    try:
        found = []
        for snap in latest_per_owner(repo.list_snapshots()):
            if snap.owner.kind != "teams":
                continue
            reader = repo.reader(snap)
            for entry in reader.listdir("channels"):
                if entry.attrs.get("id") == channel.data["id"]:
                    found.append(entry.attrs.get("membershipType"))
    finally:
        repo.close()
    assert found == ["shared"]
