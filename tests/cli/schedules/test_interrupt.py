"""Stopping the real ``coffer serve`` (SIGTERM) during a scheduled backup: the
backup child is interrupted, not left running; the run is recorded and
notified as ``interrupted``; the next start-up within the grace window runs
it again to success."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.cli.console.kit import free_port, make_setup
from tests.cli.schedules import kit as schedules_kit
from tests.cli.schedules.kit import webhook_receiver

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC).timestamp()


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of ``pid``'s child processes."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            except FileNotFoundError:
                continue
            out.append((int(child), cmdline.decode()))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def last_run(state: Path) -> dict[str, Any]:
    try:
        entry = json.loads(state.read_text()).get("files", {})
    except (OSError, ValueError):
        return {}
    return entry if isinstance(entry, dict) else {}


def backup_child(parent: subprocess.Popen[str], settle: float) -> int:
    """The pid of ``parent``'s ``coffer backup`` child once it has run ``settle`` s
    (into the upload); ``parent`` is killed if that does not happen in a minute."""
    try:
        deadline = time.monotonic() + 60
        backup: list[tuple[int, str]] = []
        while not backup:
            assert time.monotonic() < deadline, "the backup did not start"
            assert parent.poll() is None, parent.communicate()
            backup = [c for c in children(parent.pid) if " backup " in c[1]]
            time.sleep(0.2)
        time.sleep(settle)
        [(child, _cmd)] = backup
        assert alive(child)
    except BaseException:
        parent.kill()
        raise
    return child


def stop(server: subprocess.Popen[str]) -> str:
    server.send_signal(signal.SIGTERM)
    _out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    return err


@pytest.mark.slow
def test_sigterm_interrupts_a_scheduled_run_which_runs_again_at_the_next_start(
    tmp_path: Path,
) -> None:
    port = free_port()
    setup = make_setup(tmp_path / "s", listen=f"127.0.0.1:{port}")
    data = tmp_path / "data"
    data.mkdir()
    # 4 MiB that do not compress, uploaded at 64 KiB/s: a run of about a minute.
    (data / "big.bin").write_bytes(os.urandom(4 << 20))
    base_config = setup.config.read_text()
    cache = tmp_path / "cache"
    state = cache / "schedules" / "state.json"
    state.parent.mkdir(parents=True)
    # A daily 03:00 run missed less than a day ago: it starts at start-up.
    state.write_text(json.dumps({"files": {"last_due": time.time() - 86460}}))
    before = len(setup.env.run("snapshots", "--json").json())
    with webhook_receiver() as hook:
        schedule = (
            f'\n[[schedule]]\nname = "files"\ncron = "0 3 * * *"\npaths = ["{data}"]\n'
            'grace_minutes = 1500\nnotify = { webhooks = ["ops"] }\n'
            f'[[notify.webhook]]\nname = "ops"\nurl = "{hook.url}"\n'
        )
        setup.config.write_text("limit_upload = 64\n" + base_config + schedule)
        argv = ("-c", str(setup.config), "--cache-dir", str(cache), "serve")
        server = setup.env.popen(*argv)
        child = backup_child(server, settle=3)  # the missed run, well into the upload
        started = time.monotonic()
        err = stop(server)
        # The child was interrupted with the server, not orphaned to run on.
        assert not alive(child)
        assert time.monotonic() - started < 45
        entry = last_run(state)
        assert entry["last_run"]["outcome"] == "interrupted", (entry, err)
        assert entry["interrupted"]["at"] > entry["interrupted"]["due"]
        assert "interrupting the scheduled runs" in err
        assert len(setup.env.run("snapshots", "--json").json()) == before
        # The interruption was notified (the notifier stops after the scheduler).
        assert any("files interrupted" in b["text"] for b in hook.bodies), hook.bodies

        # Started again, without the bandwidth limit: the interrupted run runs
        # again at once (no cron time is due) and completes.
        setup.config.write_text(base_config + schedule)
        server = setup.env.popen(*argv)
        try:
            deadline = time.monotonic() + 120
            while last_run(state).get("last_run", {}).get("outcome") != "succeeded":
                assert time.monotonic() < deadline, last_run(state)
                assert server.poll() is None, server.communicate()
                time.sleep(0.3)
        finally:
            stop(server)
        entry = last_run(state)
        assert entry.get("interrupted") is None
        assert "run again after the server stopped" in entry["last_run"]["messages"][0]
    snaps = setup.env.run("snapshots", "--json").json()
    assert len(snaps) == before + 1


@pytest.mark.parametrize(("stopped_ago", "runs"), [(50 * 60, True), (70 * 60, False)])
def test_an_interrupted_run_runs_again_only_within_the_grace_window(
    tmp_path: Path, stopped_ago: float, runs: bool
) -> None:
    setup = schedules_kit.make_setup(tmp_path)
    setup.write_config(
        f'[[schedule]]\nname = "files"\ncron = "0 3 * * *"\npaths = ["{setup.data}"]\n'
        "grace_minutes = 60\nnotify = { on = [] }\n"
    )
    now = [T0]
    # The server stopped during the 03:00 run ``stopped_ago`` seconds ago.
    setup.state().update(
        "files", last_due=T0 - 3600, interrupted={"due": T0 - 3600, "at": T0 - stopped_ago}
    )
    scheduler = setup.scheduler(now)
    scheduler.startup(T0)
    assert scheduler.wait_idle(60)
    [result] = scheduler.results
    assert setup.state().get("files").get("interrupted") is None  # handled once
    if runs:
        assert result.outcome == "succeeded", result.messages
        assert len(setup.snapshots()) == 1
    else:
        assert result.outcome == "skipped"
        assert "outside the grace window" in result.messages[0]
        assert setup.snapshots() == []


def test_sigterm_interrupts_a_run_started_by_hand(tmp_path: Path) -> None:
    """``coffer schedule run`` stopped by SIGTERM (a service manager, a timer unit's
    stop): its backup child is interrupted with it, not orphaned; the run is
    recorded and notified as ``interrupted``; exit 130."""
    setup = make_setup(tmp_path / "s", listen=f"127.0.0.1:{free_port()}")
    data = tmp_path / "data"
    data.mkdir()
    # 4 MiB that do not compress, uploaded at 64 KiB/s: a run of about a minute.
    (data / "big.bin").write_bytes(os.urandom(4 << 20))
    base_config = setup.config.read_text()
    cache = tmp_path / "cache"
    state = cache / "schedules" / "state.json"
    before = len(setup.env.run("snapshots", "--json").json())
    with webhook_receiver() as hook:
        schedule = (
            f'\n[[schedule]]\nname = "files"\ncron = "0 3 * * *"\npaths = ["{data}"]\n'
            'notify = { webhooks = ["ops"] }\n'
            f'[[notify.webhook]]\nname = "ops"\nurl = "{hook.url}"\n'
        )
        setup.config.write_text("limit_upload = 64\n" + base_config + schedule)
        argv = ("-c", str(setup.config), "--cache-dir", str(cache), "schedule", "run", "files")
        run = setup.env.popen(*argv)
        child = backup_child(run, settle=2)
        started = time.monotonic()
        run.send_signal(signal.SIGTERM)
        _out, err = run.communicate(timeout=60)
        assert run.returncode == 130, err
        assert not alive(child)
        assert time.monotonic() - started < 45
        assert "Traceback" not in err
        assert "interrupting the run of schedule files" in err
        assert last_run(state)["last_run"]["outcome"] == "interrupted"
        assert len(setup.env.run("snapshots", "--json").json()) == before
        assert any("files interrupted" in b["text"] for b in hook.bodies), hook.bodies
