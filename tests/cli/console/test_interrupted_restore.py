"""A restore running in the real ``coffer serve`` when it is stopped (SIGTERM):
the server still exits cleanly, and its next start records the restore in the
audit log as interrupted (who asked, what, when), shown on the audit page."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from store import Repository, open_backend
from tests.cli.console.kit import PASSWORDS, free_port, make_setup

pytestmark = pytest.mark.slow


def signed_in(url: str, user: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    page = session.get(url + "/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    r = session.post(
        url + "/login",
        data={"username": user, "password": PASSWORDS[user], "csrf_token": token.group(1)},
        timeout=30,
    )
    assert r.status_code == 200, r.text  # followed to the start page
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text)
    assert token
    return session, token.group(1)


def started(env_popen: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert env_popen.poll() is None, env_popen.communicate()
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_restore_cut_short_by_sigterm_is_audited_as_interrupted(tmp_path: Path) -> None:
    port = free_port()
    setup = make_setup(tmp_path / "s", listen=f"127.0.0.1:{port}")
    big = tmp_path / "big"
    big.mkdir()
    (big / "random.bin").write_bytes(os.urandom(4 << 20))
    setup.env.run("backup", "--path", str(big))
    base = setup.config.read_text()
    # Read back at 64 KiB/s: the restore takes about a minute.
    setup.config.write_text("limit_download = 64\n" + base)
    url = f"http://127.0.0.1:{port}"
    argv = ("-c", str(setup.config), "serve")
    server = setup.env.popen(*argv)
    try:
        started(server, url)
        session, token = signed_in(url, "rob")
        ids = session.get(url + "/browse", params={"p": "ids"}, timeout=30).text
        snaps = re.findall(r'href="/browse\?p=(ids/[0-9a-f]+)"', ids)
        folder = next(
            s for s in snaps if "random.bin" in session.get(url + "/browse", params={"p": s}).text
        )
        r = session.post(
            url + "/restore",
            data={"p": folder, "target": "download", "csrf_token": token},
            allow_redirects=False,
            timeout=30,
        )
        assert r.status_code == 303
        job = r.headers["location"].split("id=")[1]
        deadline = time.monotonic() + 60
        while (
            session.get(url + "/restore/status", params={"id": job}, timeout=30).json()["state"]
            != "running"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(2)
        status = session.get(url + "/restore/status", params={"id": job}, timeout=30).json()
        assert status["state"] == "running"  # still reading at 64 KiB/s
    except BaseException:
        server.kill()
        raise
    server.send_signal(signal.SIGTERM)
    _out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert f"restore {job} of rob is interrupted" in err

    # The next start reports it, once.
    setup.config.write_text(base)
    server = setup.env.popen(*argv)
    try:
        started(server, url)
        admin, _ = signed_in(url, "ann")
        page = admin.get(url + "/audit", timeout=30).text
        assert "restore-interrupted" in page
        assert f"id={job}" in page
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
    with Repository.open(
        open_backend(str(setup.env.repo)), setup.env.password_file.read_bytes().strip()
    ) as repo:
        events = [repo.load_report(k) for k in repo.list_reports("audit")]
    [entry] = [e for e in events if e["event"] == "restore-interrupted"]
    assert entry["user"] == "rob"
    assert entry["id"] == job
    assert entry["target"] == "download"
    assert entry["started"]
    assert not list((setup.env.root / "cache" / "console-jobs").glob("*.json"))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
