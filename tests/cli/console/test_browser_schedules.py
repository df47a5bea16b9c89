"""The schedules page of the real ``coffer serve`` in headless Chromium: next run
times, the scheduler's state, an administrator's "Run now" whose run, outcome
and notification (a webhook that fails once, then accepts) are shown, the
delivery stored in the repository and shown on the run's page; a viewer reads
the same page without the button and a forged request is refused."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from store import Repository, open_backend
from tests.cli.console.browser import chromium, coffer_serve, shot, sign_in
from tests.cli.console.kit import PASSWORDS, free_port, make_setup
from tests.cli.console.test_browser import _post_without_token
from tests.cli.schedules.kit import webhook_receiver


def test_schedules_page_run_now_and_its_notification(tmp_path: Path) -> None:
    setup = make_setup(tmp_path / "s")
    shots = tmp_path / "screenshots"
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.txt").write_text("x\n")
    with webhook_receiver(fail_first=1) as hook:
        with setup.config.open("a") as handle:
            handle.write(
                f'\n[[schedule]]\nname = "files"\ncron = "0 3 * * *"\n'
                'timezone = "Europe/Paris"\n'
                f'paths = ["{data}"]\nnotify = {{ on = ["succeeded"], webhooks = ["ops"] }}\n'
                "[notify]\nattempts = 3\nbackoff_seconds = 0.2\n"
                f'[[notify.webhook]]\nname = "ops"\nurl = "{hook.url}"\n'
            )
        with coffer_serve(setup.env, setup.config, free_port()) as url, chromium() as browser:
            page = browser.new_page()
            sign_in(page, url, "ann", PASSWORDS["ann"])
            page.wait_for_url(url + "/")
            page.click("nav a[href='/schedules']")
            assert page.locator("#scheduler-state").inner_text() == "running"
            row = page.locator("tr.job[data-schedule=files][data-kind=backup]")
            # The next 03:00 in Paris, shown in UTC (02:00 in winter, 01:00 in summer).
            paris = datetime.now(ZoneInfo("Europe/Paris"))
            three = paris.replace(hour=3, minute=0, second=0, microsecond=0)
            three += timedelta(days=1) if three <= paris else timedelta()
            expected = three.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            assert row.locator("td.next").inner_text().splitlines()[0] == expected
            assert row.locator("td.next br").count() == 2  # three next times
            assert row.locator("td.last").inner_text() == "never"
            shot(page, shots, "schedules")

            with page.expect_navigation():
                row.locator("form.run-now button").click()
            deadline = time.monotonic() + 90
            while "succeeded" not in row.locator("td.last").inner_text():
                assert time.monotonic() < deadline, row.inner_text()
                time.sleep(0.5)
                page.reload()
            # The webhook failed once and then took the message; the delivery is
            # listed with its retry (it is recorded once the worker is done).
            deadline = time.monotonic() + 30
            while "sent" not in page.locator("table.deliveries").inner_text():
                assert time.monotonic() < deadline, page.locator("table.deliveries").inner_text()
                time.sleep(0.5)
                page.reload()
            delivery = page.locator("table.deliveries tbody tr").first
            cells = delivery.locator("td").all_inner_texts()
            assert cells[1:5] == ["webhook ops", "sent", "2", "1"], cells
            assert "HTTPError" in cells[6]
            shot(page, shots, "schedules-after-run")
            assert len(hook.bodies) == 1
            assert "coffer: backup files succeeded" in hook.bodies[0]["text"]

            # The run's own page shows the same delivery.
            row.locator("td.last a", has_text="report").click()
            assert page.url.startswith(url + "/report?key=reports/backup/")
            cells = page.locator("table.deliveries tbody tr").first.locator("td").all_inner_texts()
            assert cells[1:5] == ["webhook ops", "sent", "2", "1"], cells
            shot(page, shots, "run-with-notifications")

            # A viewer reads the page, without the button; a forged run is refused.
            viewer = browser.new_context().new_page()
            sign_in(viewer, url, "val", PASSWORDS["val"])
            viewer.wait_for_url(url + "/")
            viewer.goto(url + "/schedules")
            assert "succeeded" in viewer.locator("tr.job[data-kind=backup] td.last").inner_text()
            assert viewer.locator("form.run-now").count() == 0
            shot(viewer, shots, "schedules-viewer")
            token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
            assert token
            forged = {"schedule": "files", "csrf_token": token}
            assert _post_without_token(viewer, "/schedules/run", forged) == 403
            # Nor may an administrator's page post without the token.
            assert _post_without_token(page, "/schedules/run", {"schedule": "files"}) == 403
    # The delivery and the administrator's action are stored in the repository.
    with Repository.open(
        open_backend(str(setup.env.repo)), setup.env.password_file.read_bytes().strip()
    ) as repo:
        [record] = [repo.load_report(k) for k in repo.list_reports("notify")]
        audit = [repo.load_report(k) for k in repo.list_reports("audit")]
        snapshots = repo.list_snapshots()
    assert record["outcome"] == "sent"
    assert record["retries"] == 1
    assert [t["error"] for t in record["tries"]] == ["HTTPError", None]
    assert record["schedule"] == "files"
    assert record["report"].startswith("reports/backup/")
    assert hook.url not in str(record)  # the URL is a credential
    assert [e["user"] for e in audit if e["event"] == "schedule-run"] == ["ann"]
    assert len(snapshots) == 2  # make_setup's and the one run from the page
    for name in ("schedules", "schedules-after-run", "run-with-notifications", "schedules-viewer"):
        assert (shots / f"{name}.png").stat().st_size > 1000


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
