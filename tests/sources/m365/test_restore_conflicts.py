"""Conflicts in each mode: skip (the default), replace and keep-both, decided by the
item's identity and content in the target folder, never by its name alone.

One tenant for the module, backed up once; each test changes items after the
backup and restores over them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sources.m365.restore import ItemQuery
from tests.sources.m365.support.restoring import Graph, failures, restore, totals
from tests.sources.m365.support.tenant import Setup, make_setup

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    for setup in make_setup(tmp_path_factory.mktemp("conflicts"), seed=5):
        report = setup.backup()
        assert report["status"] == "ok"
        yield setup


def _restore(setup: Setup, **kwargs: Any) -> dict[str, Any]:
    return restore(setup.repo, setup.cache, setup.state, **kwargs)


def _inbox(g: Graph, uid: str) -> list[dict[str, Any]]:
    return g.all(f"/users/{uid}/mailFolders/inbox/messages", **{"$top": "100"})


def test_mail_conflicts_in_each_mode(done: Setup) -> None:
    g = Graph(done.tenant)
    user = g.user()
    uid, upn = user["id"], user["userPrincipalName"]
    before = _inbox(g, uid)
    message = before[0]
    query = ItemQuery(services=("mail",), folders=("Inbox",), subjects=(message["subject"],))
    changed = {"isRead": not message["isRead"], "categories": ["Changed after the backup"]}
    g.patch(f"/users/{uid}/messages/{message['id']}", changed)

    skipped = _restore(done, owner=upn, query=query)
    assert failures(skipped) == []
    assert totals(skipped)["skipped"] >= 1
    assert totals(skipped)["created"] == 0
    reasons = skipped["owners"][0]["services"]["mail"]["skipped_reasons"]
    assert any("another version" in r for r in reasons)
    live = g.get(f"/users/{uid}/messages/{message['id']}")
    assert live["categories"] == ["Changed after the backup"]

    replaced = _restore(done, owner=upn, query=query, on_conflict="replace")
    assert totals(replaced)["replaced"] == 1
    assert totals(replaced)["created"] == 0
    live = g.get(f"/users/{uid}/messages/{message['id']}")  # metadata only: patched in place
    assert (live["isRead"], live["categories"]) == (message["isRead"], message["categories"])
    assert len(_inbox(g, uid)) == len(before)

    g.patch(f"/users/{uid}/messages/{message['id']}", changed)
    both = _restore(done, owner=upn, query=query, on_conflict="keep-both")
    assert totals(both)["kept_both"] == 1
    inbox = _inbox(g, uid)
    assert len(inbox) == len(before) + 1
    twins = [m for m in inbox if m["internetMessageId"] == message["internetMessageId"]]
    assert sorted(m["isRead"] for m in twins) == sorted([message["isRead"], not message["isRead"]])

    # The restored copy is the snapshot's version: running again finds it.
    for policy in ("keep-both", "skip", "replace"):
        again = _restore(done, owner=upn, query=query, on_conflict=policy)
        assert totals(again)["created"] + totals(again)["kept_both"] == 0, policy
        assert failures(again) == []
    assert len(_inbox(g, uid)) == len(before) + 1


def _files(g: Graph, drive: str, folder: str) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in g.all(f"/drives/{drive}/root:/{folder}:/children")}


def test_file_conflicts_in_each_mode(done: Setup) -> None:
    g = Graph(done.tenant)
    user = g.user(index=1)
    upn, drive = user["userPrincipalName"], user["drive"]
    listed = _files(g, drive, "Documents")
    files = {n: i for n, i in listed.items() if "file" in i}
    name = sorted(n for n, i in files.items() if 0 < i["size"] < 1_000_000)[0]
    original = files[name]
    original_bytes = g.raw(f"/drives/{drive}/items/{original['id']}/content")
    resp = g.session.put(
        done.tenant.url(f"/drives/{drive}/items/{original['id']}/content"),
        data=b"edited after the backup\n",
        timeout=60,
    )
    assert resp.status_code == 200
    query = ItemQuery(services=("onedrive",), includes=(f"onedrive/Documents/{name}",))

    skipped = _restore(done, owner=upn, query=query)
    assert totals(skipped)["skipped"] == 1
    assert g.raw(f"/drives/{drive}/items/{original['id']}/content") == b"edited after the backup\n"

    both = _restore(done, owner=upn, query=query, on_conflict="keep-both")
    assert totals(both)["kept_both"] == 1
    now = _files(g, drive, "Documents")
    copies = [n for n in now if n not in listed]
    assert len(copies) == 1  # "name 1.ext": Graph's rename
    assert g.raw(f"/drives/{drive}/items/{now[copies[0]]['id']}/content") == original_bytes
    assert now[copies[0]]["fileSystemInfo"] == original["fileSystemInfo"]

    replaced = _restore(done, owner=upn, query=query, on_conflict="replace")
    assert totals(replaced)["replaced"] == 1
    assert g.raw(f"/drives/{drive}/items/{original['id']}/content") == original_bytes
    # The edited content stays in the file's history.
    versions = g.all(f"/drives/{drive}/items/{original['id']}/versions")
    assert len(versions) >= 2

    again = _restore(done, owner=upn, query=query, on_conflict="replace")
    assert totals(again) == {"created": 0, "replaced": 0, "kept_both": 0, "skipped": 1, "failed": 0}


def test_a_name_alone_is_no_conflict(done: Setup) -> None:
    """A contact with the same name but other details is another person."""
    g = Graph(done.tenant)
    user = g.user(index=2)
    uid, upn = user["id"], user["userPrincipalName"]
    contacts = g.all(f"/users/{uid}/contacts")
    victim = contacts[0]
    g.delete(f"/users/{uid}/contacts/{victim['id']}")
    namesake = {"displayName": victim["displayName"], "jobTitle": "Someone else entirely"}
    resp = g.session.post(done.tenant.url(f"/users/{uid}/contacts"), json=namesake, timeout=60)
    assert resp.status_code == 201
    report = _restore(done, owner=upn, query=ItemQuery(services=("contacts",)))
    assert failures(report) == []
    assert totals(report)["created"] == 1
    same_name = [
        c for c in g.all(f"/users/{uid}/contacts") if c["displayName"] == victim["displayName"]
    ]
    assert len(same_name) == 2


def test_replacing_a_live_meeting_never_mails_its_attendees(done: Setup) -> None:
    g = Graph(done.tenant)
    user = g.user(index=2)
    uid, upn = user["id"], user["userPrincipalName"]
    headers = {"Prefer": 'outlook.timezone="UTC"'}
    events = g.all(f"/users/{uid}/calendar/events", headers=headers)
    meeting = next(e for e in events if e["attendees"])
    g.patch(f"/users/{uid}/events/{meeting['id']}", {"location": {"displayName": "Moved room"}})
    done.tenant.admin.clear_invitations()
    report = _restore(
        done,
        owner=upn,
        query=ItemQuery(services=("calendar",), subjects=(meeting["subject"],)),
        on_conflict="replace",
    )
    assert failures(report) == []
    assert totals(report)["kept_both"] == 1
    assert "cancellations" in " ".join(report["owners"][0]["services"]["calendar"]["notes"])
    assert done.tenant.admin.invitations() == []
    live = g.get(f"/users/{uid}/events/{meeting['id']}")
    assert live["location"]["displayName"] == "Moved room"


def test_an_empty_file_left_without_its_times_gets_them(done: Setup) -> None:
    """An empty file is restored by a PUT, then a PATCH of its times; a restore
    killed between the two leaves the file with the PUT's time. The next restore
    finds the same (empty) content already there and must still give it its
    backed-up times (the crash campaign found it with seed 22)."""
    g = Graph(done.tenant)
    user = g.user(index=2)
    upn, drive = user["userPrincipalName"], user["drive"]
    empty = next(i for i in _files(g, drive, "Documents").values() if i.get("size") == 0)
    wanted = empty["fileSystemInfo"]["lastModifiedDateTime"]
    g.delete(f"/drives/{drive}/items/{empty['id']}")
    resp = g.session.put(
        done.tenant.url(f"/drives/{drive}/root:/Documents/{empty['name']}:/content"),
        data=b"",
        timeout=60,
    )
    assert resp.status_code in (200, 201)
    half = _files(g, drive, "Documents")[empty["name"]]
    assert half["fileSystemInfo"]["lastModifiedDateTime"][:19] != wanted[:19]
    query = ItemQuery(services=("onedrive",), includes=(f"onedrive/Documents/{empty['name']}",))

    again = _restore(done, owner=upn, query=query)
    assert failures(again) == []
    assert totals(again)["created"] == 0  # already there: not uploaded again
    live = _files(g, drive, "Documents")[empty["name"]]
    assert live["id"] == half["id"]
    assert live["fileSystemInfo"]["lastModifiedDateTime"][:19] == wanted[:19]
