"""Backing up what people change besides content: sharing, group membership, folder
moves and renames (mail and drives), and event attachments.

One tenant for the module; each test backs up one user (or one group) and a single
service into a repository of its own, and changes only that user's data.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from store import Entry
from tests.sources.m365.support.helpers import backup, downloads, dump, init_repo, open_repo
from tests.sources.m365.support.tenant import Setup, make_setup
from tools.graphsim.testing import RunningTenant

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    yield from make_setup(tmp_path_factory.mktemp("m365-changes"))


class Run:
    """Backups of one user's service into a repository of its own."""

    def __init__(self, setup: Setup, name: str, **options: Any) -> None:
        self.setup = setup
        self.repo = setup.root / name
        self.cache = setup.root / f"{name}-cache"
        self.options = options
        init_repo(self.repo, self.cache).close()

    def backup(self) -> dict[str, Any]:
        report = backup(self.repo, self.cache, self.setup.state, **self.options)
        assert report["status"] == "ok", dump(report)
        return report

    def tree(self, owner: str) -> dict[str, tuple[Entry, bytes | None]]:
        """Path -> (entry, content of files) in ``owner``'s latest snapshot."""
        repo = open_repo(self.repo, self.cache)
        try:
            snaps = [s for s in repo.list_snapshots() if s.owner.name == owner]
            reader = repo.reader(max(snaps, key=lambda s: s.time_ns))
            return {
                path: (entry, reader.open(path).read() if entry.is_file else None)
                for path, entry in reader.walk("")
            }
        finally:
            repo.close()


def _users(tenant: RunningTenant) -> list[dict[str, Any]]:
    return [
        u for u in tenant.admin.users() if u["purpose"] == "user" and u["drive"] and u["mailbox"]
    ]


def _served_permissions(tenant: RunningTenant, drive: str, item: str) -> list[dict[str, Any]]:
    answer = tenant.graph().get(tenant.url(f"/drives/{drive}/items/{item}/permissions"))
    assert answer.status_code == 200
    return list(answer.json()["value"])


def test_sharing_permissions_are_recorded_and_a_sharing_change_is_picked_up(sim: Setup) -> None:
    user = _users(sim.tenant)[0]
    upn, drive = user["userPrincipalName"], user["drive"]
    run = Run(sim, "sharing", users=[upn], services=["onedrive"])
    run.backup()
    tree = run.tree(upn)
    recorded = {
        e.item_id: json.loads(e.attrs["permissions"])["value"]
        for e, _ in tree.values()
        if "permissions" in e.attrs
    }
    assert len(recorded) > 5
    # Exactly what the simulator serves, for every item (links, grants, inherited ones).
    for iid, perms in recorded.items():
        assert perms == _served_permissions(sim.tenant, drive, str(iid)), iid
    links = [p["link"] for perms in recorded.values() for p in perms if "link" in p]
    assert {"view"} <= {link["type"] for link in links}

    # Sharing a file changes neither its eTag nor its content: delta lists it, and the
    # next run records its new permissions without downloading it.
    path, (entry, _) = next(
        (p, v)
        for p, v in sorted(tree.items())
        if v[0].attrs.get("type") == "driveItem"
        and not v[0].attrs.get("graph", "").count('"shared"')
    )
    change = sim.tenant.admin.mutate(op="share", id=entry.item_id, link="edit", scope="users")
    sim.tenant.admin.reset_stats()
    second = run.backup()
    assert downloads(sim.tenant.admin.stats()) == 0
    assert second["totals"]["items_changed"] >= 1
    after = run.tree(upn)
    perms = json.loads(after[path][0].attrs["permissions"])["value"]
    assert change["permission"] in {p["id"] for p in perms}
    assert perms == _served_permissions(sim.tenant, drive, str(entry.item_id))
    assert after[path][1] == tree[path][1]


def test_selecting_a_nested_group_backs_up_its_transitive_user_members(sim: Setup) -> None:
    groups = sim.tenant.admin.inventory()["groups"]
    staff_id, staff = next((k, g) for k, g in groups.items() if g["displayName"] == "All Staff")
    run = Run(sim, "group", groups=["All Staff"], services=["contacts"])
    report = run.backup()
    owners = {o["name"] for o in report["owners"]}
    assert owners == set(staff["transitiveUsers"])
    # Some members are members only through the nested group "Engineering".
    direct = set(staff["members"])
    nested_only = [
        u["userPrincipalName"]
        for u in sim.tenant.admin.users()
        if u["userPrincipalName"] in owners and u["id"] not in direct
    ]
    assert nested_only
    assert staff_id not in owners


def _mail_paths(tree: dict[str, tuple[Entry, bytes | None]]) -> dict[str, tuple[str, bytes]]:
    """Message item id -> (path, MIME)."""
    return {
        str(e.item_id): (p, data)
        for p, (e, data) in tree.items()
        if p.startswith("mail/") and p.endswith(".eml") and data is not None
    }


def test_mail_folder_rename_and_move(sim: Setup) -> None:
    tenant = sim.tenant
    user = _users(tenant)[1]
    upn = user["userPrincipalName"]
    graph = tenant.graph()
    base = tenant.url(f"/users/{user['id']}/mailFolders")
    made = graph.post(f"{base}/inbox/childFolders", json={"displayName": "Clients"}).json()
    sub = graph.post(f"{base}/{made['id']}/childFolders", json={"displayName": "Contracts"}).json()
    messages = graph.get(f"{base}/inbox/messages?$top=3&$select=id").json()["value"]
    for msg, dest in zip(messages, (made, sub, sub), strict=True):
        moved = graph.post(
            tenant.url(f"/users/{user['id']}/messages/{msg['id']}/move"),
            json={"destinationId": dest["id"]},
        )
        assert moved.status_code == 201, moved.text
    run = Run(sim, "mail-folders", users=[upn], services=["mail"])
    run.backup()
    before = _mail_paths(run.tree(upn))
    assert sum(p.startswith("mail/Inbox/Clients/Contracts/") for p, _ in before.values()) == 2

    tenant.admin.mutate(op="update", id=made["id"], changes={"displayName": "Customers"})
    archive = graph.get(f"{base}/archive").json()
    tenant.admin.mutate(op="move", id=made["id"], destination=archive["id"])
    tenant.admin.reset_stats()
    run.backup()
    stats = tenant.admin.stats()
    after = _mail_paths(run.tree(upn))
    # Same messages, same bytes, under the new path; nothing left at the old one.
    assert set(after) == set(before)
    for iid, (path, mime) in before.items():
        new_path, new_mime = after[iid]
        assert new_mime == mime
        if path.startswith("mail/Inbox/Clients/"):
            assert new_path == path.replace("mail/Inbox/Clients/", "mail/Archive/Customers/")
        else:
            assert new_path == path
    paths = set(run.tree(upn))
    assert not any(p.startswith("mail/Inbox/Clients") for p in paths)
    assert "mail/Archive/Customers/Contracts" in paths
    assert downloads(stats) == 0, stats["by_endpoint"]


def test_drive_item_move_and_rename(sim: Setup) -> None:
    tenant = sim.tenant
    user = _users(tenant)[2]
    upn = user["userPrincipalName"]
    run = Run(sim, "drive-moves", users=[upn], services=["onedrive"])
    run.backup()
    tree = run.tree(upn)
    files = sorted(p for p, (e, _) in tree.items() if e.attrs.get("type") == "driveItem")
    folders = sorted(p for p, (e, _) in tree.items() if e.attrs.get("type") == "driveFolder")
    moved_path = next(p for p in files if not p.startswith(folders[0] + "/"))
    renamed_path = next(p for p in files if p != moved_path)
    moved, renamed = tree[moved_path][0], tree[renamed_path][0]
    tenant.admin.mutate(op="move", id=moved.item_id, destination=tree[folders[0]][0].item_id)
    tenant.admin.mutate(op="update", id=renamed.item_id, changes={"name": "renamed by a user.bin"})
    tenant.admin.reset_stats()
    run.backup()
    assert downloads(tenant.admin.stats()) == 0
    after = run.tree(upn)
    new_moved = f"{folders[0]}/{moved_path.rsplit('/', 1)[1]}"
    new_renamed = f"{renamed_path.rsplit('/', 1)[0]}/renamed by a user.bin"
    assert moved_path not in after
    assert renamed_path not in after
    assert after[new_moved][1] == tree[moved_path][1]
    assert after[new_renamed][1] == tree[renamed_path][1]
    assert after[new_moved][0].item_id == moved.item_id
    assert len([p for p, (e, _) in after.items() if e.attrs.get("type") == "driveItem"]) == len(
        files
    )


def test_event_attachments_are_stored_beside_their_event(sim: Setup) -> None:
    tenant = sim.tenant
    user = _users(tenant)[0]
    upn = user["userPrincipalName"]
    run = Run(sim, "event-attachments", users=[upn], services=["calendar"])
    run.backup()
    tree = run.tree(upn)
    graph = tenant.graph()
    stored = {p: v for p, v in tree.items() if v[0].attrs.get("type") == "eventAttachment"}
    events = [
        json.loads(data)
        for p, (e, data) in tree.items()
        if e.attrs.get("type") == "event" and data is not None
    ]
    with_atts = [e for e in events if e.get("hasAttachments")]
    assert with_atts
    served = 0
    for event in with_atts:
        url = tenant.url(f"/users/{user['id']}/events/{event['id']}/attachments")
        for att in graph.get(url).json()["value"]:
            served += 1
            path, (entry, data) = next(
                (p, v) for p, v in stored.items() if v[0].attrs["id"] == att["id"]
            )
            assert data == base64.b64decode(att["contentBytes"])
            assert json.loads(entry.attrs["graph"])["name"] == att["name"]
            assert path.rsplit("/", 1)[1].startswith(entry.attrs["of"].removesuffix(".json"))
    assert served == len(stored)

    # Nothing changed: the attachments are kept without being listed again.
    tenant.admin.reset_stats()
    run.backup()
    by_endpoint = tenant.admin.stats()["by_endpoint"]
    assert not any(k.endswith("/attachments") for k in by_endpoint), by_endpoint
    again = run.tree(upn)
    assert {p: v[1] for p, v in again.items() if p in stored} == {
        p: v[1] for p, v in stored.items()
    }
