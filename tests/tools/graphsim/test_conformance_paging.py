"""Conformance probe, part 1: every collection pages to exactly the inventory's counts.

Plain requests with small pages (`Prefer: odata.maxpagesize` and `$top`), following
`@odata.nextLink` verbatim; the expected numbers come from `GET /_sim/inventory`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests

from tools.graphsim.testing import RunningTenant

from .probe import collect, get

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def graph(tenant: RunningTenant) -> requests.Session:
    return tenant.graph()


@pytest.fixture(scope="module")
def inventory(tenant: RunningTenant) -> dict[str, Any]:
    return tenant.admin.inventory()


def _mail_folders(s: requests.Session, base: str, user: str) -> list[dict[str, Any]]:
    """All folders of a mailbox: the top level, then childFolders recursively."""
    out = []
    todo = collect(s, f"{base}/users/{user}/mailFolders", page_size=3)
    while todo:
        folder = todo.pop()
        out.append(folder)
        if folder["childFolderCount"]:
            todo.extend(
                collect(s, f"{base}/users/{user}/mailFolders/{folder['id']}/childFolders?$top=2")
            )
    return out


def test_users_page_and_match_inventory(
    tenant: RunningTenant, graph: requests.Session, inventory: dict[str, Any]
) -> None:
    users = collect(graph, tenant.url("/users"), page_size=2)
    assert {u["userPrincipalName"] for u in users} == set(inventory["users"])
    one = get(graph, tenant.url(f"/users/{users[0]['userPrincipalName']}"))
    assert one["id"] == users[0]["id"]
    selected = collect(graph, tenant.url("/users?$select=id,accountEnabled&$top=4"))
    assert all(set(u) <= {"id", "accountEnabled"} for u in selected)
    assert len(selected) == len(users)


def test_every_mail_collection_pages(
    tenant: RunningTenant, graph: requests.Session, inventory: dict[str, Any]
) -> None:
    base = tenant.info.graph_url
    for upn, inv in inventory["users"].items():
        if not inv["mailbox"]:
            resp = graph.get(f"{base}/users/{upn}/mailFolders")
            assert resp.status_code == 404
            assert resp.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
            continue
        folders = _mail_folders(graph, base, upn)
        assert len(folders) == inv["mailFolders"]
        total = 0
        attachments = 0
        for folder in folders:
            msgs = collect(
                graph,
                f"{base}/users/{upn}/mailFolders/{folder['id']}/messages?$select=id,hasAttachments,subject",
                page_size=4,
            )
            assert len(msgs) == folder["totalItemCount"]
            total += len(msgs)
            for m in msgs:
                if m["hasAttachments"]:
                    atts = collect(graph, f"{base}/users/{upn}/messages/{m['id']}/attachments")
                    attachments += sum(
                        1
                        for a in atts
                        if not a["isInline"] and a["@odata.type"].endswith("fileAttachment")
                    )
        assert total == inv["messages"]
        assert attachments == inv["fileAttachments"]
        everything = collect(graph, f"{base}/users/{upn}/messages?$select=id", page_size=7)
        assert len(everything) == inv["messages"]


def test_contacts_and_calendars_page(
    tenant: RunningTenant, graph: requests.Session, inventory: dict[str, Any]
) -> None:
    base = tenant.info.graph_url
    for upn, inv in inventory["users"].items():
        if not inv["mailbox"]:
            continue
        folders = collect(graph, f"{base}/users/{upn}/contactFolders", page_size=1)
        assert len(folders) == inv["contactFolders"]
        contacts = collect(graph, f"{base}/users/{upn}/contacts", page_size=3)
        for f in folders:
            contacts += collect(
                graph, f"{base}/users/{upn}/contactFolders/{f['id']}/contacts?$top=2"
            )
        assert len(contacts) == inv["contacts"]
        calendars = collect(graph, f"{base}/users/{upn}/calendars", page_size=1)
        assert len(calendars) == inv["calendars"]
        events = []
        for cal in calendars:
            events += collect(
                graph, f"{base}/users/{upn}/calendars/{cal['id']}/events", page_size=2
            )
        assert len(events) == inv["events"]
        assert sum(1 for e in events if e["type"] == "seriesMaster") == inv["seriesMasters"]
        now = dt.datetime.now(dt.UTC)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        start = (now - dt.timedelta(days=60)).strftime(fmt)
        end = (now + dt.timedelta(days=60)).strftime(fmt)
        window = f"startDateTime={start}&endDateTime={end}"
        view = collect(graph, f"{base}/users/{upn}/calendarView?{window}", page_size=5)
        assert all(e["type"] in ("singleInstance", "occurrence", "exception") for e in view)


def _walk_drive(s: requests.Session, base: str, drive_id: str) -> list[dict[str, Any]]:
    out = []
    todo = [get(s, f"{base}/drives/{drive_id}/root")]
    while todo:
        item = todo.pop()
        children = collect(s, f"{base}/drives/{drive_id}/items/{item['id']}/children", page_size=5)
        for child in children:
            out.append(child)
            if "folder" in child:
                todo.append(child)
    return out


def test_drives_page_and_match(
    tenant: RunningTenant, graph: requests.Session, inventory: dict[str, Any]
) -> None:
    base = tenant.info.graph_url
    for upn, inv in inventory["users"].items():
        if not inv["drive"]:
            assert graph.get(f"{base}/users/{upn}/drive").status_code == 404
            continue
        drive = get(graph, f"{base}/users/{upn}/drive")
        assert drive["id"] == inv["driveId"]
        assert drive["driveType"] == "business"
        items = _walk_drive(graph, base, drive["id"])
        files = [i for i in items if "file" in i]
        assert len(files) == inv["driveFiles"]
        assert sum(i["size"] for i in files) == inv["driveBytes"]
        assert sum(1 for i in items if "folder" in i) == inv["driveFolders"]
        assert sum(1 for i in items if "package" in i) == inv["drivePackages"]
        assert files
        assert all("quickXorHash" in f["file"]["hashes"] for f in files)
        assert all(
            i["parentReference"]["path"].startswith(f"/drives/{drive['id']}/root:") for i in items
        )


def test_sites_lists_and_teams_page(
    tenant: RunningTenant, graph: requests.Session, inventory: dict[str, Any]
) -> None:
    base = tenant.info.graph_url
    searched = collect(graph, f"{base}/sites?search=*", page_size=2)
    all_sites = collect(graph, f"{base}/sites/getAllSites", page_size=3)
    listed = collect(graph, f"{base}/sites")
    collections = {k for k, v in inventory["sites"].items() if not v["parentSite"]}
    assert collections != set(inventory["sites"]), "the tenant has subsites"
    # Search finds webs too; GET /sites and getAllSites list site collections only.
    assert {s["id"] for s in searched} == set(inventory["sites"])
    assert {s["id"] for s in all_sites} == {s["id"] for s in listed} == collections
    for site_id in inventory["sites"]:
        below = {s["id"] for s in collect(graph, f"{base}/sites/{site_id}/sites", page_size=1)}
        assert below == {k for k, v in inventory["sites"].items() if v["parentSite"] == site_id}
    roots = get(graph, f"{base}/sites?$filter=siteCollection/root ne null")["value"]
    assert len(roots) == 1
    assert get(graph, f"{base}/sites/root")["id"] == roots[0]["id"]
    for site_id, inv in inventory["sites"].items():
        drives = get(graph, f"{base}/sites/{site_id}/drives")["value"]
        assert len(drives) == inv["drives"]
        files = [i for d in drives for i in _walk_drive(graph, base, d["id"]) if "file" in i]
        assert len(files) == inv["driveFiles"]
        lists = collect(graph, f"{base}/sites/{site_id}/lists", page_size=1)
        assert len(lists) == inv["lists"]
        libraries = [lst for lst in lists if lst["list"]["template"] == "documentLibrary"]
        assert len(libraries) == inv["documentLibraries"] == 1
        generic = [lst for lst in lists if lst not in libraries]
        items = [
            i
            for lst in generic
            for i in collect(
                graph, f"{base}/sites/{site_id}/lists/{lst['id']}/items?$expand=fields", page_size=3
            )
        ]
        assert len(items) == inv["listItems"]
        assert all("Title" in i["fields"] for i in items)
        # A library's items are its drive's files and folders.
        docs = collect(
            graph, f"{base}/sites/{site_id}/lists/{libraries[0]['id']}/items", page_size=4
        )
        assert sum(1 for i in docs if i["contentType"]["name"] == "Document") == inv["driveFiles"]
        drive = get(graph, f"{base}/sites/{site_id}/lists/{libraries[0]['id']}/drive")
        assert drive["driveType"] == "documentLibrary"
    teams = collect(graph, f"{base}/teams", page_size=1)
    assert {t["id"] for t in teams} == set(inventory["teams"])
    for team in teams:
        inv = inventory["teams"][team["id"]]
        channels = get(graph, f"{base}/teams/{team['id']}/channels")["value"]
        assert len(channels) == inv["channels"]
        roots = replies = 0
        for ch in channels:
            msgs = collect(graph, f"{base}/teams/{team['id']}/channels/{ch['id']}/messages?$top=2")
            roots += len(msgs)
            for m in msgs:
                replies += len(
                    collect(
                        graph,
                        f"{base}/teams/{team['id']}/channels/{ch['id']}/messages/{m['id']}/replies?$top=1",
                    )
                )
        assert roots == inv["messages"]
        assert replies == inv["replies"]
        site = get(graph, f"{base}/groups/{team['id']}/sites/root")
        assert site["id"] == inv["siteId"]
