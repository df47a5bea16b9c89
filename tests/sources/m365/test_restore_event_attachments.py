"""Event attachments come back with their event: small files in one POST, files
from 3 MB by upload session; an item attachment (no bytes in Graph) is reported
with its reason. A second restore adds nothing."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from sources.m365.restore import ItemQuery
from tests.sources.m365.support.restoring import Graph, failures, restore, totals
from tests.sources.m365.support.tenant import Setup

pytestmark = pytest.mark.sim

SMALL = bytes(range(256)) * 400  # 102,400 bytes
LARGE = bytes(reversed(range(256))) * 14_000  # 3,584,000 bytes: needs an upload session
SUBJECT = "Review with handouts"


def _event_with_attachments(g: Graph, uid: str) -> str:
    base = f"/users/{uid}/events"
    made = g.session.post(
        g.tenant.url(base),
        json={
            "subject": SUBJECT,
            "start": {"dateTime": "2027-05-03T14:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2027-05-03T15:00:00", "timeZone": "Europe/Berlin"},
        },
        timeout=60,
    )
    assert made.status_code == 201, made.text
    eid = str(made.json()["id"])
    atts = g.tenant.url(f"{base}/{eid}/attachments")
    small = {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": "agenda.pdf",
        "contentType": "application/pdf",
        "contentBytes": base64.b64encode(SMALL).decode(),
    }
    assert g.session.post(atts, json=small, timeout=60).status_code == 201
    item = {"@odata.type": "#microsoft.graph.itemAttachment", "name": "Forwarded invitation"}
    assert g.session.post(atts, json=item, timeout=60).status_code == 201
    session = g.session.post(
        f"{atts}/createUploadSession",
        json={
            "AttachmentItem": {"attachmentType": "file", "name": "slides.pptx", "size": len(LARGE)}
        },
        timeout=60,
    )
    assert session.status_code == 201, session.text
    put = g.tenant.session().put(
        session.json()["uploadUrl"],
        data=LARGE,
        headers={"Content-Range": f"bytes 0-{len(LARGE) - 1}/{len(LARGE)}"},
        timeout=120,
    )
    assert put.status_code == 201, put.text
    return eid


def _files(g: Graph, uid: str, eid: str) -> dict[str, bytes]:
    rows: list[dict[str, Any]] = g.all(f"/users/{uid}/events/{eid}/attachments")
    return {
        r["name"]: base64.b64decode(r["contentBytes"])
        for r in rows
        if r["@odata.type"] == "#microsoft.graph.fileAttachment"
    }


def test_event_attachments_are_restored(setup: Setup) -> None:
    g = Graph(setup.tenant)
    uid, upn = g.user()["id"], g.user()["userPrincipalName"]
    eid = _event_with_attachments(g, uid)
    assert _files(g, uid, eid) == {"agenda.pdf": SMALL, "slides.pptx": LARGE}
    assert setup.backup()["status"] == "ok"
    g.delete(f"/users/{uid}/events/{eid}")

    query = ItemQuery(services=("calendar",), subjects=(SUBJECT,))
    report = restore(setup.repo, setup.cache, setup.state, owner=upn, query=query)
    assert failures(report) == []
    assert totals(report)["created"] == 1
    skipped = report["owners"][0]["services"]["calendar"]
    assert any("itemAttachment" in r and "no bytes" in r for r in skipped["skipped_reasons"])
    (restored,) = [e for e in g.all(f"/users/{uid}/events") if e["subject"] == SUBJECT]
    assert _files(g, uid, restored["id"]) == {"agenda.pdf": SMALL, "slides.pptx": LARGE}

    again = restore(setup.repo, setup.cache, setup.state, owner=upn, query=query)
    assert failures(again) == []
    assert totals(again)["created"] == 0
    assert len(g.all(f"/users/{uid}/events/{restored['id']}/attachments")) == 2
