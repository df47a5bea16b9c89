"""Sharing permissions, groups and their members, mail folder moves, drive moves and event
attachments, as Graph v1.0 documents them (plain requests, nothing of Coffer)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests

from tools.graphsim.testing import RunningTenant

from .probe import collect, delta_round, get

pytestmark = pytest.mark.sim


def _user(tenant: RunningTenant, n: int = 0) -> dict[str, Any]:
    users = [u for u in tenant.admin.users() if u["purpose"] == "user" and u["drive"]]
    return users[n]


def _tree(s: requests.Session, tenant: RunningTenant, drive: str) -> list[dict[str, Any]]:
    items, _, _ = delta_round(s, tenant.url(f"/drives/{drive}/root/delta"))
    return items


def test_drive_items_list_their_sharing_permissions(tenant: RunningTenant) -> None:
    s = tenant.graph()
    drive = _user(tenant)["drive"]
    items = _tree(s, tenant, drive)
    shared = [i for i in items if "shared" in i and "root" not in i]
    assert shared, "every drive holds shared items"
    links: list[dict[str, Any]] = []
    for item in shared:
        perms = collect(s, tenant.url(f"/drives/{drive}/items/{item['id']}/permissions"))
        owner = [p for p in perms if "owner" in p["roles"]]
        assert owner
        assert owner[0]["grantedToV2"]["user"]["id"]
        links += [p["link"] for p in perms if "link" in p]
        for p in perms:
            if "link" not in p and "owner" not in p["roles"]:
                assert p["grantedToV2"]["user"]["email"]
    assert links
    for link in links:
        assert link["type"] in ("view", "edit")
        assert link["scope"] in ("anonymous", "organization", "users")
        assert link["webUrl"].startswith("https://")
    # The children of a shared folder inherit its permissions (and may add their own).
    folder = next(
        i
        for i in shared
        if "folder" in i and any(c.get("parentReference", {}).get("id") == i["id"] for c in items)
    )
    child = next(i for i in items if i.get("parentReference", {}).get("id") == folder["id"])
    ids = [
        p["id"] for p in collect(s, tenant.url(f"/drives/{drive}/items/{folder['id']}/permissions"))
    ]
    mine = collect(s, tenant.url(f"/drives/{drive}/items/{child['id']}/permissions"))
    assert set(ids) <= {p["id"] for p in mine}
    assert "shared" in child


def test_sharing_a_file_shows_in_delta_and_in_its_permissions(tenant: RunningTenant) -> None:
    s = tenant.graph()
    drive = _user(tenant, 1)["drive"]
    _, link, _ = delta_round(s, tenant.url(f"/drives/{drive}/root/delta"))
    items = _tree(s, tenant, drive)
    target = next(i for i in items if "file" in i and "shared" not in i)
    change = tenant.admin.mutate(op="share", id=target["id"], link="edit", scope="anonymous")
    changed, _, _ = delta_round(s, link)
    mine = next(i for i in changed if i["id"] == target["id"])
    assert mine["eTag"] == target["eTag"]  # sharing is not an edit of the file
    assert mine["shared"]["scope"] == "anonymous"
    perms = collect(s, tenant.url(f"/drives/{drive}/items/{target['id']}/permissions"))
    new = next(p for p in perms if p["id"] == change["permission"])
    assert new["link"]["type"] == "edit"
    assert new["roles"] == ["write"]


def test_groups_members_and_nested_transitive_members(tenant: RunningTenant) -> None:
    s = tenant.graph()
    groups = collect(s, tenant.url("/groups"))
    staff = next(g for g in groups if g["displayName"] == "All Staff")
    eng = next(g for g in groups if g["displayName"] == "Engineering")
    direct = collect(s, tenant.url(f"/groups/{staff['id']}/members"))
    assert eng["id"] in {m["id"] for m in direct if m["@odata.type"] == "#microsoft.graph.group"}
    cast = tenant.url(f"/groups/{staff['id']}/transitiveMembers/microsoft.graph.user")
    refused = s.get(cast, timeout=30)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "Request_UnsupportedQuery"
    headers = {"ConsistencyLevel": "eventual"}
    users: list[dict[str, Any]] = []
    url: str | None = cast + "?$count=true&$top=2&$select=id,userPrincipalName"
    while url:
        page = get(s, url, headers=headers)
        assert len(page["value"]) <= 2
        users += page["value"]
        url = page.get("@odata.nextLink")
    expected = tenant.admin.inventory()["groups"][staff["id"]]["transitiveUsers"]
    assert sorted(u["userPrincipalName"] for u in users) == expected
    direct_users = {m["id"] for m in direct if m["@odata.type"] == "#microsoft.graph.user"}
    assert len(direct_users) < len(users)


def test_mail_folder_rename_and_move_keep_ids_and_messages(tenant: RunningTenant) -> None:
    s = tenant.graph()
    upn = _user(tenant, 2)["userPrincipalName"]
    base = tenant.url(f"/users/{upn}/mailFolders")
    created = s.post(f"{base}/inbox/childFolders", json={"displayName": "Projects"}, timeout=30)
    assert created.status_code == 201, created.text
    folder = created.json()
    inbox = get(s, f"{base}/inbox")
    msg = collect(s, f"{base}/inbox/messages?$top=5")[0]
    moved_msg = s.post(
        tenant.url(f"/users/{upn}/messages/{msg['id']}/move"),
        json={"destinationId": folder["id"]},
        timeout=30,
    ).json()
    _, msg_link, _ = delta_round(s, f"{base}/{folder['id']}/messages/delta")
    renamed = s.patch(f"{base}/{folder['id']}", json={"displayName": "Projects 2"}, timeout=30)
    assert renamed.status_code == 200
    assert renamed.json()["displayName"] == "Projects 2"
    answer = s.post(f"{base}/{folder['id']}/move", json={"destinationId": "archive"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == folder["id"]
    archive = get(s, f"{base}/archive")
    assert answer.json()["parentFolderId"] == archive["id"]
    assert folder["id"] in {f["id"] for f in collect(s, f"{base}/archive/childFolders")}
    assert folder["id"] not in {f["id"] for f in collect(s, f"{base}/{inbox['id']}/childFolders")}
    # Its messages keep their ids; their folder's delta reports no change.
    assert [m["id"] for m in collect(s, f"{base}/{folder['id']}/messages")] == [moved_msg["id"]]
    changes, _, _ = delta_round(s, msg_link)
    assert changes == []
    # Distinguished folders do not move; nor does a folder into itself.
    inbox_move = s.post(f"{base}/inbox/move", json={"destinationId": "archive"}, timeout=30)
    assert inbox_move.status_code == 403
    into_self = s.post(
        f"{base}/archive/move", json={"destinationId": folder["id"]}, timeout=30
    ).status_code
    assert into_self in (400, 403)


def test_drive_move_and_rename_show_in_delta(tenant: RunningTenant) -> None:
    s = tenant.graph()
    drive = _user(tenant, 3)["drive"]
    _, link, _ = delta_round(s, tenant.url(f"/drives/{drive}/root/delta"))
    items = _tree(s, tenant, drive)
    folders = [i for i in items if "folder" in i and "root" not in i]
    target = next(
        i for i in items if "file" in i and i["parentReference"]["id"] != folders[0]["id"]
    )
    answer = s.patch(
        tenant.url(f"/drives/{drive}/items/{target['id']}"),
        json={"name": "moved here.txt", "parentReference": {"id": folders[0]["id"]}},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    changed, _, _ = delta_round(s, link)
    mine = next(i for i in changed if i["id"] == target["id"])
    assert mine["name"] == "moved here.txt"
    assert mine["parentReference"]["id"] == folders[0]["id"]
    assert mine["file"]["hashes"] == target["file"]["hashes"]


def test_event_attachments(tenant: RunningTenant) -> None:
    s = tenant.graph()
    upn = _user(tenant)["userPrincipalName"]
    events = collect(s, tenant.url(f"/users/{upn}/events"))
    with_atts = [e for e in events if e["hasAttachments"]]
    assert with_atts
    event = with_atts[0]
    atts = collect(s, tenant.url(f"/users/{upn}/events/{event['id']}/attachments"))
    assert atts
    assert all(a["@odata.type"] == "#microsoft.graph.fileAttachment" for a in atts)
    cal = get(s, tenant.url(f"/users/{upn}/calendar"))["id"]
    same = collect(s, tenant.url(f"/users/{upn}/calendars/{cal}/events/{event['id']}/attachments"))
    assert [a["id"] for a in same] == [a["id"] for a in atts]
    raw = s.get(
        tenant.url(f"/users/{upn}/events/{event['id']}/attachments/{atts[0]['id']}/$value"),
        timeout=30,
    )
    assert raw.status_code == 200
    assert len(raw.content) == atts[0]["size"]
    assert base64.b64decode(atts[0]["contentBytes"]) == raw.content
