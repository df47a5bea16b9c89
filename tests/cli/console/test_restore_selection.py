"""Restoring several checked items of a folder as one restore job, over HTTP against
the real application and a real repository: one ``coffer restore`` with a
``--path`` per item, one stored report, one audit entry naming them all."""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from cli.serve import create_app
from store import Repository, open_backend
from tests.cli.console.kit import Setup, make_setup
from tests.cli.console.test_http import mail_path, sign_in


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return make_setup(tmp_path_factory.mktemp("selection"))


@pytest.fixture
def client(setup: Setup) -> Iterator[TestClient]:
    with setup.serving() as console, TestClient(create_app(console), follow_redirects=False) as c:
        yield c


def finished(client: TestClient, location: str) -> dict[str, Any]:
    job = location.split("id=")[1]
    deadline = time.monotonic() + 60
    while (status := client.get("/restore/status", params={"id": job}).json())["state"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert isinstance(status, dict)
    return status


def box(path: str) -> str:
    """A checkbox's value: the row's path, percent-encoded as the page encodes it."""
    return quote(path.encode("utf-8", "surrogateescape"), safe="/")


def zip_names(client: TestClient, status: dict[str, Any]) -> dict[str, bytes]:
    zipped = client.get("/restore/zip", params={"id": status["id"]})
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        return {n: archive.read(n) for n in archive.namelist() if not n.endswith("/")}


def audit(setup: Setup) -> list[dict[str, Any]]:
    with Repository.open(
        open_backend(str(setup.env.repo)), setup.env.password_file.read_bytes().strip()
    ) as repo:
        return [repo.load_report(k) for k in repo.list_reports("audit")]


def test_checked_items_of_a_folder_restore_as_one_zip(setup: Setup, client: TestClient) -> None:
    token = sign_in(client, "rob")
    root = mail_path(client, "hello.eml").rsplit("/", 2)[0]  # .../latest
    listing = client.get("/browse", params={"p": root}).text
    # A restorer gets a checkbox per row, tied to the restore form.
    boxes = re.findall(r'name="sel" value="([^"]+)" form="restore-form"', listing)
    assert boxes == [box(f"{root}/Inbox"), box(f"{root}/notes.txt")]
    r = client.post(
        "/restore",
        data={
            "sel": [box(f"{root}/Inbox/hello.eml"), box(f"{root}/notes.txt")],
            "p": root,
            "target": "download",
            "on_conflict": "skip",
            "csrf_token": token,
        },
    )
    assert r.status_code == 303, r.text
    status = finished(client, r.headers["location"])
    assert status["state"] == "done", status
    assert status["paths"] == ["Inbox/hello.eml", "notes.txt"]
    assert status["items"] == 2
    # Only the two checked items, each at its place below the folder; evil.eml,
    # the other mail of Inbox, is not restored.
    files = zip_names(client, status)
    assert files == {
        "Inbox/hello.eml": (setup.source / "Inbox" / "hello.eml").read_bytes(),
        "notes.txt": (setup.source / "notes.txt").read_bytes(),
    }
    # One report of the one restore, naming both paths.
    page = client.get("/report", params={"key": status["report"]}).text
    assert "&#34;Inbox/hello.eml&#34;" in page
    assert "&#34;notes.txt&#34;" in page
    job_page = client.get("/restore/job", params={"id": status["id"]}).text
    assert "Inbox/hello.eml, notes.txt" in job_page
    [entry] = [
        e
        for e in audit(setup)
        if e["event"] == "restore"
        and e.get("paths")
        == [
            "Inbox/hello.eml",
            "notes.txt",
        ]
    ]
    assert entry["user"] == "rob"
    assert entry["target"] == "download"


def test_one_checked_item_restores_as_a_zip_of_that_item(setup: Setup, client: TestClient) -> None:
    token = sign_in(client, "rob")
    mail = mail_path(client, "evil.eml")
    r = client.post(
        "/restore",
        data={
            "sel": box(mail),
            "p": mail.rpartition("/")[0],
            "target": "download",
            "csrf_token": token,
        },
    )
    status = finished(client, r.headers["location"])
    assert status["state"] == "done", status
    assert zip_names(client, status) == {
        "evil.eml": (setup.source / "Inbox" / "evil.eml").read_bytes()
    }


def test_an_item_page_restores_its_item_as_a_zip(setup: Setup, client: TestClient) -> None:
    # The item page's form (no checkbox, the item itself); before --path took an
    # item, a zip of one mail failed with "not a directory".
    token = sign_in(client, "rob")
    mail = mail_path(client, "hello.eml")
    r = client.post("/restore", data={"p": mail, "target": "download", "csrf_token": token})
    status = finished(client, r.headers["location"])
    assert status["state"] == "done", status
    assert list(zip_names(client, status)) == ["hello.eml"]


def test_a_selection_across_snapshots_is_refused(setup: Setup, client: TestClient) -> None:
    setup.env.run("backup", "--path", str(setup.source))  # a second snapshot
    token = sign_in(client, "rob")
    ids = client.get("/browse", params={"p": "ids"}).text
    snapshots = sorted(set(re.findall(r'href="/browse\?p=(ids/[0-9a-f]+)"', ids)))
    assert len(snapshots) >= 2
    r = client.post(
        "/restore",
        data={
            "sel": [f"{snapshots[0]}/notes.txt", f"{snapshots[1]}/notes.txt"],
            "target": "download",
            "csrf_token": token,
        },
    )
    assert r.status_code == 400
    assert "different snapshots" in r.text


def test_a_viewer_gets_no_checkboxes_and_cannot_restore_a_selection(
    setup: Setup, client: TestClient
) -> None:
    token = sign_in(client, "val")
    root = mail_path(client, "hello.eml").rsplit("/", 2)[0]
    listing = client.get("/browse", params={"p": root}).text
    assert 'name="sel"' not in listing
    assert "restore-form" not in listing
    before = len(audit(setup))
    r = client.post(
        "/restore",
        data={"sel": [box(f"{root}/notes.txt")], "target": "download", "csrf_token": token},
    )
    assert r.status_code == 403
    assert len(audit(setup)) == before  # nothing ran, nothing recorded as a restore


def test_a_dry_run_download_is_refused_not_run_for_real(setup: Setup, client: TestClient) -> None:
    token = sign_in(client, "rob")
    mail = mail_path(client, "hello.eml")
    before = len(audit(setup))
    r = client.post(
        "/restore",
        data={"p": mail, "target": "download", "dry_run": "on", "csrf_token": token},
    )
    assert r.status_code == 400
    assert "dry run is for restores into Microsoft 365" in r.text
    assert len(audit(setup)) == before
