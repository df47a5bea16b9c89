"""Restoring a simulated tenant: every kind of item, deleted then put back, compared
through Graph field by field with what it was before.

One tenant for the module, backed up once; each test deletes its own part of
it, restores that part to its original location (or to another user) and
reads the result back through Graph.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sources.m365.restore import ItemQuery
from tests.sources.m365.support.restoring import Graph, failures, restore, totals
from tests.sources.m365.support.tenant import Setup, make_setup

pytestmark = pytest.mark.sim

UTC_PREFER = {"Prefer": 'outlook.timezone="UTC"'}
MESSAGE_FIELDS = (
    "subject",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "receivedDateTime",
    "sentDateTime",
    "isRead",
    "isDraft",
    "flag",
    "importance",
    "categories",
    "body",
    "internetMessageId",
    "hasAttachments",
    "inferenceClassification",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
)
ATTACHMENT_FIELDS = ("name", "contentType", "size", "isInline", "contentId", "contentBytes")
CONTACT_FIELDS = (
    "displayName",
    "givenName",
    "surname",
    "emailAddresses",
    "businessPhones",
    "mobilePhone",
    "companyName",
    "jobTitle",
    "department",
    "homeAddress",
    "businessAddress",
    "birthday",
    "categories",
    "personalNotes",
    "fileAs",
)
EVENT_FIELDS = (
    "subject",
    "start",
    "end",
    "isAllDay",
    "recurrence",
    "location",
    "showAs",
    "importance",
    "sensitivity",
    "categories",
    "isReminderOn",
    "reminderMinutesBeforeStart",
)


SUPPLIERS = (
    {
        "displayName": "Dana Okafor",
        "givenName": "Dana",
        "surname": "Okafor",
        "emailAddresses": [{"address": "dana@fabrikam.example", "name": "Dana Okafor"}],
        "businessPhones": ["+1 555 0100"],
        "companyName": "Fabrikam",
        "birthday": "1984-02-29T00:00:00Z",
        "businessAddress": {"street": "1 Main St", "city": "Springfield", "countryOrRegion": "US"},
        "categories": ["Suppliers"],
    },
    {"displayName": "Zoë Ångström", "emailAddresses": [{"address": "zoe@example.org"}]},
)


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    for setup in make_setup(tmp_path_factory.mktemp("restore")):
        # A contact folder with people in it (the generated one is empty).
        g = Graph(setup.tenant)
        uid = g.user(index=2)["id"]
        folder = g.all(f"/users/{uid}/contactFolders")[0]
        for contact in SUPPLIERS:
            resp = g.session.post(
                setup.tenant.url(f"/users/{uid}/contactFolders/{folder['id']}/contacts"),
                json=contact,
                timeout=60,
            )
            assert resp.status_code == 201, resp.text
        report = setup.backup()
        assert report["status"] == "ok"
        yield setup


def _restore(setup: Setup, **kwargs: Any) -> dict[str, Any]:
    return restore(setup.repo, setup.cache, setup.state, **kwargs)


def _file_attachments(g: Graph, uid: str, mid: str) -> list[dict[str, Any]]:
    atts = g.all(f"/users/{uid}/messages/{mid}/attachments")
    out = [
        {k: a.get(k) for k in ATTACHMENT_FIELDS}
        for a in atts
        if a.get("@odata.type") == "#microsoft.graph.fileAttachment"
    ]
    return sorted(out, key=lambda a: (a["name"], a["size"]))


def _messages(g: Graph, uid: str, folder: str) -> dict[str, dict[str, Any]]:
    found = g.folder(uid, folder)
    assert found is not None, folder
    rows = g.all(f"/users/{uid}/mailFolders/{found['id']}/messages", **{"$top": "100"})
    return {m["internetMessageId"]: m for m in rows}


def test_mail_comes_back_as_it_was(done: Setup) -> None:
    g = Graph(done.tenant)
    user = g.user()
    uid, upn = user["id"], user["userPrincipalName"]
    folders = (
        "Inbox",
        "Inbox/Receipts",
        "Drafts",
        "Projects",
        "Projects/Project Apollo",
        "Projects/Project Apollo/2024",
    )
    before = {f: _messages(g, uid, f) for f in folders}
    attachments = {
        imid: _file_attachments(g, uid, m["id"])
        for msgs in before.values()
        for imid, m in msgs.items()
    }
    assert sum(len(m) for m in before.values()) >= 8
    assert any(a["size"] > 3_000_000 for atts in attachments.values() for a in atts)
    assert any(a["isInline"] for atts in attachments.values() for a in atts)
    assert any(m["isDraft"] for m in before["Drafts"].values())
    deleted_items = g.folder(uid, "Deleted Items")
    assert deleted_items is not None
    # The Inbox's messages go to Deleted Items (with new IDs); the custom folder
    # tree goes altogether.
    for message in before["Inbox"].values():
        g.delete(f"/users/{uid}/messages/{message['id']}")
    for message in before["Drafts"].values():
        g.delete(f"/users/{uid}/messages/{message['id']}")
    projects = g.folder(uid, "Projects")
    assert projects is not None
    g.delete(f"/users/{uid}/mailFolders/{projects['id']}")

    report = _restore(
        done,
        owner=upn,
        query=ItemQuery(services=("mail",), folders=("Inbox", "Drafts", "Projects")),
    )
    assert failures(report) == []
    count = sum(len(m) for m in before.values())
    kept = len(before["Inbox/Receipts"])  # not deleted: already there
    assert kept
    assert totals(report) == {
        "created": count - kept,
        "replaced": 0,
        "kept_both": 0,
        "skipped": kept,
        "failed": 0,
    }
    for folder, old in before.items():
        new = _messages(g, uid, folder)
        assert set(new) == set(old), folder
        for imid, original in old.items():
            restored = new[imid]
            for field in MESSAGE_FIELDS:
                assert restored.get(field) == original.get(field), (folder, field)
            assert (restored["id"] == original["id"]) == (folder == "Inbox/Receipts")
            assert _file_attachments(g, uid, restored["id"]) == attachments[imid]
    # The copies in Deleted Items were no conflict for the Inbox, and stay.
    bin_ids = {
        m["internetMessageId"] for m in g.all(f"/users/{uid}/mailFolders/deleteditems/messages")
    }
    assert set(before["Inbox"]) <= bin_ids

    again = _restore(
        done,
        owner=upn,
        query=ItemQuery(services=("mail",), folders=("Inbox", "Drafts", "Projects")),
    )
    assert totals(again) == {
        "created": 0,
        "replaced": 0,
        "kept_both": 0,
        "skipped": count,
        "failed": 0,
    }
    assert all(len(_messages(g, uid, f)) == len(before[f]) for f in folders)


def _events(g: Graph, uid: str) -> dict[str, dict[str, Any]]:
    rows = g.all(f"/users/{uid}/calendar/events", headers=UTC_PREFER, **{"$top": "100"})
    return {e["subject"]: e for e in rows}


def _instances(g: Graph, uid: str, event: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows = g.all(
        f"/users/{uid}/events/{event['id']}/instances",
        headers=UTC_PREFER,
        startDateTime="2000-01-01T00:00:00Z",
        endDateTime="2040-01-01T00:00:00Z",
        **{"$top": "1000"},
    )
    return sorted(
        (r["type"], r["originalStart"], r["start"]["dateTime"], r["end"]["dateTime"], r["subject"])
        for r in rows
    )


def test_events_with_recurrence_and_exceptions_send_no_invitations(done: Setup) -> None:
    g = Graph(done.tenant)
    user = g.user(index=1)
    uid, upn = user["id"], user["userPrincipalName"]
    before = _events(g, uid)
    weekly, meeting = before["Weekly sync"], before["Planning meeting with the team"]
    assert meeting["attendees"]
    weekly_instances = _instances(g, uid, weekly)
    assert any(kind == "exception" for kind, *_ in weekly_instances)
    g.delete(f"/users/{uid}/events/{weekly['id']}")
    g.delete(f"/users/{uid}/events/{meeting['id']}")
    done.tenant.admin.clear_invitations()

    report = _restore(
        done,
        owner=upn,
        query=ItemQuery(services=("calendar",), subjects=("Weekly sync", "Planning meeting*")),
    )
    assert failures(report) == []
    assert done.tenant.admin.invitations() == []
    after = _events(g, uid)
    for subject in ("Weekly sync", "Planning meeting with the team"):
        for field in EVENT_FIELDS:
            assert after[subject].get(field) == before[subject].get(field), (subject, field)
        assert after[subject]["id"] != before[subject]["id"]
    # Every occurrence as it was: the moved one moved, the cancelled one cancelled.
    assert _instances(g, uid, after["Weekly sync"]) == weekly_instances
    # No attendees were written (no one was invited); the list is in the body.
    restored = after["Planning meeting with the team"]
    assert restored["attendees"] == []
    for attendee in meeting["attendees"]:
        assert attendee["emailAddress"]["address"] in restored["body"]["content"]
    assert (
        before["Planning meeting with the team"]["body"]["content"].split("<body>")[-1][:20]
        in restored["body"]["content"]
    )

    again = _restore(
        done,
        owner=upn,
        query=ItemQuery(services=("calendar",), subjects=("Weekly sync", "Planning meeting*")),
    )
    assert totals(again)["created"] == 0
    assert totals(again)["failed"] == 0
    assert len(_events(g, uid)) == len(after)
    assert done.tenant.admin.invitations() == []


def test_contacts_come_back(done: Setup) -> None:
    g = Graph(done.tenant)
    user = g.user(index=2)
    uid, upn = user["id"], user["userPrincipalName"]
    default = {c["displayName"]: c for c in g.all(f"/users/{uid}/contacts")}
    folders = g.all(f"/users/{uid}/contactFolders")
    assert folders
    inner = {
        c["displayName"]: c
        for c in g.all(f"/users/{uid}/contactFolders/{folders[0]['id']}/contacts")
    }
    assert default
    assert inner
    victim = sorted(default)[0]
    g.delete(f"/users/{uid}/contacts/{default[victim]['id']}")
    g.delete(f"/users/{uid}/contactFolders/{folders[0]['id']}")

    report = _restore(done, owner=upn, query=ItemQuery(services=("contacts",)))
    assert failures(report) == []
    assert totals(report)["created"] == 1 + len(inner)
    now_default = {c["displayName"]: c for c in g.all(f"/users/{uid}/contacts")}
    new_folder = next(
        f
        for f in g.all(f"/users/{uid}/contactFolders")
        if f["displayName"] == folders[0]["displayName"]
    )
    now_inner = {
        c["displayName"]: c
        for c in g.all(f"/users/{uid}/contactFolders/{new_folder['id']}/contacts")
    }
    assert set(now_default) == set(default)
    assert set(now_inner) == set(inner)
    for old, new in ((default, now_default), (inner, now_inner)):
        for name, contact in old.items():
            for field in CONTACT_FIELDS:
                assert new[name].get(field) == contact.get(field), (name, field)
    again = _restore(done, owner=upn, query=ItemQuery(services=("contacts",)))
    assert totals(again)["created"] == 0
    assert len(g.all(f"/users/{uid}/contacts")) == len(default)


def _tree(g: Graph, drive: str, item: str = "root", prefix: str = "") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for child in g.all(f"/drives/{drive}/items/{item}/children"):
        path = f"{prefix}{child['name']}"
        out[path] = child
        if "folder" in child:
            out.update(_tree(g, drive, child["id"], path + "/"))
    return out


def test_files_come_back_byte_exact_with_their_timestamps(done: Setup) -> None:
    g = Graph(done.tenant)
    user = g.user()
    upn, drive = user["userPrincipalName"], user["drive"]
    before = _tree(g, drive)
    hostile = next(p for p in before if p.startswith("Hostile names"))
    files = {p: i for p, i in before.items() if "file" in i}
    biggest = max(files, key=lambda p: files[p]["size"])
    assert files[biggest]["size"] > 4 * 1024 * 1024
    content = {
        p: g.raw(f"/drives/{drive}/items/{i['id']}/content")
        for p, i in files.items()
        if p.startswith(hostile) or p == biggest
    }
    g.delete(f"/drives/{drive}/items/{before[hostile]['id']}")
    g.delete(f"/drives/{drive}/items/{files[biggest]['id']}")

    report = _restore(done, owner=upn, query=ItemQuery(services=("onedrive",)))
    assert failures(report) == []
    after = _tree(g, drive)
    assert set(after) == set(before)
    for path, old in before.items():
        new = after[path]
        assert new["name"] == old["name"]
        if "file" in old:
            assert new["size"] == old["size"], path
            assert new["file"]["hashes"] == old["file"]["hashes"], path
            assert new["fileSystemInfo"] == old["fileSystemInfo"], path
    for path, data in content.items():
        assert g.raw(f"/drives/{drive}/items/{after[path]['id']}/content") == data, path
    again = _restore(done, owner=upn, query=ItemQuery(services=("onedrive",)))
    assert totals(again)["created"] == 0
    assert totals(again)["failed"] == 0


def test_list_items_come_back(done: Setup) -> None:
    g = Graph(done.tenant)
    inventory = done.tenant.admin.inventory()
    site_id, site = next((k, s) for k, s in inventory["sites"].items() if s["listItems"] >= 5)
    lst = next(
        item
        for item in g.all(f"/sites/{site_id}/lists")
        if item["list"]["template"] == "genericList"
    )
    before = g.all(f"/sites/{site_id}/lists/{lst['id']}/items", **{"$expand": "fields"})
    victims = before[:3]
    for item in victims:
        g.delete(f"/sites/{site_id}/lists/{lst['id']}/items/{item['id']}")
    host = site["webUrl"].split("://", 1)[1]
    report = _restore(done, owner=host, query=ItemQuery(kinds=("list-item",)))
    assert failures(report) == []
    assert totals(report)["created"] == len(victims)
    after = g.all(f"/sites/{site_id}/lists/{lst['id']}/items", **{"$expand": "fields"})
    assert len(after) == len(before)

    def values(item: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in item["fields"].items() if k != "id"}, sort_keys=True)

    assert sorted(map(values, after)) == sorted(map(values, before))
    again = _restore(done, owner=host, query=ItemQuery(kinds=("list-item",)))
    assert totals(again)["created"] == 0


def test_alternate_user_gets_a_restore_folder(done: Setup) -> None:
    g = Graph(done.tenant)
    source, other = g.user(index=0), g.user(index=2)
    to = f"user:{other['userPrincipalName']}/Recovered"
    query = ItemQuery(services=("mail", "onedrive"), folders=("Inbox", "Documents"))
    report = _restore(done, owner=source["userPrincipalName"], to=to, query=query)
    assert failures(report) == []
    inbox = _messages(g, source["id"], "Inbox")
    copied = _messages(g, other["id"], "Recovered/Inbox")
    assert set(copied) == set(inbox)
    for imid, message in inbox.items():
        for field in ("subject", "receivedDateTime", "sentDateTime", "isRead", "body", "from"):
            assert copied[imid][field] == message[field]
    source_docs = {
        p: i
        for p, i in _tree(g, source["drive"]).items()
        if p.startswith("Documents/") and "package" not in i and "/Notebook/" not in p
    }
    assert "OneNote notebook" in " ".join(report["notices"])
    target_tree = _tree(g, other["drive"])
    for path, item in source_docs.items():
        assert f"Recovered/{path}" in target_tree
        if "file" in item:
            assert target_tree[f"Recovered/{path}"]["file"]["hashes"] == item["file"]["hashes"]
    again = _restore(done, owner=source["userPrincipalName"], to=to, query=query)
    assert totals(again)["created"] == 0


def test_dry_run_writes_nothing(done: Setup, tmp_path: Path) -> None:
    g = Graph(done.tenant)
    user = g.user(index=2)
    uid = user["id"]
    sent = _messages(g, uid, "Sent Items")
    for message in sent.values():
        g.delete(f"/users/{uid}/messages/{message['id']}")
    done.tenant.admin.reset_stats()
    report = _restore(
        done,
        owner=user["userPrincipalName"],
        query=ItemQuery(services=("mail",), folders=("Sent Items",)),
        dry_run=True,
    )
    assert report["dry_run"] is True
    planned = report["owners"][0]["services"]["mail"]["planned"]
    assert [p["action"] for p in planned] == ["created"] * len(sent)
    writes = {
        k: v for k, v in done.tenant.admin.stats()["by_endpoint"].items() if not k.startswith("GET")
    }
    assert writes == {}
    assert _messages(g, uid, "Sent Items") == {}
