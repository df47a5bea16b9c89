"""Microsoft 365 groups: conversations, threads, posts, attachments and the group calendar,
backed up from the simulator and compared with what Graph serves."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import requests

from sources.m365 import M365ConfigError
from sources.m365.render.groups import inert, render_group_thread
from tests.sources.m365.support.helpers import open_repo, settings_for
from tests.sources.m365.support.tenant import Setup
from tools.graphsim.testing import app_token, trusted_session

pytestmark = pytest.mark.sim


def _graph(setup: Setup) -> tuple[requests.Session, str]:
    session = trusted_session(setup.tenant.info)
    session.headers["Authorization"] = f"Bearer {app_token(setup.tenant.info)}"
    return session, setup.tenant.info.graph_url


def _all(session: requests.Session, url: str, **params: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        answer = session.get(next_url, params=params if next_url == url else None, timeout=30)
        answer.raise_for_status()
        body = answer.json()
        out += body["value"]
        next_url = body.get("@odata.nextLink")
    return out


def _group_files(setup: Setup) -> dict[str, dict[str, tuple[dict[str, str], bytes]]]:
    """Per group id: path -> (attributes, bytes) of its latest snapshot's files."""
    repo = open_repo(setup.repo, setup.cache)
    out: dict[str, dict[str, tuple[dict[str, str], bytes]]] = {}
    try:
        latest: dict[str, Any] = {}
        for snap in repo.list_snapshots():
            if snap.owner.kind != "groups" or snap.partial:
                continue
            if snap.owner.key not in latest or snap.time_ns > latest[snap.owner.key].time_ns:
                latest[snap.owner.key] = snap
        for key, snap in latest.items():
            reader = repo.reader(snap)
            files = {}
            for path, entry in reader.walk(""):
                if entry.is_file:
                    files[path] = (dict(entry.attrs), reader.open(path).read())
            out[key] = files
    finally:
        repo.close()
    return out


def _of_type(files: dict[str, tuple[dict[str, str], bytes]], kind: str) -> dict[str, Any]:
    return {p: f for p, f in files.items() if f[0].get("type") == kind}


def test_every_group_mailbox_and_calendar_is_in_its_snapshot(setup: Setup) -> None:
    report = setup.backup()
    assert report["exit_code"] == 0, report["problems"]
    inventory = setup.tenant.admin.inventory(detail=False)
    unified = {k: g for k, g in inventory["groups"].items() if g.get("mailbox")}
    assert any(g["displayName"] == "Marketing Announcements" for g in unified.values())
    assert len(unified) >= 3  # the group without a team and every team's group
    stored = _group_files(setup)
    assert set(stored) == set(unified)  # security groups have no group mailbox
    session, graph = _graph(setup)
    for gid, group in unified.items():
        want = group["mailbox"]
        files = stored[gid]
        threads = _of_type(files, "groupThread")
        assert len(threads) == want["threads"]
        assert len({p.rsplit("/", 1)[0] for p in threads}) == want["conversations"]
        assert sum(len(json.loads(b)["posts"]) for _a, b in threads.values()) == want["posts"]
        assert len(_of_type(files, "postAttachment")) == want["postAttachments"]
        assert len(_of_type(files, "event")) == want["calendarViewItems"]
        for path in threads:
            stem = path[: -len(".json")]
            assert files[f"{stem}.html"][0]["type"] == "rendering"
        # The posts as Graph serves them, byte for byte in the stored JSON.
        for thread in _all(session, f"{graph}/groups/{gid}/threads"):
            posts = _all(session, f"{graph}/groups/{gid}/threads/{thread['id']}/posts")
            mine = [
                json.loads(b)
                for _a, b in threads.values()
                if json.loads(b)["thread"]["id"] == thread["id"]
            ]
            assert len(mine) == 1
            assert mine[0]["posts"] == posts
            for post in posts:
                if not post["hasAttachments"]:
                    continue
                url = f"{graph}/groups/{gid}/threads/{thread['id']}/posts/{post['id']}/attachments"
                for att in _all(session, url):
                    data = base64.b64decode(att["contentBytes"])
                    found = [
                        b
                        for p, (a, b) in files.items()
                        if a.get("type") == "postAttachment" and a.get("id") == att["id"]
                    ]
                    assert found == [data]
        # Every calendar entry has its .ics beside it.
        for path in _of_type(files, "event"):
            ics = files[path[: -len(".json")] + ".ics"][1]
            assert ics.startswith(b"BEGIN:VCALENDAR")


def test_an_unchanged_tenant_stores_nothing_new_and_a_new_post_changes_one_thread(
    setup: Setup,
) -> None:
    assert setup.backup()["exit_code"] == 0
    before = _group_files(setup)
    again = setup.backup()
    for owner in again["owners"]:
        if owner["kind"] == "groups":
            service = owner["services"]["groups"]
            assert service["items_new"] == service["items_changed"] == 0, owner["name"]
            assert service["items_unchanged"] > 0
            assert owner["requests"] <= 2  # the conversations and the calendar view
    assert _group_files(setup) == before
    inventory = setup.tenant.admin.inventory(detail=False)
    gid = next(k for k, g in inventory["groups"].items() if g["displayName"].startswith("Market"))
    session, graph = _graph(setup)
    threads = _all(session, f"{graph}/groups/{gid}/threads")
    target = threads[-1]
    setup.tenant.admin.mutate(
        op="create", kind="post", parent=target["id"], props={"content": "<p>New reply</p>"}
    )
    third = setup.backup()
    owners = {o["key"]: o for o in third["owners"] if o["kind"] == "groups"}
    service = owners[gid]["services"]["groups"]
    assert (service["items_new"], service["items_changed"], service["items_deleted"]) == (0, 1, 0)
    after = _group_files(setup)
    changed = {p for p in after[gid] if after[gid][p] != before[gid].get(p)}
    changed |= {p for p in before[gid] if p not in after[gid]}
    stems = {p.rsplit(".", 1)[0] for p in changed}
    assert len(stems) == 1, changed  # one thread: its JSON and its page, same names
    (stem,) = stems
    thread = json.loads(after[gid][f"{stem}.json"][1])
    assert thread["thread"]["id"] == target["id"]
    assert "New reply" in thread["posts"][-1]["body"]["content"]
    for other in set(owners) - {gid}:
        assert owners[other]["services"]["groups"]["items_changed"] == 0


def test_the_hostile_post_page_runs_and_loads_nothing(setup: Setup) -> None:
    assert setup.backup()["exit_code"] == 0
    pages = [
        b.decode()
        for files in _group_files(setup).values()
        for a, b in files.values()
        if a.get("type") == "rendering" and b"Launch plan attached" in b
    ]
    assert len(pages) == 1
    page = pages[0]
    assert "<script" not in page.lower()
    assert "evil.example.com" not in page
    assert "tracker.example.com" not in page  # the remote image is not referenced at all
    assert "onclick" not in page.lower()
    assert "javascript:" not in page.lower()
    assert "default-src 'none'" in page


@pytest.mark.parametrize(
    "attack",
    [
        '<img src="https://t.example/p.gif">',
        "<img src='https://t.example/p.gif'>",
        "<img src=https://t.example/p.gif>",
        '<img srcset="https://t.example/p.gif 2x">',
        '<table background="https://t.example/p.gif"><tr><td>x</td></tr></table>',
        '<video poster="//t.example/p.gif"></video>',
    ],
)
def test_remote_references_are_emptied(attack: str) -> None:
    page = render_group_thread(
        {"topic": "x"}, [{"body": {"contentType": "html", "content": attack}}], "G"
    )
    assert "t.example" not in page.decode()


def test_data_images_stay() -> None:
    assert 'src="data:image/png;base64,AAAA"' in inert('<img src="data:image/png;base64,AAAA">')


def test_group_events_refuse_app_tokens_and_calendar_view_serves_them(setup: Setup) -> None:
    inventory = setup.tenant.admin.inventory(detail=False)
    gid = next(k for k, g in inventory["groups"].items() if g.get("mailbox"))
    session, graph = _graph(setup)
    refused = session.get(f"{graph}/groups/{gid}/events", timeout=30)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "ErrorAccessDenied"
    window = {"startDateTime": "2000-01-01T00:00:00Z", "endDateTime": "2100-01-01T00:00:00Z"}
    view = session.get(f"{graph}/groups/{gid}/calendarView", params=window, timeout=30)
    assert view.status_code == 200
    assert view.json()["value"]
    # A security group has no group mailbox.
    security = next(k for k, g in inventory["groups"].items() if not g.get("mailbox"))
    assert session.get(f"{graph}/groups/{security}/conversations", timeout=30).status_code == 404
    unified = _all(
        session,
        f"{graph}/groups",
        **{"$filter": "groupTypes/any(c:c eq 'Unified')", "$select": "id,groupTypes"},
    )
    assert {g["id"] for g in unified} == {
        k for k, g in inventory["groups"].items() if g.get("mailbox")
    }
    assert all(re.fullmatch(r"[0-9a-f-]{36}", g["id"]) for g in unified)


def test_without_group_permissions_the_groups_are_reported_and_the_rest_is_kept(
    setup: Setup,
) -> None:
    setup.tenant.admin.switches(revoke_roles=["Group-Conversation.Read.All", "Group.Read.All"])
    report = setup.backup(services=["groups", "teams"])
    groups = [o for o in report["owners"] if o["kind"] == "groups"]
    teams = [o for o in report["owners"] if o["kind"] == "teams"]
    # Listing groups needs Group.Read.All too: no group owner, a problem said once.
    assert not groups
    assert any("groups owners" in p for p in report["problems"]), report["problems"]
    assert teams
    assert all(t["status"] == "ok" for t in teams)


def test_m365_groups_selects_by_name_or_mail_and_checks_the_window(setup: Setup) -> None:
    report = setup.backup(services=["groups"], m365_groups=["marketingannouncements@*"])
    assert report["exit_code"] == 0
    assert [o["name"].rsplit(" [", 1)[0] for o in report["owners"]] == ["Marketing Announcements"]
    report = setup.backup(services=["groups"], m365_groups=["Project*", "Help*"])
    assert sorted(o["name"].rsplit(" [", 1)[0] for o in report["owners"]) == [
        "Helpdesk",
        "Project Apollo",
    ]
    with pytest.raises(M365ConfigError, match="group_calendar_years"):
        settings_for(setup.state, group_calendar_years=0)


def test_post_attachments_over_max_item_size_are_excluded_not_failed(setup: Setup) -> None:
    report = setup.backup(services=["groups"], max_item_size=100)
    assert report["exit_code"] == 0
    assert report["totals"]["items_excluded"] == 1  # the one PDF attached to a post
    files = _group_files(setup)
    assert not any(_of_type(f, "postAttachment") for f in files.values())
    inventory = setup.tenant.admin.inventory(detail=False)
    for gid, group in inventory["groups"].items():
        if group.get("mailbox"):
            assert len(_of_type(files[gid], "groupThread")) == group["mailbox"]["threads"]
