"""The Microsoft 365 part of the demo: back up a simulated tenant, change 1%, back up again,
mount the backups and copy a mail and a file out (tools/demo/m365mount.py), then lose a
mail folder and a file and restore them (tools/demo/m365restore.py).

Starts the simulator (medium tenant) in the background, points Coffer at the
``coffer.toml`` it writes (``COFFER_CONFIG``), backs the tenant up, lets the
simulator's users change about 1% of their items, backs up again, and shows
both runs' reports. Everything happens over HTTPS on loopback with real msal.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tools.demo.m365mount import demo_m365_mount
from tools.demo.m365real import demo_m365_realistic
from tools.demo.m365restore import demo_m365_restore
from tools.demo.steps import COFFER, run, say

START_TIMEOUT = 600.0


def start_simulator(state: Path, scale: str, *extra: str) -> subprocess.Popen[bytes]:
    state.mkdir(parents=True, exist_ok=True)
    (state / "connection.json").unlink(missing_ok=True)  # written again once ready
    log = open(state.parent / "graphsim.log", "wb")  # noqa: SIM115 (lives as long as the process)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.graphsim",
            "serve",
            "--state-dir",
            str(state),
            "--scale",
            scale,
            # Microsoft's rate limits off: the demo shows the flow in a few minutes.
            # With them on (SharePoint's 1,200 resource units a minute), reading the
            # sharing permissions of the sample tenant's many shared files keeps the
            # first backup waiting on Retry-After for about ten minutes; the tests
            # and `make bench BENCH_ARGS="m365 --throttling"` cover that behaviour.
            "--no-throttling",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not (state / "connection.json").exists():
        if proc.poll() is not None:
            raise SystemExit(f"demo: the simulator stopped (see {state.parent / 'graphsim.log'})")
        if time.monotonic() > deadline:
            proc.terminate()
            raise SystemExit("demo: the simulator did not start in time")
        time.sleep(0.5)
    return proc


def admin(state: Path, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    info = json.loads((state / "connection.json").read_text())
    session = requests.Session()
    session.trust_env = False
    session.verify = str(state / info["ca_file"])
    resp = session.request(method, f"{info['admin_url']}{path}", json=body, timeout=300)
    resp.raise_for_status()
    return resp.json()


def _line(label: str, report: dict[str, Any]) -> str:
    t = report["totals"]
    stored = report["repository"]["bytes_added_stored"] / 1e6
    return (
        f"  {label:<12} {report['seconds']:>7.1f}s  {t['requests']:>6} requests  "
        f"{t['items_new']:>6} new  {t['items_changed']:>5} changed  "
        f"{t['items_deleted']:>5} deleted  {t['items_unchanged']:>6} unchanged  "
        f"{t['bytes_read'] / 1e6:>8.1f} MB read  {stored:>7.1f} MB stored  "
        f"exit {report['exit_code']}"
    )


def demo_m365(workdir: Path, env: dict[str, str], *, scale: str = "medium") -> None:
    state = workdir / "m365-tenant"
    say(f"Start the Microsoft 365 simulator ({scale} tenant, HTTPS on loopback)")
    started = time.monotonic()
    sim = start_simulator(state, scale)
    print(f"  ready in {time.monotonic() - started:.0f}s; it wrote {state / 'coffer.toml'}")
    m365 = {**env, "COFFER_CONFIG": str(state / "coffer.toml")}
    reports: dict[str, dict[str, Any]] = {}
    try:
        inventory = admin(state, "GET", "/inventory?detail=false")["totals"]
        print(
            f"  {inventory.get('messages', 0)} messages, {inventory.get('driveFiles', 0)} OneDrive "
            f"files, {inventory.get('site_driveFiles', 0)} library files, "
            f"{inventory.get('team_messages', 0)} channel posts, "
            f"{inventory.get('content_bytes', 0) / 1e9:.1f} GB of content"
        )
        say("Back up the whole tenant: one snapshot per user, site and team")
        out = run([COFFER, "backup", "--json"], m365, show=False)
        reports["first run"] = json.loads(out)
        run([COFFER, "snapshots"], m365)
        say("Users change about 1% of their items (new mail, edits, moves, deletions)")
        changes = admin(state, "POST", "/churn", {"percent": 1, "seed": 2026})["changes"]
        print(f"  {len(changes)} changes")
        say("Back up again: one delta query per folder and drive, then only the changes")
        out = run([COFFER, "backup", "--json"], m365, show=False)
        reports["after churn"] = json.loads(out)
        say("Both runs' reports (stored in the repository)")
        for label, report in reports.items():
            print(_line(label, report))
            print(f"  {'':<12} report {report['report']}")
        users = admin(state, "GET", "/users")["value"]
        demo_m365_mount(workdir, state, m365, users)
        demo_m365_restore(state, m365, users)
    finally:
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sim.kill()
    demo_m365_realistic(workdir, env, start_simulator)
