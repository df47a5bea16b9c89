"""Restoring large messages against Graph's limits, as the simulator models them
with the switches ``request_size_limit`` (a request body over 4 MB is refused) and
``max_message_size`` (the target mailbox's maximum message size):

- the create request stays under 4 MB counting the body, not only the attachments
  riding in it;
- a message whose body alone is over the limit, and one larger than the mailbox
  allows, are reported with that reason, and leave nothing half-made behind.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from sources.m365.restore import ItemQuery
from tests.sources.m365.support.restoring import Graph, restore, totals
from tests.sources.m365.support.tenant import Setup

pytestmark = pytest.mark.sim

MB = 1_000_000
MAILBOX_LIMIT = 5 * MB


def _message(g: Graph, uid: str, subject: str, body_bytes: int, attachments: list[int]) -> None:
    words = ("lorem ipsum dolor sit amet " * (body_bytes // 27 + 1))[:body_bytes]
    resp = g.session.post(
        g.tenant.url(f"/users/{uid}/mailFolders/inbox/messages"),
        json={
            "subject": subject,
            "body": {"contentType": "text", "content": words},
            "singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "1"}],
        },
        timeout=120,
    )
    assert resp.status_code == 201, resp.text[:300]
    mid = resp.json()["id"]
    for n, size in enumerate(attachments):
        att = {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": f"part{n}.bin",
            "contentType": "application/octet-stream",
            "contentBytes": base64.b64encode(bytes([n + 1]) * size).decode(),
        }
        added = g.session.post(
            g.tenant.url(f"/users/{uid}/messages/{mid}/attachments"), json=att, timeout=120
        )
        assert added.status_code == 201, added.text[:300]


def _inbox(g: Graph, uid: str, subject: str) -> list[dict[str, Any]]:
    rows = g.all(f"/users/{uid}/mailFolders/inbox/messages", **{"$top": "200"})
    return [r for r in rows if r["subject"] == subject]


def test_large_messages_respect_graph_and_mailbox_limits(setup: Setup) -> None:
    g = Graph(setup.tenant)
    user = g.user()
    uid, upn = user["id"], user["userPrincipalName"]
    _message(g, uid, "Large body with attachment", 3 * MB, [900_000])
    _message(g, uid, "Body over the request limit", 4_500_000, [])
    _message(g, uid, "Over the mailbox limit", 10_000, [2_900_000, 2_900_000])
    subjects = (
        "Large body with attachment",
        "Body over the request limit",
        "Over the mailbox limit",
    )
    assert setup.backup()["status"] == "ok"
    for subject in subjects:
        for row in _inbox(g, uid, subject):
            g.delete(f"/users/{uid}/messages/{row['id']}")
    setup.tenant.admin.switches(request_size_limit=True, max_message_size=MAILBOX_LIMIT)

    report = restore(
        setup.repo,
        setup.cache,
        setup.state,
        owner=upn,
        query=ItemQuery(services=("mail",), folders=("Inbox",), subjects=subjects),
    )
    assert totals(report)["created"] == 1
    assert totals(report)["failed"] == 2
    reasons = {
        f["item"].rsplit("/", 1)[-1]: f["reason"]
        for f in report["owners"][0]["services"]["mail"]["failed_items"]
    }
    assert len(reasons) == 2
    assert any(
        "request limit" in r for n, r in reasons.items() if "Body over the request limit" in n
    )
    assert any(
        "maximum message size" in r for n, r in reasons.items() if "Over the mailbox limit" in n
    )
    # The message that fits comes back whole; the others leave nothing behind.
    (restored,) = _inbox(g, uid, "Large body with attachment")
    atts = g.all(f"/users/{uid}/messages/{restored['id']}/attachments")
    assert [(a["name"], a["size"]) for a in atts] == [("part0.bin", 900_000)]
    assert _inbox(g, uid, "Body over the request limit") == []
    assert _inbox(g, uid, "Over the mailbox limit") == []
