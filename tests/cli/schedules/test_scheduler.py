"""The scheduler with a fake clock, running real ``coffer backup`` children into a
real repository: cron firing, no overlap, missed runs across a restart, hooks."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.schedules.state import run_lock
from tests.cli.console.kit import free_port

from .kit import DUMP, PASSWORD, Setup, make_setup, python_hook, webhook_receiver

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC).timestamp()  # 30 s past a minute


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return make_setup(tmp_path)


def every_minute(setup: Setup, extra: str = "", grace_minutes: float = 60) -> None:
    setup.write_config(
        f"""
[[schedule]]
name = "files"
cron = "* * * * *"
timezone = "Europe/Berlin"
paths = ["{setup.data}"]
grace_minutes = {grace_minutes}
notify = {{ on = [] }}
{extra}
"""
    )


def test_a_cron_every_minute_runs_a_backup_when_the_fake_clock_reaches_it(setup: Setup) -> None:
    every_minute(setup)
    now = [T0]
    scheduler = setup.scheduler(now)
    scheduler.startup(now[0])
    assert scheduler.jobs[0].next_due == T0 + 30  # the next whole minute
    scheduler.tick(T0 + 29)
    assert scheduler.wait_idle(5)
    assert scheduler.results == []
    now[0] = T0 + 31
    scheduler.tick(now[0])
    assert scheduler.wait_idle(60)
    [result] = scheduler.results
    assert result.outcome == "succeeded", result.messages
    assert result.report.startswith("reports/backup/")
    assert scheduler.jobs[0].next_due == T0 + 90
    [snap] = setup.snapshots()
    assert snap["owner"].endswith(str(setup.data))
    assert setup.state().get("files")["last_run"]["outcome"] == "succeeded"


def test_a_run_still_going_when_the_next_is_due_is_skipped_and_reported(setup: Setup) -> None:
    # The pre command holds the first run for 3 s; the next minute comes meanwhile.
    every_minute(setup, "pre = " + python_hook("import time; time.sleep(3)"))
    now = [T0]
    scheduler = setup.scheduler(now)
    scheduler.startup(T0)
    scheduler.tick(T0 + 31)
    now[0] = T0 + 91
    scheduler.tick(now[0])
    assert scheduler.wait_idle(60)
    outcomes = sorted(r.outcome for r in scheduler.results)
    assert outcomes == ["skipped", "succeeded"]
    skipped = next(r for r in scheduler.results if r.outcome == "skipped")
    assert "still going" in skipped.messages[0]
    assert len(setup.snapshots()) == 1


def test_a_run_is_skipped_while_another_process_holds_the_schedule(setup: Setup) -> None:
    # ``coffer schedule run`` in another process holds the flock: the server's run skips.
    every_minute(setup)
    scheduler = setup.scheduler([T0])
    scheduler.startup(T0)
    with run_lock(setup.state().directory, "files") as held:
        assert held
        scheduler.tick(T0 + 31)
        assert scheduler.wait_idle(30)
        assert setup.cli("schedule", "run", "files").code == 12
    assert [r.outcome for r in scheduler.results] == ["skipped"]
    assert setup.snapshots() == []


def test_a_run_missed_while_down_starts_at_the_next_start_if_within_grace(setup: Setup) -> None:
    every_minute(setup, grace_minutes=10)
    first = setup.scheduler([T0])
    first.startup(T0)  # the server ran at T0 and then the machine was off
    assert setup.state().get("files")["last_due"] == T0
    later = T0 + 300  # the runs due at T0+30 ... T0+270 were missed
    second = setup.scheduler([later])  # a new process: only the state file carries over
    second.startup(later)
    assert second.wait_idle(60)
    assert [r.outcome for r in second.results] == ["succeeded"]  # once, not five times
    assert len(setup.snapshots()) == 1
    assert second.jobs[0].next_due == T0 + 330


def test_a_run_missed_longer_ago_than_the_grace_window_is_reported_not_run(setup: Setup) -> None:
    every_minute(setup, grace_minutes=2)
    setup.scheduler([T0]).startup(T0)
    later = T0 + 3600
    second = setup.scheduler([later])
    second.startup(later)
    assert second.wait_idle(10)
    [result] = second.results
    assert result.outcome == "skipped"
    assert "outside the grace window" in result.messages[0]
    assert setup.snapshots() == []


def test_a_failing_pre_command_skips_the_backup(setup: Setup) -> None:
    every_minute(setup, "pre = " + python_hook("import sys; sys.exit(4)"))
    scheduler = setup.scheduler([T0])
    scheduler.startup(T0)
    scheduler.tick(T0 + 31)
    assert scheduler.wait_idle(30)
    [result] = scheduler.results
    assert result.outcome == "failed"
    assert "pre command failed" in result.messages[0]
    assert "exited with 4" in result.messages[0]
    assert setup.snapshots() == []


def test_a_pre_command_past_its_timeout_is_killed_and_skips_the_backup(setup: Setup) -> None:
    every_minute(setup, "pre = " + python_hook("import time; time.sleep(30)", timeout=0.5))
    result = setup.scheduler([T0]).runner.run(setup.scheduler([T0]).jobs[0].schedule)
    assert result.outcome == "failed"
    assert "timed out after 0.5 s" in result.messages[0]
    assert result.finished - result.started < 10
    assert setup.snapshots() == []


def test_the_post_command_gets_the_documented_environment_and_no_secret(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's environment holds the password in every way coffer reads it:
    # none of it may reach the hook.
    monkeypatch.setenv("COFFER_PASSWORD", PASSWORD)
    monkeypatch.setenv("COFFER_PASSWORD_FILE", str(setup.env.password_file))
    monkeypatch.setenv("SOME_SERVER_SETTING", "not for hooks")
    monkeypatch.setenv("NAMED_FOR_HOOKS", "yes")
    out = tmp_path / "post.json"
    every_minute(
        setup,
        f'env = ["NAMED_FOR_HOOKS"]\npost = {python_hook(DUMP, str(out))}',
    )
    scheduler = setup.scheduler([T0])
    result = scheduler.runner.run(scheduler.jobs[0].schedule)
    assert result.outcome == "succeeded", result.messages
    env = json.loads(out.read_text())["env"]
    assert env == {
        "COFFER_RUN_ID": result.run_id,
        "COFFER_SCHEDULE": "files",
        "COFFER_STATUS": "succeeded",
        "COFFER_REPORT": result.report,
        "NAMED_FOR_HOOKS": "yes",
    }
    assert result.report.startswith("reports/backup/")


def test_a_failing_post_command_is_reported_but_the_run_still_succeeded(setup: Setup) -> None:
    every_minute(setup, "post = " + python_hook("import sys; sys.exit(7)"))
    scheduler = setup.scheduler([T0])
    result = scheduler.runner.run(scheduler.jobs[0].schedule)
    assert result.outcome == "succeeded"
    assert any("post command failed" in m and "exited with 7" in m for m in result.messages)
    assert len(setup.snapshots()) == 1


def test_the_backup_child_gets_the_password_by_pipe_not_argv_or_environment(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COFFER_PASSWORD", PASSWORD)
    monkeypatch.setenv("COFFER_PASSWORD_FILE", str(setup.env.password_file))
    every_minute(setup)
    out = tmp_path / "child.json"
    # The child is a program that records what it was given, and reads the password file.
    code = DUMP + (
        "argv = sys.argv; pw = argv[argv.index('--password-file') + 1]\n"
        "open(sys.argv[1] + '.pw', 'wb').write(open(pw, 'rb').read())\n"
    )
    command = setup.coffer_command()
    command = type(command)(
        command.config, command.cache_dir, command.repo, command.password,
        program=(sys.executable, "-c", code, str(out)),
    )  # fmt: skip
    command.run(["backup", "--json"])
    seen = json.loads(out.read_text())
    assert PASSWORD not in " ".join(seen["argv"])
    assert all(PASSWORD not in v for v in seen["env"].values())
    assert not any(k.startswith("COFFER_PASSWORD") for k in seen["env"])
    assert Path(str(out) + ".pw").read_bytes() == PASSWORD.encode()
    assert seen["argv"][seen["argv"].index("--password-file") + 1].startswith("/dev/fd/")


def test_a_notification_that_cannot_be_sent_never_holds_up_the_run(setup: Setup) -> None:
    # A webhook that is down, retried with a 30 s backoff: the run ends at once,
    # the notification keeps trying in its own thread, and stopping ends it.
    setup.write_config(
        f"""
[notify]
attempts = 5
backoff_seconds = 30

[[notify.webhook]]
name = "down"
url = "http://127.0.0.1:{free_port()}/hook"

[[schedule]]
name = "files"
cron = "* * * * *"
paths = ["{setup.data}"]
notify = {{ on = ["succeeded"], webhooks = ["down"] }}
"""
    )
    scheduler = setup.scheduler([T0])
    scheduler.startup(T0)
    started = time.monotonic()
    scheduler.tick(T0 + 31)
    assert scheduler.wait_idle(30)
    assert [r.outcome for r in scheduler.results] == ["succeeded"]
    assert time.monotonic() - started < 20
    assert not scheduler.notifier.flush(0.5)  # still retrying
    stopping = time.monotonic()
    scheduler.notifier.stop()
    assert time.monotonic() - stopping < 5
    assert len(setup.snapshots()) == 1


def test_the_scheduler_sends_the_daily_summary_when_its_cron_fires(setup: Setup) -> None:
    setup.env.run("backup", "--path", str(setup.data))
    with webhook_receiver() as receiver:
        setup.write_config(
            f"""
[[notify.webhook]]
name = "chat"
url = "{receiver.url}"

[notify.summary]
cron = "0 8 * * *"
timezone = "Europe/Paris"
webhooks = ["chat"]
"""
        )
        eight_paris = datetime(2026, 3, 2, 7, 0, tzinfo=UTC).timestamp()  # 08:00 CET
        scheduler = setup.scheduler([eight_paris - 60])
        scheduler.startup(eight_paris - 60)
        assert scheduler.summary_next == eight_paris
        scheduler.tick(eight_paris - 1)
        scheduler.tick(eight_paris)
        deadline = time.monotonic() + 30
        while not receiver.bodies and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scheduler.notifier.flush(10)
    [body] = receiver.bodies
    assert body["text"].startswith("coffer: daily summary, 0 stale owner(s)")
    assert str(setup.data) in body["text"]
    assert scheduler.summary_next == eight_paris + 86400


def test_the_prune_and_check_jobs_run_coffer_prune_and_a_sampled_read_check(
    setup: Setup,
) -> None:
    every_minute(
        setup,
        'prune = "0 4 * * 0"\ncheck_read_data = { cron = "0 5 1 * *", subset = "100%" }',
    )
    setup.env.run("backup", "--path", str(setup.data))
    scheduler = setup.scheduler([T0])
    assert [j.kind for j in scheduler.jobs] == ["backup", "prune", "check"]
    schedule = scheduler.jobs[0].schedule
    for kind in ("prune", "check"):
        result = scheduler.runner.run(schedule, kind)
        assert result.outcome == "succeeded", result.messages
        assert result.exit_code == 0
        assert setup.state().get(f"files:{kind}")["last_run"]["outcome"] == "succeeded"
    # A damaged pack makes the sampled read check fail, and the job says so.
    packs = sorted(p for p in (setup.env.repo / "data").rglob("*") if p.is_file())
    for pack in packs:
        raw = bytearray(pack.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        pack.write_bytes(bytes(raw))
    failed = scheduler.runner.run(schedule, "check")
    assert failed.outcome == "failed"
    assert failed.exit_code not in (0, None)
    assert "coffer check exited with" in failed.messages[0]
