"""kill -9 in the middle of a backup, then the next run resumes from the checkpoints
without downloading again what they hold (the real ``coffer`` command)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sources.m365.support.helpers import (
    PASSWORD,
    compare,
    downloads,
    expected_counts,
    open_repo,
    snapshot_counts,
)
from tests.sources.m365.support.tenant import Setup

pytestmark = pytest.mark.sim

COFFER = str(Path(sys.executable).with_name("coffer"))


def _env(setup: Setup) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    env.update(
        COFFER_CONFIG=str(setup.state / "coffer.toml"),
        COFFER_REPO=str(setup.repo),
        COFFER_PASSWORD=PASSWORD.decode(),
        XDG_CACHE_HOME=str(setup.root / "cli-cache"),
    )
    return env


def _checkpoints(setup: Setup) -> int:
    repo = open_repo(setup.repo, setup.root / "probe-cache")
    try:
        return sum(1 for s in repo.list_snapshots() if s.partial)
    finally:
        repo.close()


def test_kill_9_then_resume(setup: Setup) -> None:
    admin = setup.tenant.admin
    inventory = admin.inventory()
    content = sum(
        int(u.get("messages", 0)) + int(u.get("driveFiles", 0)) for u in inventory["users"].values()
    ) + sum(int(s["driveFiles"]) for s in inventory["sites"].values())
    # Slow downloads, so that the run is still going when it is killed.
    admin.inject_faults({"kind": "slow", "delay": 0.4, "match": r"(/_dl/|/\$value)"})
    proc = subprocess.Popen(
        [COFFER, "backup", "--checkpoint-interval", "0.5", "--json"],
        env=_env(setup),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            if downloads(admin.stats()) > content // 3 and _checkpoints(setup) >= 3:
                break
        assert proc.poll() is None, "the backup ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    first = downloads(admin.stats())
    assert 0 < first < content
    admin.clear_faults()
    admin.reset_stats()
    done = subprocess.run(
        [COFFER, "backup", "--json"],
        env=_env(setup),
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    second = downloads(admin.stats())
    # What the checkpoints held was not downloaded again.
    assert second < content
    assert second <= content - first // 2
    assert report["status"] == "ok"
    assert compare(snapshot_counts(setup.repo, setup.cache), expected_counts(inventory)) == []
    assert _checkpoints(setup) == 0  # superseded by the complete snapshots


def test_ctrl_c_stops_quickly_and_keeps_checkpoints(setup: Setup) -> None:
    admin = setup.tenant.admin
    # Interrupted at its first checkpoint, with downloads slowed, the run is far from
    # done (at 0.4 s per download, waiting for two checkpoints, the signal once
    # landed as the run was finishing); slower downloads would only lengthen the
    # wait for those in flight (2 s took 32 s to stop on an overloaded machine).
    admin.inject_faults({"kind": "slow", "delay": 1.0, "match": r"(/_dl/|/\$value)"})
    proc = subprocess.Popen(
        [COFFER, "backup", "--checkpoint-interval", "0.5"],
        env=_env(setup),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if _checkpoints(setup) >= 1:
            break
    assert proc.poll() is None, "the backup ended before it could be interrupted"
    at_signal = downloads(admin.stats())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    # Stopping means starting no new download: only those in flight at the
    # signal finish (at most parallel_owners x workers_per_owner, 6 x 4 by
    # default). Counted by the simulator, so a loaded machine changes nothing.
    assert downloads(admin.stats()) - at_signal <= 6 * 4
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert err.count("\n") <= 2
    admin.clear_faults()
    assert _checkpoints(setup) >= 1
