"""The console in a real browser (headless Chromium): sign in, see the last run,
open a hostile mail and see it inert, refused requests without a CSRF token,
a viewer that cannot restore, and sign-in lock-outs. Screenshots of each page
go to the test's temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.cli.console.browser import chromium, coffer_serve, shot, sign_in
from tests.cli.console.kit import EVIL_HOST, EVIL_SUBJECT, PASSWORDS, free_port, make_setup


def _post_without_token(page: Page, path: str, fields: dict[str, str]) -> int:
    """POST a form from the signed-in page the way a forged request would (cookies
    sent, no CSRF token); the answer's status."""
    status = page.evaluate(
        """async ([path, fields]) => {
            const body = new URLSearchParams(fields);
            const r = await fetch(path, {method: "POST", body, redirect: "manual"});
            return r.status;
        }""",
        [path, fields],
    )
    assert isinstance(status, int)
    return status


def test_console_in_a_browser(tmp_path: Path) -> None:
    setup = make_setup(tmp_path / "s")
    shots = tmp_path / "screenshots"
    requested: list[str] = []
    with coffer_serve(setup.env, setup.config, free_port()) as url, chromium() as browser:
        context = browser.new_context()
        context.on("request", lambda r: requested.append(r.url))
        page = context.new_page()
        console_errors: list[str] = []
        page.on("console", lambda m: console_errors.append(m.text))

        # Not signed in: the start page sends the browser to the sign-in form.
        page.goto(url + "/")
        assert page.url.startswith(url + "/login")
        shot(page, shots, "login")

        # Sign in as the restorer; the start page shows the owner and the last run.
        sign_in(page, url, "rob", PASSWORDS["rob"])
        page.wait_for_url(url + "/")
        assert page.locator("table.owners").inner_text().count("mailbox") == 1
        runs = page.locator("table.runs tbody tr")
        assert runs.count() == 1
        assert "ok" in runs.first.inner_text()
        shot(page, shots, "start")
        for name in ("runs", "owners", "repository"):
            page.goto(f"{url}/{name}")
            shot(page, shots, name)
        assert page.locator("svg.chart polyline").count() == 1

        # Browse to the hostile mail and open it.
        page.goto(url + "/browse?p=owners/folders")
        page.locator("table.listing a").first.click()
        page.locator("table.listing a", has_text="latest").click()
        page.locator("table.listing a", has_text="Inbox").click()
        shot(page, shots, "browse")
        page.locator("table.listing a", has_text="evil.eml").click()
        page.wait_for_load_state("networkidle")
        assert page.locator("#mail-subject").inner_text() == EVIL_SUBJECT
        frame = page.frame_locator("#preview")
        assert frame.locator("h1").inner_text() == "Hello from the figures"
        shot(page, shots, "mail")
        # Nothing ran: neither in the page nor in the (sandboxed) frame, and no
        # request left for the remote host.
        assert page.evaluate("() => window.__pwned === undefined")
        assert page.title() != "pwned"
        inner = page.frames[1]
        assert inner.evaluate("() => window.__pwned === undefined")
        assert not [u for u in requested if EVIL_HOST in u]
        assert page.locator("#restore-form").count() == 1  # a restorer may restore

        # A state change without the CSRF token is refused.
        assert _post_without_token(page, "/restore", {"p": "x", "target": "download"}) == 403
        assert _post_without_token(page, "/logout", {}) == 403
        page.goto(url + "/")
        assert page.url == url + "/"  # still signed in

        # A viewer sees the mail but no restore form, and a forged restore is refused.
        mail_url = [u for u in requested if "/item?p=" in u][-1]
        viewer = browser.new_context().new_page()
        sign_in(viewer, url, "val", PASSWORDS["val"])
        viewer.wait_for_url(url + "/")
        viewer.goto(mail_url)
        assert viewer.locator("#mail-subject").inner_text() == EVIL_SUBJECT
        assert viewer.locator("#restore-form").count() == 0
        assert viewer.locator("#download").count() == 0
        shot(viewer, shots, "viewer-mail")
        token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
        assert token
        forged = _post_without_token(
            viewer, "/restore", {"p": "x", "target": "download", "csrf_token": token}
        )
        assert forged == 403

        # Failed sign-ins get locked out (3 attempts in the test configuration).
        other = browser.new_context().new_page()
        for _ in range(3):
            sign_in(other, url, "ann", "wrong password")
            assert "Wrong user name or password" in other.locator("#login-error").inner_text()
        sign_in(other, url, "ann", PASSWORDS["ann"])
        assert "Too many failed sign-ins" in other.locator("#login-error").inner_text()
        shot(other, shots, "locked-out")
        assert not console_errors or all(
            "403" in e or "Failed to load" in e for e in console_errors
        )
    for name in ("login", "start", "runs", "owners", "repository", "browse", "mail", "viewer-mail"):
        assert (shots / f"{name}.png").stat().st_size > 1000


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The browser and requests go straight to loopback.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
