"""The simulator's behaviours that break backups (behaviours.py): each off by default,
each answering the shape its source shows when switched on, all in --profile realistic."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from quickxorhash import quickxorhash

from tools.graphsim.behaviours import BEHAVIOURS, OFFICE_FILE, REALISTIC, REWRITE_STAMP
from tools.graphsim.cli import _parser
from tools.graphsim.testing import RunningTenant, running_tenant

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTenant]:
    """A tenant with the realistic profile's marks, every behaviour switched off at
    first: each test switches on the one it looks at, and off again."""
    root = tmp_path_factory.mktemp("behaviours")
    with running_tenant(root, seed=6, throttling=False, profile="realistic") as t:
        t.admin.behaviours(disable=list(BEHAVIOURS))
        yield t


def _marked(t: RunningTenant, what: str) -> dict[str, Any]:
    marks = t.admin.behaviours()["marks"]
    key = next(k for k, v in marks.items() if v == what)
    return t.admin.item(key)


def _error(resp: requests.Response) -> tuple[int, str, str, str]:
    error = resp.json()["error"]
    inner = error.get("innerError") or {}
    return resp.status_code, error["code"], error["message"], str(inner.get("code", ""))


class _Switched:
    def __init__(self, t: RunningTenant, name: str) -> None:
        self.t, self.name = t, name

    def __enter__(self) -> None:
        self.t.admin.behaviours(enable=[self.name])

    def __exit__(self, *exc: object) -> None:
        self.t.admin.behaviours(disable=[self.name])


def test_the_default_tenant_has_every_behaviour_off(tmp_path: Path) -> None:
    with running_tenant(tmp_path, seed=6, throttling=False) as t:
        assert t.admin.behaviours() == {"enabled": [], "marks": {}}
        names = [u["userPrincipalName"] for u in t.graph().get(t.url("/users")).json()["value"]]
        assert not any("#EXT#" in n for n in names)


def test_realistic_profile_switches_on_every_behaviour_but_the_tenant_wide_licence() -> None:
    args = _parser().parse_args(["serve", "--state-dir", "x", "--profile", "realistic"])
    assert args.profile == "realistic"
    assert "no_spo_license" not in REALISTIC
    assert set(REALISTIC) | {"no_spo_license"} == set(BEHAVIOURS)


def test_realistic_profile_marks_objects_of_every_kind(realistic: RunningTenant) -> None:
    marks = realistic.admin.behaviours()["marks"]
    assert sorted(set(marks.values())) == sorted(
        {
            "malwareDetected",
            "corrupt",
            "ErrorInvalidRecipients",
            "ErrorCannotOpenFileAttachment",
            "vanish",
            "onPremises",
            "noOneDrive",
            "locked",
        }
    )
    url = realistic.url("/users?$select=id,userType")
    guests = realistic.graph().get(url).json()["value"]
    assert [u["userType"] for u in guests].count("Guest") == 1


def test_empty_channel_delta_answers_deltatoken_not_supported(realistic: RunningTenant) -> None:
    g = realistic.graph()
    team = g.get(realistic.url("/teams")).json()["value"][0]["id"]
    channels = g.get(realistic.url(f"/teams/{team}/channels")).json()["value"]
    quiet = next(c for c in channels if c["displayName"] == "Announcements (quiet)")
    busy = next(c for c in channels if c["id"] != quiet["id"])
    url = realistic.url(f"/teams/{team}/channels/{quiet['id']}/messages/delta")
    assert g.get(url).status_code == 200  # switched off: an empty round
    with _Switched(realistic, "channel_delta_empty"):
        assert _error(g.get(url)) == (
            400,
            "BadRequest",
            "Parameter 'DeltaToken' not supported for this request.",
            "",
        )
        listing = g.get(realistic.url(f"/teams/{team}/channels/{quiet['id']}/messages"))
        assert listing.status_code == 200
        assert listing.json()["value"] == []
        other = realistic.url(f"/teams/{team}/channels/{busy['id']}/messages/delta")
        assert g.get(other).status_code == 200


def test_malware_file_is_refused_on_content_and_on_its_download_url(
    realistic: RunningTenant,
) -> None:
    item = _marked(realistic, "malwareDetected")
    g = realistic.graph()
    meta = g.get(realistic.url(f"/drives/{item['scope']}/items/{item['key']}")).json()
    dl = meta["@microsoft.graph.downloadUrl"]
    assert requests.get(dl, verify=str(realistic.info.ca_file), timeout=30).status_code == 200
    with _Switched(realistic, "unreadable"):
        content = g.get(
            realistic.url(f"/drives/{item['scope']}/items/{item['key']}/content"),
            allow_redirects=False,
        )
        assert _error(content) == (403, "malwareDetected", "Malware detected", "")
        s = realistic.session()
        assert _error(s.get(dl, timeout=30)) == (403, "malwareDetected", "Malware detected", "")
        # The metadata still lists it: enumeration works, only the content is refused.
        assert g.get(realistic.url(f"/drives/{item['scope']}/items/{item['key']}")).ok


def test_unreadable_messages_answer_their_codes_every_time(realistic: RunningTenant) -> None:
    g = realistic.graph()
    corrupt = _marked(realistic, "corrupt")
    invalid = _marked(realistic, "ErrorInvalidRecipients")
    with _Switched(realistic, "unreadable"):
        for _ in range(2):
            resp = g.get(
                realistic.url(f"/users/{corrupt['owner']}/messages/{corrupt['key']}/$value")
            )
            assert _error(resp)[:2] == (500, "generalException")
        resp = g.get(realistic.url(f"/users/{invalid['owner']}/messages/{invalid['key']}/$value"))
        assert _error(resp)[:2] == (400, "ErrorInvalidRecipients")
        event = _marked(realistic, "ErrorCannotOpenFileAttachment")
        resp = g.get(realistic.url(f"/users/{event['owner']}/events/{event['key']}/attachments"))
        assert _error(resp)[:2] == (400, "ErrorCannotOpenFileAttachment")
        assert g.get(realistic.url(f"/users/{event['owner']}/events/{event['key']}")).ok
    ok = g.get(realistic.url(f"/users/{corrupt['owner']}/messages/{corrupt['key']}/$value"))
    assert ok.status_code == 200
    assert b"Subject:" in ok.content


def test_office_files_in_libraries_are_rewritten_on_download(realistic: RunningTenant) -> None:
    g = realistic.graph()
    sites = g.get(realistic.url("/sites/getAllSites")).json()["value"]
    found = None
    for site in sites:
        drive = g.get(realistic.url(f"/sites/{site['id']}/drive"))
        if not drive.ok:
            continue
        hit = g.get(realistic.url(f"/drives/{drive.json()['id']}/root:/{OFFICE_FILE}"))
        if hit.ok:
            found = hit.json()
            break
    assert found is not None
    s = realistic.session()
    plain = s.get(found["@microsoft.graph.downloadUrl"], timeout=30).content
    assert len(plain) == found["size"]
    with _Switched(realistic, "office_rewrite"):
        fresh = g.get(
            realistic.url(f"/drives/{found['parentReference']['driveId']}/items/{found['id']}")
        )
        resp = s.get(fresh.json()["@microsoft.graph.downloadUrl"], timeout=30)
    assert resp.status_code == 200
    assert (
        int(resp.headers["Content-Length"])
        == len(resp.content)
        == found["size"] + len(REWRITE_STAMP)
    )
    assert resp.content == plain + REWRITE_STAMP
    qx = quickxorhash()
    qx.update(resp.content)
    assert base64.b64encode(qx.digest()).decode() != found["file"]["hashes"]["quickXorHash"]


def test_onedrive_files_are_not_rewritten(realistic: RunningTenant) -> None:
    item = _marked(realistic, "malwareDetected")  # a OneDrive file (not malware here)
    g = realistic.graph()
    with _Switched(realistic, "office_rewrite"):
        meta = g.get(realistic.url(f"/drives/{item['scope']}/items/{item['key']}")).json()
        body = realistic.session().get(meta["@microsoft.graph.downloadUrl"], timeout=30).content
    assert len(body) == meta["size"]


def test_no_service_marks_answer_not_applicable_codes(realistic: RunningTenant) -> None:
    g = realistic.graph()
    onprem = _marked(realistic, "onPremises")
    nodrive = _marked(realistic, "noOneDrive")
    with _Switched(realistic, "no_service"):
        mail = g.get(realistic.url(f"/users/{onprem['key']}/mailFolders"))
        assert _error(mail)[:2] == (404, "MailboxNotEnabledForRESTAPI")
        assert g.get(realistic.url(f"/users/{onprem['key']}/drives")).ok
        drive = g.get(realistic.url(f"/users/{nodrive['key']}/drives"))
        assert _error(drive)[:3] == (404, "ResourceNotFound", "User's mysite not found.")
        assert g.get(realistic.url(f"/users/{nodrive['key']}/mailFolders")).ok
        realistic.admin.behaviours(mark={onprem["key"]: "invalidUser"})
        try:
            mail = g.get(realistic.url(f"/users/{onprem['key']}/messages"))
            assert _error(mail)[:2] == (404, "ErrorInvalidUser")
        finally:
            realistic.admin.behaviours(mark={onprem["key"]: "onPremises"})


def test_locked_site_answers_423_resource_locked(realistic: RunningTenant) -> None:
    site = _marked(realistic, "locked")
    g = realistic.graph()
    assert g.get(realistic.url(f"/sites/{site['key']}")).ok
    with _Switched(realistic, "locked_sites"):
        status, code, _message, inner = _error(g.get(realistic.url(f"/sites/{site['key']}")))
        assert (status, code, inner) == (423, "notAllowed", "resourceLocked")
        assert _error(g.get(realistic.url(f"/sites/{site['key']}/drives")))[0] == 423


def test_no_spo_license_refuses_sharepoint_and_onedrive_only(realistic: RunningTenant) -> None:
    g = realistic.graph()
    user = _marked(realistic, "noOneDrive")
    with _Switched(realistic, "no_spo_license"):
        for path in ("/sites/getAllSites", f"/users/{user['key']}/drives"):
            assert _error(g.get(realistic.url(path)))[:3] == (
                400,
                "BadRequest",
                "Tenant does not have a SPO license.",
            )
        assert g.get(realistic.url(f"/users/{user['key']}/mailFolders")).ok
        assert g.get(realistic.url("/teams")).ok


def test_deleted_in_flight_folder_vanishes_when_its_messages_are_asked_for(
    tmp_path: Path,
) -> None:
    with running_tenant(tmp_path, seed=6, throttling=False, profile="realistic") as t:
        t.admin.behaviours(disable=[b for b in BEHAVIOURS if b != "deleted_in_flight"])
        folder = next(
            t.admin.item(k)
            for k, v in t.admin.behaviours()["marks"].items()
            if v == "vanish" and t.admin.item(k)["kind"] == "mailFolder"
        )
        g = t.graph()
        listed = g.get(t.url(f"/users/{folder['owner']}/mailFolders/{folder['key']}"))
        assert listed.ok
        resp = g.get(t.url(f"/users/{folder['owner']}/mailFolders/{folder['key']}/messages/delta"))
        assert _error(resp) == (
            404,
            "ErrorSyncFolderNotFound",
            "The folder to be synchronized could not be found.",
            "",
        )
        gone = g.get(t.url(f"/users/{folder['owner']}/mailFolders/{folder['key']}"))
        assert gone.status_code == 404
