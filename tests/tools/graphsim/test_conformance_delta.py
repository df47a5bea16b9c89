"""Conformance probe, part 2: two delta rounds across a mutation see exactly the changes,
and expired delta tokens give Graph's documented 410 responses."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tools.graphsim.testing import RunningTenant, running_tenant

from .probe import collect, delta_round, get

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def t(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTenant]:
    with running_tenant(tmp_path_factory.mktemp("delta"), seed=11, throttling=False) as tenant:
        yield tenant


@pytest.fixture(scope="module")
def s(t: RunningTenant) -> requests.Session:
    return t.graph()


@pytest.fixture(scope="module")
def upn(t: RunningTenant) -> str:
    return next(u["userPrincipalName"] for u in t.admin.users() if u["purpose"] == "user")


def _by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in items}


def test_mail_delta_two_rounds(t: RunningTenant, s: requests.Session, upn: str) -> None:
    url = t.url(f"/users/{upn}/mailFolders/inbox/messages/delta?$select=subject,isRead")
    first, link, pages = delta_round(s, url, page_size=2)
    assert pages > 1
    assert all(set(m) <= {"id", "subject", "isRead", "@odata.etag", "@odata.type"} for m in first)
    inbox = get(s, t.url(f"/users/{upn}/mailFolders/inbox"))
    assert len(first) == inbox["totalItemCount"]
    assert all(m["@odata.etag"].startswith('W/"') for m in first)
    # Mutations: one new, one read, one deleted (moved to Deleted Items).
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = s.post(
        t.url(f"/users/{upn}/mailFolders/inbox/messages"),
        json={
            "subject": "Delta probe",
            "body": {"contentType": "text", "content": "hello"},
            "singleValueExtendedProperties": [
                {"id": "Integer 0x0E07", "value": "1"},
                {"id": "SystemTime 0x0E06", "value": now},
            ],
        },
    ).json()
    unread = first[0]
    flipped = not unread["isRead"]
    assert (
        s.patch(
            t.url(f"/users/{upn}/messages/{unread['id']}"), json={"isRead": flipped}
        ).status_code
        == 200
    )
    victim = first[1]
    assert s.delete(t.url(f"/users/{upn}/messages/{victim['id']}")).status_code == 204
    second, link2, _ = delta_round(s, link)
    got = _by_id(second)
    assert set(got) == {created["id"], unread["id"], victim["id"]}
    assert got[victim["id"]]["@removed"] == {"reason": "deleted"}
    assert got[unread["id"]]["isRead"] is flipped
    assert got[created["id"]]["subject"] == "Delta probe"
    # A third round without changes is empty.
    third, _, _ = delta_round(s, link2)
    assert third == []


def test_mail_delta_change_type_and_folder_delta(
    t: RunningTenant, s: requests.Session, upn: str
) -> None:
    _, link, _ = delta_round(
        s, t.url(f"/users/{upn}/mailFolders/sentitems/messages/delta?changeType=created")
    )
    existing = collect(s, t.url(f"/users/{upn}/mailFolders/sentitems/messages"))
    s.patch(
        t.url(f"/users/{upn}/messages/{existing[0]['id']}"), json={"categories": ["Red category"]}
    )
    new = s.post(
        t.url(f"/users/{upn}/mailFolders/sentitems/messages"), json={"subject": "created"}
    ).json()
    second, _, _ = delta_round(s, link)
    assert [m["id"] for m in second] == [new["id"]]
    folders, flink, _ = delta_round(s, t.url(f"/users/{upn}/mailFolders/delta"))
    assert {f["displayName"] for f in folders} >= {"Inbox", "Sent Items", "Deleted Items", "Drafts"}
    created = s.post(
        t.url(f"/users/{upn}/mailFolders/inbox/childFolders"), json={"displayName": "Probe folder"}
    ).json()
    again, _, _ = delta_round(s, flink)
    assert [f["id"] for f in again] == [created["id"]]


def test_contacts_delta_two_rounds(t: RunningTenant, s: requests.Session, upn: str) -> None:
    first, link, _ = delta_round(s, t.url(f"/users/{upn}/contacts/delta"), page_size=2)
    assert len(first) == len(collect(s, t.url(f"/users/{upn}/contacts")))
    new = s.post(
        t.url(f"/users/{upn}/contacts"), json={"givenName": "Zoë", "surname": "Delta"}
    ).json()
    s.patch(t.url(f"/users/{upn}/contacts/{first[0]['id']}"), json={"jobTitle": "Changed"})
    s.delete(t.url(f"/users/{upn}/contacts/{first[1]['id']}"))
    second, _, _ = delta_round(s, link)
    got = _by_id(second)
    assert set(got) == {new["id"], first[0]["id"], first[1]["id"]}
    assert got[first[1]["id"]]["@removed"]["reason"] == "deleted"
    assert got[first[0]["id"]]["jobTitle"] == "Changed"


def _window(days_before: int, days_after: int) -> str:
    now = dt.datetime.now(dt.UTC)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    start = (now - dt.timedelta(days=days_before)).strftime(fmt)
    end = (now + dt.timedelta(days=days_after)).strftime(fmt)
    return f"startDateTime={start}&endDateTime={end}"


def test_calendar_view_delta_two_rounds(t: RunningTenant, s: requests.Session, upn: str) -> None:
    url = t.url(f"/users/{upn}/calendarView/delta?{_window(40, 40)}")
    first, link, _ = delta_round(s, url, page_size=3)
    view = collect(s, t.url(f"/users/{upn}/calendarView?{_window(40, 40)}"))
    assert {e["id"] for e in first} == {e["id"] for e in view}
    assert {"occurrence", "exception"} <= {e["type"] for e in first}
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=3)
    fmt = "%Y-%m-%dT%H:%M:%S"
    new = s.post(
        t.url(f"/users/{upn}/events"),
        json={
            "subject": "Probe event",
            "start": {"dateTime": start.strftime(fmt), "timeZone": "UTC"},
            "end": {"dateTime": (start + dt.timedelta(hours=1)).strftime(fmt), "timeZone": "UTC"},
        },
    ).json()
    singles = [e for e in first if e["type"] == "singleInstance"]
    s.patch(t.url(f"/users/{upn}/events/{singles[0]['id']}"), json={"subject": "Renamed"})
    s.delete(t.url(f"/users/{upn}/events/{singles[1]['id']}"))
    second, link2, _ = delta_round(s, link)
    got = _by_id(second)
    assert set(got) == {new["id"], singles[0]["id"], singles[1]["id"]}
    assert got[singles[1]["id"]]["@removed"] == {"reason": "deleted"}
    assert got[singles[0]["id"]]["subject"] == "Renamed"
    # An event changed outside the window comes back as @removed (event-delta.md).
    far = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=200)
    outside = s.post(
        t.url(f"/users/{upn}/events"),
        json={
            "subject": "Far away",
            "start": {"dateTime": far.strftime(fmt), "timeZone": "UTC"},
            "end": {"dateTime": (far + dt.timedelta(hours=1)).strftime(fmt), "timeZone": "UTC"},
        },
    ).json()
    third, _, _ = delta_round(s, link2)
    assert third == [
        {
            "@odata.type": "#microsoft.graph.event",
            "@removed": {"reason": "deleted"},
            "id": outside["id"],
        }
    ]
    assert (
        s.get(t.url(f"/users/{upn}/calendarView/delta?{_window(1, 1)}&$select=subject")).status_code
        == 400
    )


def test_drive_delta_two_rounds(t: RunningTenant, s: requests.Session, upn: str) -> None:
    drive = get(s, t.url(f"/users/{upn}/drive"))
    first, link, pages = delta_round(s, t.url(f"/drives/{drive['id']}/root/delta"), page_size=7)
    assert pages > 2
    assert any("root" in i for i in first)
    # Documented delta quirks: no parentReference.path, no cTag.
    assert all("path" not in i["parentReference"] and "cTag" not in i for i in first)
    files = [i for i in first if "file" in i]
    folder = next(i for i in first if "folder" in i and i["name"] == "Documents")
    put = s.put(
        t.url(f"/drives/{drive['id']}/items/{folder['id']}:/probe.txt:/content"), data=b"new file"
    )
    assert put.status_code == 201
    changed = files[0]
    assert (
        s.put(
            t.url(f"/drives/{drive['id']}/items/{changed['id']}/content"), data=b"changed"
        ).status_code
        == 200
    )
    removed = files[1]
    assert s.delete(t.url(f"/drives/{drive['id']}/items/{removed['id']}")).status_code == 204
    second, _, _ = delta_round(s, link)
    got = _by_id(second)
    non_folders = {i for i, v in got.items() if "folder" not in v or "deleted" in v}
    assert non_folders == {put.json()["id"], changed["id"], removed["id"]}
    assert "deleted" in got[removed["id"]]
    assert "name" not in got[removed["id"]]
    assert got[changed["id"]]["size"] == len(b"changed")
    # Folders returned are ancestors of changed items (parents are included by default).
    folders = {i for i, v in got.items() if "folder" in v and "deleted" not in v}
    assert folders
    assert all("folder" in _by_id(first).get(f, {"folder": 1}) for f in folders)
    latest = get(s, t.url(f"/drives/{drive['id']}/root/delta?token=latest"))
    assert latest["value"] == []
    assert "@odata.deltaLink" in latest


def test_list_items_delta_two_rounds(t: RunningTenant, s: requests.Session) -> None:
    site = next(x for x in collect(s, t.url("/sites?search=*")) if "root" not in x)
    lists = get(s, t.url(f"/sites/{site['id']}/lists"))["value"]
    lst = next(x for x in lists if x["list"]["template"] == "genericList")
    base = t.url(f"/sites/{site['id']}/lists/{lst['id']}/items")
    first, link, _ = delta_round(s, f"{base}/delta", page_size=3)
    new = s.post(base, json={"fields": {"Title": "Probe"}}).json()
    s.patch(f"{base}/{first[0]['id']}/fields", json={"Status": "Blocked"})
    s.delete(f"{base}/{first[1]['id']}")
    second, _, _ = delta_round(s, link)
    got = _by_id(second)
    assert set(got) == {new["id"], first[0]["id"], first[1]["id"]}
    assert got[first[1]["id"]]["deleted"] == {"state": "deleted"}
    assert got[first[0]["id"]]["fields"]["Status"] == "Blocked"


def test_channel_messages_delta_two_rounds(t: RunningTenant, s: requests.Session) -> None:
    team = collect(s, t.url("/teams"))[0]
    channel = get(s, t.url(f"/teams/{team['id']}/channels"))["value"][0]
    url = t.url(f"/teams/{team['id']}/channels/{channel['id']}/messages/delta?$top=2")
    first, link, _ = delta_round(s, url)
    listed = collect(s, t.url(f"/teams/{team['id']}/channels/{channel['id']}/messages"))
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=243)
    recent = {
        m["id"]
        for m in listed
        if dt.datetime.fromisoformat(m["createdDateTime"].replace("Z", "+00:00")) >= cutoff
    }
    assert {m["id"] for m in first} == recent
    assert len(recent) < len(listed)
    assert (
        s.get(
            t.url(f"/teams/{team['id']}/channels/{channel['id']}/messages/delta?$top=51")
        ).status_code
        == 400
    )
    changes = t.admin.churn(100, seed=1, kinds=["chatMessage"])
    mine = {c["id"] for c in changes if c["scope"] == channel["id"] and c["id"] in recent}
    second, _, _ = delta_round(s, link)
    assert {m["id"] for m in second} == mine


def test_expired_delta_tokens_answer_410(tmp_path: Path) -> None:
    with running_tenant(tmp_path / "t", seed=12, throttling=False) as t:
        s = t.graph()
        upn = next(u["userPrincipalName"] for u in t.admin.users() if u["purpose"] == "user")
        _, mail_link, _ = delta_round(s, t.url(f"/users/{upn}/mailFolders/inbox/messages/delta"))
        drive = get(s, t.url(f"/users/{upn}/drive"))
        _, drive_link, _ = delta_round(s, t.url(f"/drives/{drive['id']}/root/delta"))
        first_page = get(
            s, t.url(f"/users/{upn}/contacts/delta"), headers={"Prefer": "odata.maxpagesize=1"}
        )
        assert t.admin.expire_delta_tokens()
        resp = s.get(mail_link)
        assert resp.status_code == 410
        assert resp.json()["error"]["code"] == "syncStateNotFound"
        resp = s.get(first_page["@odata.nextLink"])  # skip tokens expire too
        assert resp.status_code == 410
        resp = s.get(drive_link)
        assert resp.status_code == 410
        err = resp.json()["error"]
        assert err["code"] == "resyncRequired"
        assert err["innerError"]["code"] == "resyncChangesApplyDifferences"
        restart, _, _ = delta_round(s, resp.headers["Location"])
        assert any("root" in i for i in restart)
        # A new round from scratch works.
        again, _, _ = delta_round(s, t.url(f"/users/{upn}/mailFolders/inbox/messages/delta"))
        assert again


def test_forged_delta_token_is_400(t: RunningTenant, s: requests.Session, upn: str) -> None:
    token = base64.urlsafe_b64encode(b'{"since":0}').decode() + ".AAAA"
    resp = s.get(t.url(f"/users/{upn}/mailFolders/inbox/messages/delta?$deltatoken={token}"))
    assert resp.status_code == 400
