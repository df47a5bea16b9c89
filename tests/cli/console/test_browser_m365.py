"""The console over a Microsoft 365 backup (the simulator over real HTTPS), in
headless Chromium: two mails checked in a folder and restored in one job to
another user, seen there through Graph, then deleted and restored to where
they were; a Teams channel thread whose message
carries script and a remote image previews inert; a viewer gets neither
checkboxes nor restore. Screenshots go to the test's temporary directory."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from cli.serve import UserFile
from tests.cli.console.browser import chromium, coffer_serve, shot, sign_in
from tests.cli.console.kit import free_port
from tests.cli.console.test_browser import _post_without_token
from tests.cli.support.helpers import init, new_env
from tests.sources.m365.support.restoring import Graph
from tools.graphsim.testing import running_tenant

pytestmark = [pytest.mark.sim, pytest.mark.slow]

TRACKER = "tracker.invalid"
HOSTILE = (
    '<p id="marker">Release notes are ready</p>'
    "<script>window.parent.__pwned = 1; window.__pwned = 1</script>"
    f'<img src="http://{TRACKER}/pixel.gif" alt="pixel">'
    '<img src="x" onerror="window.__pwned = 2">'
    f'<a href="javascript:window.__pwned = 3">open</a>'
)


def test_console_over_microsoft_365_in_a_browser(tmp_path: Path) -> None:
    env = new_env(tmp_path / "coffer")
    init(env)
    shots = tmp_path / "screenshots"
    requested: list[str] = []
    with running_tenant(tmp_path / "sim", seed=5, throttling=False) as tenant:
        g = Graph(tenant)
        user, other = g.user(index=0), g.user(index=1)
        upn, other_upn = user["userPrincipalName"], other["userPrincipalName"]
        # A channel message of the first team gets a hostile HTML body.
        team = next(
            t for t in g.all("/groups") if "Team" in (t.get("resourceProvisioningOptions") or [])
        )
        general = next(
            c for c in g.all(f"/teams/{team['id']}/channels") if c["displayName"] == "General"
        )
        post = g.all(f"/teams/{team['id']}/channels/{general['id']}/messages")[0]
        tenant.admin.mutate(
            op="update",
            key=f"{general['id']}/{post['id']}",
            changes={"body": {"contentType": "html", "content": HOSTILE}},
        )
        created = datetime.fromisoformat(post["createdDateTime"].replace("Z", "+00:00"))
        thread_prefix = created.strftime("%Y-%m-%dT%H-%M-%SZ")

        config = tmp_path / "sim" / "console.toml"
        config.write_text(
            (tmp_path / "sim" / "coffer.toml").read_text()
            + '\n[serve]\nusers_file = "console-users.json"\n'
        )
        env.run("backup", "--user", upn, "--service", "mail", COFFER_CONFIG=str(config))
        env.run("backup", "--service", "teams", COFFER_CONFIG=str(config))
        users = UserFile(tmp_path / "sim" / "console-users.json")
        users.add("rob", "restorer", "rob-password")
        users.add("val", "viewer", "val-password")

        with coffer_serve(env, config, free_port()) as url, chromium() as browser:
            context = browser.new_context()
            context.on("request", lambda r: requested.append(r.url))
            page = context.new_page()
            sign_in(page, url, "rob", "rob-password")
            page.wait_for_url(url + "/")

            # Two mails of the Inbox, checked, restored in one job to another user.
            page.goto(url + "/browse?p=owners/users")
            page.locator("table.listing a", has_text=upn).click()
            page.locator("table.listing a", has_text="latest").click()
            page.locator("table.listing a", has_text="mail").click()
            page.locator("table.listing a", has_text="Inbox").click()
            inbox_url = page.url
            rows = page.locator("table.listing tr.message")
            assert rows.count() >= 3
            subjects = []
            for i in (0, 1):
                rows.nth(i).locator("input[name=sel]").check()
                subjects.append(rows.nth(i).locator("td").nth(2).inner_text().split(" — ")[0])
            assert all(subjects), subjects
            page.check("input[name=target][value=user]")
            page.fill("input[name=user]", other_upn)
            shot(page, shots, "inbox-two-checked")
            with page.expect_navigation():
                page.click("#restore-button")
            assert "/restore/job?id=" in page.url
            deadline = time.monotonic() + 120
            while page.locator("#job-state").inner_text() in ("queued", "running"):
                assert time.monotonic() < deadline
                time.sleep(0.5)
            assert page.locator("#job-state").inner_text() == "done", page.content()
            assert "2 created" in page.locator("#job-summary").inner_text()
            assert f"user:{other_upn}" in page.locator("main").inner_text()
            shot(page, shots, "restore-to-another-user")
            # In the other user's mailbox, as Graph shows it: a "Restored <time>"
            # folder holding the Inbox with exactly the two checked mails.
            restored = [
                f
                for f in g.all(f"/users/{other['id']}/mailFolders")
                if f["displayName"].startswith("Restored ")
            ]
            assert len(restored) == 1, [f["displayName"] for f in restored]
            folder = g.folder(other["id"], f"{restored[0]['displayName']}/Inbox")
            assert folder is not None
            there = g.all(f"/users/{other['id']}/mailFolders/{folder['id']}/messages")
            assert sorted(m["subject"] for m in there) == sorted(subjects)
            page.click("#job-report")
            assert "coffer-restore-report" in page.content()
            shot(page, shots, "restore-report")

            # The same two, deleted from the Inbox, checked again and restored to
            # where they were: back in the Inbox, as Graph shows it.
            inbox = g.all(f"/users/{user['id']}/mailFolders/inbox/messages", **{"$top": "100"})
            chosen = {m["internetMessageId"]: m["id"] for m in inbox if m["subject"] in subjects}
            assert len(chosen) == 2
            for graph_id in chosen.values():
                g.delete(f"/users/{user['id']}/messages/{graph_id}")
            page.goto(inbox_url)
            for i in (0, 1):
                rows.nth(i).locator("input[name=sel]").check()
            page.check("input[name=target][value=original]")
            with page.expect_navigation():
                page.click("#restore-button")
            deadline = time.monotonic() + 120
            while page.locator("#job-state").inner_text() in ("queued", "running"):
                assert time.monotonic() < deadline
                time.sleep(0.5)
            assert page.locator("#job-state").inner_text() == "done", page.content()
            assert "2 created" in page.locator("#job-summary").inner_text()
            back = g.all(f"/users/{user['id']}/mailFolders/inbox/messages", **{"$top": "100"})
            assert set(chosen) <= {m["internetMessageId"] for m in back}
            shot(page, shots, "restore-to-original")

            # The Teams thread with the hostile message previews inert.
            page.goto(url + "/browse?p=owners/teams")
            page.locator("table.listing a", has_text=team["displayName"]).click()
            page.locator("table.listing a", has_text="latest").click()
            page.locator("table.listing a", has_text="channels").click()
            page.locator("table.listing a", has_text="General").click()
            thread = page.locator("table.listing tr.html a", has_text=thread_prefix)
            assert thread.count() == 1
            thread.click()
            page.wait_for_load_state("networkidle")
            frame = page.frame_locator("#preview")
            assert frame.locator("#marker, p", has_text="Release notes are ready").count() >= 1
            assert frame.locator("script").count() == 0
            assert frame.locator("[onerror]").count() == 0
            assert page.evaluate("() => window.__pwned === undefined")
            assert page.frames[1].evaluate("() => window.__pwned === undefined")
            assert not [u for u in requested if TRACKER in u]
            shot(page, shots, "teams-thread")

            # A viewer: neither checkboxes nor a restore form; a forged restore fails.
            viewer = browser.new_context().new_page()
            sign_in(viewer, url, "val", "val-password")
            viewer.wait_for_url(url + "/")
            viewer.goto(inbox_url)
            assert viewer.locator("table.listing tr.message").count() >= 3
            assert viewer.locator("input[name=sel]").count() == 0
            assert viewer.locator("#restore-form").count() == 0
            shot(viewer, shots, "viewer-inbox")
            token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
            assert token
            fields = {"p": "owners", "target": "original", "csrf_token": token}
            assert _post_without_token(viewer, "/restore", fields) == 403
    for name in ("inbox-two-checked", "restore-to-another-user", "teams-thread", "viewer-inbox"):
        assert (shots / f"{name}.png").stat().st_size > 1000


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
