"""The service registry (sources/m365/services.py) and the code bound to it."""

from __future__ import annotations

import pytest

from sources.m365.backup.runner import BACKUPS
from sources.m365.graph.throttle import Resource
from sources.m365.restore.runner import WRITERS, writable_services
from sources.m365.restore.target import ORIGINAL, SITE, USER, parse_target
from sources.m365.services import (
    ITEM_KINDS,
    REGISTRY,
    SERVICES,
    TO_ORIGINAL,
    TO_SITE,
    TO_USER,
    USER_SERVICES,
    restorable_owner,
    service_of,
    spec,
    writable_to,
)


def test_every_service_has_a_backup_function_and_every_writable_one_a_writer() -> None:
    assert tuple(BACKUPS) == SERVICES
    assert tuple(WRITERS) == tuple(s.name for s in REGISTRY if s.restore_to)


def test_names_and_user_services_are_those_the_configuration_documents() -> None:
    assert SERVICES == ("mail", "contacts", "calendar", "onedrive", "sharepoint", "teams", "groups")
    assert USER_SERVICES == ("mail", "contacts", "calendar", "onedrive")


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("mail/Inbox/x.eml", "mail"),
        ("contacts/Contacts/a.json", "contacts"),
        ("calendar/Calendar/e.json", "calendar"),
        ("onedrive/a.txt", "onedrive"),
        ("onedrive-b!xyz/a.txt", "onedrive"),
        ("libraries/Documents/a.txt", "sharepoint"),
        ("lists/Tasks/1 a.json", "sharepoint"),
        ("channels/General/t.json", "teams"),
        ("conversations/c/t.json", "groups"),
        ("versions/mail/x.eml", None),
        ("site.json", None),
        ("onedriveX/a.txt", None),
    ],
)
def test_a_tree_path_belongs_to_the_service_whose_root_holds_it(
    path: str, service: str | None
) -> None:
    assert service_of(path) == service


def test_item_kinds_by_entry_type() -> None:
    assert ITEM_KINDS == {
        "message": "message",
        "contact": "contact",
        "event": "event",
        "driveItem": "file",
        "listItem": "list-item",
        "chatThread": "post",
    }


def test_where_items_may_be_written_back() -> None:
    assert writable_to("site") == ("onedrive", "sharepoint")
    assert writable_to("user") == ("mail", "contacts", "calendar", "onedrive", "sharepoint")
    assert writable_services("users", parse_target("original")) == writable_to("user")
    assert writable_services("sites", parse_target("site:contoso.example/sites/x")) == (
        "onedrive",
        "sharepoint",
    )
    for kind in ("teams", "groups"):
        assert not restorable_owner(kind)
        assert writable_services(kind, parse_target("original")) == ()


def test_throttling_resources() -> None:
    for name in ("mail", "contacts", "calendar", "groups"):
        assert spec(name).resource("box-1") == Resource.mailbox("box-1")
    assert spec("teams").resource("t") == Resource.teams(None)
    for name in ("onedrive", "sharepoint"):
        assert spec(name).resource("u") == Resource.sharepoint()
    assert [s.name for s in REGISTRY if s.needs_mailbox] == ["contacts", "calendar"]


def test_target_kinds_are_those_of_the_restore_target() -> None:
    assert (TO_ORIGINAL, TO_USER, TO_SITE) == (ORIGINAL, USER, SITE)
