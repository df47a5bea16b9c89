"""SharePoint subsites: discovered below their site collections, selected with them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sources.m365.backup.discovery import discover_sites
from tests.sources.m365.support.helpers import make_client, settings_for
from tools.graphsim.testing import RunningTenant, running_tenant

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTenant]:
    with running_tenant(tmp_path_factory.mktemp("subsites"), seed=6, throttling=False) as t:
        yield t


def names(tenant: RunningTenant, *patterns: str) -> list[str]:
    settings = settings_for(Path(tenant.info.state_dir), sites=list(patterns))
    return [job.name for job in discover_sites(make_client(settings), settings)]


def test_nested_subsites_are_owners_of_their_own(tenant: RunningTenant) -> None:
    found = names(tenant, "*")
    subsites = [
        s for s in tenant.admin.inventory(detail=False)["sites"].values() if s["parentSite"]
    ]
    assert len(subsites) == 2
    for sub in subsites:
        assert sub["webUrl"].split("://", 1)[-1] in found
    assert len(found) == len(set(found)) == len(tenant.admin.inventory(detail=False)["sites"])


def test_selecting_a_site_selects_what_lies_below_it(tenant: RunningTenant) -> None:
    found = names(tenant, "Marketing")
    assert found == sorted(found, key=str.lower)
    assert [n.split("/sites/", 1)[1] for n in found] == [
        "Marketing",
        "Marketing/Archive",
        "Marketing/Archive/2019",
    ]


def test_a_subsite_can_be_selected_alone(tenant: RunningTenant) -> None:
    found = names(tenant, "Archive 2019")
    assert [n.split("/sites/", 1)[1] for n in found] == ["Marketing/Archive/2019"]
