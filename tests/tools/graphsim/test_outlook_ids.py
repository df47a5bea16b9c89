"""Immutable IDs apply per request (outlook-immutable-id.md), with the switch
``strict_immutable_ids`` on: contacts and events answer in the default format
unless the request asks otherwise; folders and calendars have one ID."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tools.graphsim.testing import RunningTenant, running_tenant

from .probe import get

pytestmark = pytest.mark.sim

IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}


def collect(
    s: requests.Session,
    url: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every item of a collection, asking with ``headers`` on every page."""
    out: list[dict[str, Any]] = []
    page = get(s, url, params=params, headers=headers)
    out.extend(page["value"])
    while page.get("@odata.nextLink"):
        page = get(s, str(page["@odata.nextLink"]), headers=headers)
        out.extend(page["value"])
    return out


def _ids(rows: list[dict[str, Any]]) -> set[str]:
    return {str(r["id"]) for r in rows}


def _event(s: requests.Session, t: RunningTenant, upn: str) -> dict[str, Any]:
    body = {
        "subject": "weekly",
        "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "Europe/Berlin"},
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 3},
        },
    }
    resp = s.post(t.url(f"/users/{upn}/events"), json=body, headers=IMMUTABLE)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


@pytest.mark.parametrize("strict", [True, False])
def test_contacts_and_events_answer_in_the_format_each_request_asks(
    tmp_path: Path, strict: bool
) -> None:
    with running_tenant(
        tmp_path / "t", seed=5, throttling=False, switches={"strict_immutable_ids": strict}
    ) as t:
        s = t.graph()
        upn = next(u["userPrincipalName"] for u in t.admin.users() if u["purpose"] == "user")
        contacts_url = t.url(f"/users/{upn}/contacts")
        immutable = _ids(collect(s, contacts_url, headers=IMMUTABLE))
        default = _ids(collect(s, contacts_url))
        assert immutable
        assert len(immutable) == len(default)
        # The default tenant keeps one format; the strict one answers in two.
        assert (immutable.isdisjoint(default)) is strict
        assert (immutable == default) is not strict
        # Either format names the same contact.
        one = sorted(immutable)[0]
        got = s.get(f"{contacts_url}/{one}").json()
        assert got["id"] in default
        assert s.get(f"{contacts_url}/{got['id']}", headers=IMMUTABLE).json()["id"] == one

        master = _event(s, t, upn)
        window = {"startDateTime": "2026-03-01T00:00:00Z", "endDateTime": "2026-03-31T00:00:00Z"}
        instances_url = t.url(f"/users/{upn}/events/{master['id']}/instances")
        imm_instances = collect(s, instances_url, params=window, headers=IMMUTABLE)
        def_instances = collect(s, instances_url, params=window)
        assert len(imm_instances) == len(def_instances) == 3
        assert {i["seriesMasterId"] for i in imm_instances} == {master["id"]}
        default_master = def_instances[0]["seriesMasterId"]
        assert (default_master != master["id"]) is strict
        # An occurrence named in either format is the same occurrence.
        for imm, dflt in zip(imm_instances, def_instances, strict=True):
            assert (imm["id"] != dflt["id"]) is strict
            assert s.get(t.url(f"/users/{upn}/events/{imm['id']}")).json()["id"] == dflt["id"]
        events_default = _ids(collect(s, t.url(f"/users/{upn}/events")))
        assert (master["id"] in events_default) is not strict
        assert default_master in events_default

        # Containers have one ID whatever the request asks (outlook-immutable-id.md).
        for path in ("/contactFolders", "/calendars", "/mailFolders"):
            url = t.url(f"/users/{upn}{path}")
            assert _ids(collect(s, url, headers=IMMUTABLE)) == _ids(collect(s, url))
