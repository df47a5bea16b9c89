"""The scheduler inside the real ``coffer serve``: a run missed while the server
was down starts at start-up (persisted state, grace window), and /metrics shows
each job's next run time and last outcome."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import requests

from tests.cli.console.kit import free_port, make_setup


def test_coffer_serve_runs_a_missed_schedule_at_start_up_and_exports_its_state(
    tmp_path: Path,
) -> None:
    port = free_port()
    setup = make_setup(tmp_path / "s", listen=f"127.0.0.1:{port}")
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.txt").write_text("x\n")
    with setup.config.open("a") as handle:
        handle.write(
            f'\n[[schedule]]\nname = "files"\ncron = "0 3 * * *"\npaths = ["{data}"]\n'
            'grace_minutes = 1500\nprune = "0 4 * * 0"\n'
        )
    cache = tmp_path / "cache"
    state = cache / "schedules" / "state.json"
    state.parent.mkdir(parents=True)
    # The server last handled a run a day and a minute ago, then the machine was
    # off: the daily 03:00 run since then was missed, less than 25 h ago.
    state.write_text(json.dumps({"files": {"last_due": time.time() - 86460}}))
    before = len(setup.env.run("snapshots", "--json").json())
    server = setup.env.popen("-c", str(setup.config), "--cache-dir", str(cache), "serve")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        headers = {"Authorization": "Bearer metrics-secret-token"}
        deadline = time.monotonic() + 60
        text = ""
        done = (
            'coffer_schedule_last_outcome{kind="backup",outcome="succeeded",schedule="files"} 1.0'
        )
        while time.monotonic() < deadline:
            try:
                text = requests.get(url, headers=headers, timeout=5).text
            except requests.ConnectionError:
                text = ""
            if done in text:
                break
            time.sleep(0.3)
        assert done in text, text
        [next_run] = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('coffer_schedule_next_run_timestamp_seconds{kind="backup"')
        ]
        assert 0 < next_run - time.time() <= 86400
        assert next_run % 86400 == 3 * 3600  # 03:00 UTC
        assert 'coffer_schedule_next_run_timestamp_seconds{kind="prune",schedule="files"}' in text
    finally:
        server.send_signal(signal.SIGTERM)
        _out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert len(setup.env.run("snapshots", "--json").json()) == before + 1
    assert "scheduled job(s)" in err
