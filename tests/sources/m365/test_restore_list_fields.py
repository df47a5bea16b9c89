"""SharePoint list items with rich columns (person, lookup, multi-choice, hyperlink,
managed metadata) come back through Graph's write shape: with the simulator
refusing the read shape (switch ``list_write_shape``, Corso issue 5108), a restore
that sent the fields as read fails with 400; Coffer converts them."""

from __future__ import annotations

from typing import Any

import pytest

from sources.m365.restore import ItemQuery
from sources.m365.restore.lists import write_shape
from tests.sources.m365.support.restoring import Graph, failures, restore, totals
from tests.sources.m365.support.tenant import Setup

pytestmark = pytest.mark.sim

PEOPLE = [
    {"LookupId": 10, "LookupValue": "Henrietta Mueller", "Email": "henrietta@contoso.com"},
    {"LookupId": 14, "LookupValue": "Adele Vance", "Email": "adele@contoso.com"},
]
# As SharePoint shows an item edited in its own pages (the read shape).
RICH = {
    "Title": "Rich columns",
    "Persons": PEOPLE,
    "OwnerLookupId": "10",
    "City": "Paris",
    "CityLookupId": "3",
    "Tags": ["good", "urgent"],
    "Link": {"Description": "Spec", "Url": "https://contoso.com/spec"},
    "Department": {
        "Label": "Sales",
        "TermGuid": "8ed8c9ea-7052-4c1d-a4d7-b9c10bffea6f",
        "WssId": 4,
    },
}
WRITTEN = ("Title", "Persons", "OwnerLookupId", "CityLookupId", "Tags")


def test_write_shape_of_each_rich_column() -> None:
    shaped, dropped = write_shape(RICH)
    assert shaped == {
        "Title": "Rich columns",
        "PersonsLookupId@odata.type": "Collection(Edm.Int32)",
        "PersonsLookupId": [10, 14],
        "OwnerLookupId": 10,
        "CityLookupId": 3,
        "Tags@odata.type": "Collection(Edm.String)",
        "Tags": ["good", "urgent"],
    }
    assert sorted(dropped) == ["Department", "Link"]


def _items(g: Graph, site: str, lid: str) -> list[dict[str, Any]]:
    return g.all(f"/sites/{site}/lists/{lid}/items", **{"$expand": "fields"})


def test_rich_list_items_are_restored_in_the_write_shape(setup: Setup) -> None:
    g = Graph(setup.tenant)
    inventory = setup.tenant.admin.inventory()
    site_id, site = next((k, s) for k, s in inventory["sites"].items() if s["listItems"] >= 1)
    lst = next(
        i for i in g.all(f"/sites/{site_id}/lists") if i["list"]["template"] == "genericList"
    )
    url = setup.tenant.url(f"/sites/{site_id}/lists/{lst['id']}/items")
    made = g.session.post(url, json={"fields": RICH}, timeout=60)  # the switch is still off
    assert made.status_code == 201, made.text
    original = made.json()
    setup.tenant.admin.switches(list_write_shape=True)
    refused = g.session.post(url, json={"fields": {"Title": "x", "Tags": ["a"]}}, timeout=60)
    assert refused.status_code == 400  # a bare array is the read shape
    assert setup.backup()["status"] == "ok"
    g.delete(f"/sites/{site_id}/lists/{lst['id']}/items/{original['id']}")

    host = site["webUrl"].split("://", 1)[1]
    query = ItemQuery(kinds=("list-item",), subjects=("Rich columns",))
    report = restore(setup.repo, setup.cache, setup.state, owner=host, query=query)
    assert failures(report) == []
    assert totals(report)["created"] == 1
    notes = " ".join(report["owners"][0]["services"]["sharepoint"].get("notes", []))
    assert "Department" in notes
    assert "Link" in notes
    (back,) = [
        i for i in _items(g, site_id, lst["id"]) if i["fields"].get("Title") == "Rich columns"
    ]
    assert {k: back["fields"].get(k) for k in WRITTEN} == {k: RICH[k] for k in WRITTEN}
    # Run again: the item is recognised as already there.
    again = restore(setup.repo, setup.cache, setup.state, owner=host, query=query)
    assert totals(again)["created"] == 0
    assert failures(again) == []
