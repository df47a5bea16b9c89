"""The console's security rules over HTTP, against the real application and a real
repository (Starlette's TestClient drives the ASGI app in-process)."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests
from starlette.testclient import TestClient

from cli.serve import UserFile, create_app
from store import Repository, open_backend
from tests.cli.console.browser import coffer_serve
from tests.cli.console.kit import (
    EVIL_HOST,
    EVIL_SUBJECT,
    PASSWORDS,
    Setup,
    free_port,
    make_setup,
)
from tests.cli.support.helpers import Result

INBOX = "owners/folders"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return make_setup(tmp_path_factory.mktemp("console"))


@pytest.fixture
def client(setup: Setup) -> Iterator[TestClient]:
    with setup.serving() as console, TestClient(create_app(console), follow_redirects=False) as c:
        yield c


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def sign_in(client: TestClient, user: str, password: str | None = None) -> str:
    """Sign in; return the session's CSRF token."""
    token = csrf(client.get("/login").text)
    r = client.post(
        "/login",
        data={"username": user, "password": password or PASSWORDS[user], "csrf_token": token},
    )
    assert r.status_code == 303, r.text
    return csrf(client.get("/").text)


def mail_path(client: TestClient, name: str) -> str:
    """The browse path of a mail of the folder snapshot, found through the pages."""
    page = client.get("/browse", params={"p": INBOX}).text
    owner = re.search(r'href="/browse\?p=(owners/folders/[^"]+)"', page)
    assert owner, page
    return f"{unquote(owner.group(1))}/latest/Inbox/{name}"


def test_healthz_answers_without_sign_in(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.text == "ok\n"


@pytest.mark.parametrize(
    "path", ["/", "/runs", "/owners", "/repository", "/browse?p=owners", "/search", "/nowhere"]
)
def test_everything_else_redirects_to_login(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code in (302, 303, 307)
    assert r.headers["location"].startswith("/login")


def test_metrics_need_the_bearer_token(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    bad = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401
    r = client.get("/metrics", headers={"Authorization": "Bearer metrics-secret-token"})
    assert r.status_code == 200
    text = r.text
    for name in (
        "coffer_last_success_timestamp_seconds",
        "coffer_last_attempt_timestamp_seconds",
        "coffer_backup_duration_seconds",
        "coffer_backup_items_total",
        "coffer_backup_bytes_added_total",
        "coffer_backup_failures_total",
        "coffer_repository_size_bytes",
        "coffer_repository_dedup_ratio",
        "coffer_backup_throttled_seconds_total",
    ):
        assert f"\n{name}" in text or text.startswith(name) or f"# TYPE {name}" in text, name
    # The folder backup's owner, with its real item count (3 files).
    line = next(x for x in text.splitlines() if x.startswith("coffer_backup_items_total{"))
    assert 'kind="folders"' in line
    assert line.endswith(" 3.0")
    success = next(
        x for x in text.splitlines() if x.startswith("coffer_last_success_timestamp_seconds{")
    )
    assert float(success.rsplit(" ", 1)[1]) > 1.7e9


def test_wrong_password_is_refused_and_audited(setup: Setup, client: TestClient) -> None:
    token = csrf(client.get("/login").text)
    r = client.post(
        "/login", data={"username": "val", "password": "nope-nope", "csrf_token": token}
    )
    assert r.status_code == 401
    assert client.get("/").status_code == 303
    with Repository.open(
        open_backend(str(setup.env.repo)), setup.env.password_file.read_bytes().strip()
    ) as repo:
        entries = [repo.load_report(k) for k in repo.list_reports("audit")]
    failed = [e for e in entries if e["event"] == "sign-in" and e["outcome"] == "failed"]
    assert any(e["user"] == "val" for e in failed)
    # No secret in the audit log.
    assert not any("nope-nope" in json.dumps(e) for e in entries)


def test_login_without_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    r = client.post("/login", data={"username": "ann", "password": PASSWORDS["ann"]})
    assert r.status_code == 403
    assert client.get("/").status_code == 303


def test_signed_in_pages(client: TestClient) -> None:
    sign_in(client, "val")
    start = client.get("/")
    assert start.status_code == 200
    assert "mailbox" in start.text  # the owner
    assert "ok" in start.text
    assert client.get("/runs").status_code == 200
    assert client.get("/owners").status_code == 200
    repo = client.get("/repository")
    assert repo.status_code == 200
    assert "<svg" in repo.text


def test_post_without_csrf_token_is_refused(client: TestClient) -> None:
    token = sign_in(client, "rob")
    path = mail_path(client, "hello.eml")
    r = client.post("/restore", data={"p": path, "target": "download"})
    assert r.status_code == 403
    r = client.post("/restore", data={"p": path, "target": "download", "csrf_token": "x" + token})
    assert r.status_code == 403
    r = client.post("/logout", data={})
    assert r.status_code == 403
    assert client.get("/").status_code == 200  # still signed in


def test_security_headers(client: TestClient) -> None:
    r = client.get("/login")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie


def test_secure_cookie_when_serving_tls(setup: Setup, tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    with (
        setup.serving(tls_certificate=cert, tls_key=key) as console,
        TestClient(create_app(console), base_url="https://testserver") as c,
    ):
        cookie = c.get("/login").headers["set-cookie"].lower()
    assert "secure" in cookie
    assert "samesite=strict" in cookie


def test_viewer_may_preview_but_not_download_or_restore(client: TestClient) -> None:
    token = sign_in(client, "val")
    path = mail_path(client, "hello.eml")
    page = client.get("/item", params={"p": path})
    assert page.status_code == 200
    assert "Hello there" in page.text
    assert "restore-form" not in page.text
    assert client.get("/download", params={"p": path}).status_code == 403
    r = client.post("/restore", data={"p": path, "target": "download", "csrf_token": token})
    assert r.status_code == 403


def test_restorer_downloads_the_item_byte_for_byte(setup: Setup, client: TestClient) -> None:
    sign_in(client, "rob")
    path = mail_path(client, "hello.eml")
    r = client.get("/download", params={"p": path})
    assert r.status_code == 200
    assert r.content == (setup.source / "Inbox" / "hello.eml").read_bytes()
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["content-type"].startswith("message/rfc822")


def test_mail_preview_is_inert(client: TestClient) -> None:
    sign_in(client, "val")
    path = mail_path(client, "evil.eml")
    page = client.get("/item", params={"p": path})
    assert EVIL_SUBJECT in page.text
    body = client.get("/item/body", params={"p": path})
    assert body.status_code == 200
    html = body.text
    assert "Hello from the figures" in html
    assert "<script" not in html.lower()
    assert EVIL_HOST not in html
    assert "onerror" not in html
    assert "onload" not in html
    assert "javascript:" not in html
    csp = body.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "sandbox" in csp


def test_failed_sign_ins_lock_the_user_out(setup: Setup) -> None:
    with setup.serving() as console, TestClient(create_app(console), follow_redirects=False) as c:
        for _ in range(3):
            token = csrf(c.get("/login").text)
            r = c.post(
                "/login", data={"username": "ann", "password": "wrong-pass", "csrf_token": token}
            )
            assert r.status_code == 401
        token = csrf(c.get("/login").text)
        # Locked out: even the right password is refused now.
        r = c.post(
            "/login", data={"username": "ann", "password": PASSWORDS["ann"], "csrf_token": token}
        )
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0
        assert c.get("/").status_code == 303


def test_sign_out_ends_the_session_on_the_server(client: TestClient) -> None:
    token = sign_in(client, "val")
    cookie = client.cookies.get("coffer_session")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    client.cookies.set("coffer_session", cookie)  # replaying the old cookie
    assert client.get("/").status_code == 303


def test_removed_user_loses_access_at_once(setup: Setup, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("temporary-pass\n")
    setup.env.run(
        "-c",
        str(setup.config),
        "serve",
        "user",
        "add",
        "tmp",
        "--role",
        "viewer",
        "--password-file",
        str(pw),
    )
    with setup.serving() as console, TestClient(create_app(console), follow_redirects=False) as c:
        sign_in(c, "tmp", "temporary-pass")
        assert c.get("/").status_code == 200
        setup.env.run("-c", str(setup.config), "serve", "user", "remove", "tmp")
        assert c.get("/").status_code == 303


def test_open_redirect_after_sign_in_is_refused(client: TestClient) -> None:
    token = csrf(client.get("/login").text)
    r = client.post(
        "/login",
        data={
            "username": "val",
            "password": PASSWORDS["val"],
            "csrf_token": token,
            "next": "//evil.example/",
        },
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/"


def test_user_commands(setup: Setup, tmp_path: Path) -> None:
    config = tmp_path / "coffer.toml"
    config.write_text('[serve]\nusers_file = "u/users.json"\n')
    users = tmp_path / "u" / "users.json"
    pw = tmp_path / "pw"
    pw.write_text("first-password\n")

    def coffer(*args: str, check: bool = True) -> Result:
        return setup.env.run("-c", str(config), "serve", "user", *args, check=check)

    coffer("add", "eve", "--role", "viewer", "--password-file", str(pw))
    assert users.stat().st_mode & 0o777 == 0o600
    stored = users.read_text()
    assert "first-password" not in stored
    assert "$argon2id$" in stored
    assert coffer("list").out == "eve\tviewer\n"
    again = coffer("add", "eve", "--role", "admin", "--password-file", str(pw), check=False)
    assert again.code == 1
    assert "exists" in again.err
    assert len(again.err.strip().splitlines()) == 1
    short = tmp_path / "short"
    short.write_text("abc\n")
    bad = coffer("add", "fay", "--role", "viewer", "--password-file", str(short), check=False)
    assert bad.code == 1
    assert "shorter than 8" in bad.err
    assert (
        coffer("add", "x/y", "--role", "viewer", "--password-file", str(pw), check=False).code == 1
    )
    pw.write_text("second-password\n")
    coffer("passwd", "eve", "--password-file", str(pw), "--role", "restorer")
    assert coffer("list").out == "eve\trestorer\n"
    user_file = UserFile(users)
    assert user_file.verify("eve", "second-password") is not None
    assert user_file.verify("eve", "first-password") is None
    coffer("remove", "eve")
    assert coffer("list").out == ""
    assert coffer("remove", "eve", check=False).code == 1
    # No temporary file left behind by the atomic writes.
    assert sorted(p.name for p in users.parent.iterdir()) == ["users.json"]


def test_restore_as_a_download_and_its_audit_trail(setup: Setup, client: TestClient) -> None:
    token = sign_in(client, "rob")
    folder = mail_path(client, "hello.eml").rpartition("/")[0]
    r = client.post(
        "/restore",
        data={"p": folder, "target": "download", "on_conflict": "skip", "csrf_token": token},
    )
    assert r.status_code == 303
    job = r.headers["location"].split("id=")[1]
    deadline = time.monotonic() + 60
    while (status := client.get("/restore/status", params={"id": job}).json())["state"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status["state"] == "done", status
    assert status["exit_code"] == 0
    # Progress came from the restore's own progress counters: the two mails.
    assert status["items"] == 2
    assert status["bytes"] == sum(p.stat().st_size for p in (setup.source / "Inbox").iterdir())
    assert status["report"].startswith("reports/restore/")
    page = client.get("/restore/job", params={"id": job}).text
    assert "Download the zip" in page
    zipped = client.get("/restore/zip", params={"id": job})
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        names = sorted(archive.namelist())
        assert names == ["evil.eml", "hello.eml"]  # the folder's content
        assert archive.read("evil.eml") == (setup.source / "Inbox" / "evil.eml").read_bytes()
    # The report is the one `coffer restore` stores, shown by the console.
    report = client.get("/report", params={"key": status["report"]})
    assert report.status_code == 200
    assert "coffer-restore-report" in report.text
    # Another user's job is not theirs to see.
    sign_in(client, "val")
    assert client.get("/restore/status", params={"id": job}).status_code == 403
    with Repository.open(
        open_backend(str(setup.env.repo)), setup.env.password_file.read_bytes().strip()
    ) as repo:
        events = [repo.load_report(k) for k in repo.list_reports("audit")]
    restores = [e for e in events if e["event"] == "restore" and e["user"] == "rob"]
    assert restores
    assert restores[-1]["target"] == "download"
    assert restores[-1]["path"] == "Inbox"
    downloads = [e for e in events if e["event"] == "download" and e.get("restore") == job]
    assert len(downloads) == 1


def test_owner_report_and_browse_pages(client: TestClient) -> None:
    sign_in(client, "val")
    start = client.get("/").text
    owner = re.search(r'href="/owner\?id=([^"]+)"', start)
    assert owner
    page = client.get("/owner", params={"id": unquote(owner.group(1))})
    assert page.status_code == 200
    browse = re.search(r'href="/browse\?p=(ids/[0-9a-f]+)"', page.text)
    assert browse
    listing = client.get("/browse", params={"p": browse.group(1)})
    assert "Inbox/" in listing.text
    assert "notes.txt" in listing.text
    report = re.search(r'href="/report\?key=([^"]+)"', start)
    assert report
    shown = client.get("/report", params={"key": unquote(report.group(1))})
    assert shown.status_code == 200
    assert "coffer-backup-report" in shown.text
    # Only report keys: no other object of the repository, no path tricks.
    for key in (
        "keys/x",
        "reports/../config",
        "reports/backup/..",
        "reports/backup/../../keys/a",
        "config",
    ):
        assert client.get("/report", params={"key": key}).status_code == 404
    assert client.get("/owner", params={"id": "users/nobody"}).status_code == 404
    assert client.get("/item", params={"p": "owners/folders/nothing"}).status_code == 404
    text = client.get("/item", params={"p": f"{browse.group(1)}/notes.txt"})
    assert "some notes" in text.text


def test_serve_refuses_to_start_without_users(setup: Setup, tmp_path: Path) -> None:
    config = tmp_path / "coffer.toml"
    config.write_text(f'repository = "{setup.env.repo}"\n[serve]\nusers_file = "none.json"\n')
    result = setup.env.run("-c", str(config), "serve", check=False)
    assert result.code == 1
    assert "no console users" in result.err
    assert len(result.err.strip().splitlines()) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text('[serve]\nlisten = "nowhere"\n')
    result = setup.env.run("-c", str(bad), "serve", check=False)
    assert result.code == 16
    assert "HOST:PORT" in result.err


def test_serve_serves_every_destination(setup: Setup, tmp_path: Path) -> None:
    other = tmp_path / "other-repo"
    setup.env.run("-r", str(other), "init", "--kdf-memory", "8", "--kdf-iterations", "1")
    folder = tmp_path / "second-folder"
    folder.mkdir()
    (folder / "only-here.txt").write_text("x\n")
    setup.env.run("-r", str(other), "backup", "--path", str(folder))
    config = tmp_path / "coffer.toml"
    config.write_text(
        f'repository = "{setup.env.repo}"\n'
        f'[[destination]]\nname = "nas"\nrepository = "{other}"\n'
        f'[serve]\nusers_file = "{setup.config.parent / "users.json"}"\n'
    )
    # (COFFER_REPO empty: the configuration names the repositories.)
    with coffer_serve(setup.env, config, free_port(), COFFER_REPO="") as url:
        s = requests.Session()
        token = csrf(s.get(url + "/login").text)
        r = s.post(
            url + "/login",
            data={"username": "val", "password": PASSWORDS["val"], "csrf_token": token},
        )
        assert r.status_code == 200
        assert "mailbox" in r.text
        assert "second-folder" not in r.text
        assert '<option value="nas"' in r.text
        r = s.post(url + "/repo", data={"repo": "nas", "csrf_token": csrf(r.text)})
        assert "second-folder" in r.text
        assert "mailbox" not in r.text


def test_audit_page_is_for_admins(client: TestClient) -> None:
    sign_in(client, "rob")
    assert client.get("/audit").status_code == 403
    sign_in(client, "ann")
    page = client.get("/audit")
    assert page.status_code == 200
    assert "sign-in (ok)" in page.text
    assert ">ann<" in page.text


def test_many_names_from_one_address_lock_the_address_out(setup: Setup) -> None:
    with (
        setup.serving() as console,
        TestClient(create_app(console), follow_redirects=False) as c,
    ):
        for name in ("mia", "noah", "olga"):  # three names, one failure each
            token = csrf(c.get("/login").text)
            r = c.post(
                "/login", data={"username": name, "password": "guess-1", "csrf_token": token}
            )
            assert r.status_code == 401
        token = csrf(c.get("/login").text)
        r = c.post(
            "/login", data={"username": "val", "password": PASSWORDS["val"], "csrf_token": token}
        )
        assert r.status_code == 429
        # The lock-out ends: a clock moved past it lets the right password in.
        console.limiter.clock = lambda: time.monotonic() + 61
        token = csrf(c.get("/login").text)
        r = c.post(
            "/login", data={"username": "val", "password": PASSWORDS["val"], "csrf_token": token}
        )
        assert r.status_code == 303


@pytest.mark.parametrize(("stale_seconds", "stale"), [(3600.0, False), (0.001, True)])
def test_stale_owners_stand_out(setup: Setup, stale_seconds: float, stale: bool) -> None:
    with (
        setup.serving(stale_seconds=stale_seconds) as console,
        TestClient(create_app(console), follow_redirects=False) as c,
    ):
        sign_in(c, "val")
        page = c.get("/").text
    assert ('<tr class="stale">' in page) is stale
    assert ('class="badge">stale<' in page) is stale
