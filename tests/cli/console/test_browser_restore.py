"""Restoring from the browser into the Microsoft 365 simulator: open a mail of the
backup, delete it through Graph, restore it to its original folder from the
console, and see it back through Graph."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from cli.serve import UserFile
from tests.cli.console.browser import chromium, coffer_serve, shot, sign_in
from tests.cli.console.kit import free_port
from tests.cli.support.helpers import init, new_env
from tests.sources.m365.support.restoring import Graph
from tools.graphsim.testing import running_tenant

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def _inbox_ids(g: Graph, uid: str) -> dict[str, str]:
    """internetMessageId -> Graph ID of the Inbox's messages."""
    return {
        m["internetMessageId"]: m["id"]
        for m in g.all(f"/users/{uid}/mailFolders/inbox/messages", **{"$top": "100"})
    }


def restore(page: Page, mail_url: str, *, dry_run: bool) -> None:
    """Restore the mail at ``mail_url`` to its original folder through the form, and
    wait until the job page says it is done."""
    page.goto(mail_url)
    # Keyboard, not mouse: on this page (a sandboxed, cross-process preview frame)
    # headless Chromium with --disable-gpu loses mouse clicks now and then.
    page.locator("input[name=target][value=original]").focus()
    page.keyboard.press("Space")
    page.select_option("select[name=on_conflict]", "skip")
    if dry_run:
        page.locator("input[name=dry_run]").focus()
        page.keyboard.press("Space")
    assert page.locator("input[name=dry_run]").is_checked() == dry_run
    with page.expect_navigation():
        page.locator("#restore-button").focus()
        page.keyboard.press("Enter")
    assert "/restore/job?id=" in page.url
    deadline = time.monotonic() + 120
    while page.locator("#job-state").inner_text() in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert page.locator("#job-state").inner_text() == "done", page.content()


def test_restore_a_mail_to_its_folder_from_the_browser(tmp_path: Path) -> None:
    env = new_env(tmp_path / "coffer")
    init(env)
    shots = tmp_path / "screenshots"
    with running_tenant(tmp_path / "sim", seed=5, throttling=False) as tenant:
        g = Graph(tenant)
        user = g.user(index=0)
        upn, uid = user["userPrincipalName"], user["id"]
        config = tmp_path / "sim" / "console.toml"
        config.write_text(
            (tmp_path / "sim" / "coffer.toml").read_text()
            + '\n[serve]\nusers_file = "console-users.json"\n'
        )
        env.run(
            "backup",
            *("--user", upn, "--service", "mail", "--service", "contacts"),
            *("--service", "calendar"),
            COFFER_CONFIG=str(config),
        )
        UserFile(tmp_path / "sim" / "console-users.json").add("rob", "restorer", "rob-password")
        with coffer_serve(env, config, free_port()) as url, chromium() as browser:
            page = browser.new_page()
            sign_in(page, url, "rob", "rob-password")
            page.wait_for_url(url + "/")
            # The Microsoft 365 run and its owner, from the run report and snapshots.
            assert upn in page.locator("table.owners").inner_text()
            assert "ok" in page.locator("table.runs tbody tr").first.inner_text()
            shot(page, shots, "start")
            page.locator("table.runs tbody tr a").first.click()
            assert upn in page.locator("main table").first.inner_text()
            shot(page, shots, "run-report")

            # A contact and an event preview their main fields.
            for service, kind in (("contacts", "contact"), ("calendar", "event")):
                page.goto(url + "/browse?p=owners/users")
                page.locator("table.listing a", has_text=upn).click()
                page.locator("table.listing a", has_text="latest").click()
                page.locator("table.listing a", has_text=service).click()
                page.locator("table.listing a").first.click()
                page.locator(f"table.listing tr.{kind} a").first.click()
                label = "Name" if kind == "contact" else "Start"
                assert page.locator("main table.facts th", has_text=label).count() >= 1
                shot(page, shots, kind)
            page.goto(url + "/browse?p=owners/users")
            page.locator("table.listing a", has_text=upn).click()
            page.locator("table.listing a", has_text="latest").click()
            page.locator("table.listing a", has_text="mail").click()
            page.locator("table.listing a", has_text="Inbox").click()
            page.locator("table.listing tr.message a").first.click()
            message_id = page.locator('td[data-key="internetMessageId"]').text_content() or ""
            subject = page.locator("#mail-subject").inner_text()
            assert subject
            mail_url = page.url
            shot(page, shots, "mail")

            # Search finds the mail by its subject (coffer find's code) and links to it.
            page.goto(url + "/search")
            page.fill("input[name=subject]", subject)
            page.click("form.search button")
            page.wait_for_load_state()
            assert page.locator("main table a", has_text=subject).count() >= 1
            shot(page, shots, "search")

            inbox = _inbox_ids(g, uid)
            assert message_id in inbox
            g.delete(f"/users/{uid}/messages/{inbox[message_id]}")
            assert message_id not in _inbox_ids(g, uid)

            # A dry run first: it says what it would do and changes nothing.
            restore(page, mail_url, dry_run=True)
            assert "1 would create" in page.locator("#job-summary").inner_text()
            assert message_id not in _inbox_ids(g, uid)
            shot(page, shots, "restore-dry-run")

            restore(page, mail_url, dry_run=False)
            shot(page, shots, "restore")
            assert "1 created" in page.locator("#job-summary").inner_text()
            assert page.locator("#job-items").inner_text().startswith("1")
            # Back in its folder, as Graph shows it.
            assert message_id in _inbox_ids(g, uid)
            page.click("#job-report")
            assert "coffer-restore-report" in page.content()
            shot(page, shots, "restore-report")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
