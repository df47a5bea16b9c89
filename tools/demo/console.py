"""The demo's last step: start the web console on loopback, detached, with a
one-time password for an ``admin`` user, and say how to open and stop it.

Detached (its own session, output in ``console.log``) so ``make demo`` ends;
the console keeps serving the demo's repository until it is stopped with the
printed ``kill`` command. The simulator has stopped by then: browsing,
previews, downloads and restores as a zip work; restores into Microsoft 365
need a tenant (see docs/console.md).
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from pathlib import Path

import requests

from tools.demo.steps import COFFER, run, say


def _port(preferred: int = 8765) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_console(workdir: Path, env: dict[str, str]) -> None:
    say("The web console: coffer serve on loopback")
    config = workdir / "console.toml"
    port = _port()
    config.write_text(
        f'repository = "{workdir / "repository"}"\n'
        "[serve]\n"
        f'listen = "127.0.0.1:{port}"\n'
        'users_file = "console-users.json"\n'
    )
    password_file = workdir / "console-password.txt"
    password = secrets.token_urlsafe(12)
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    console_env = {**env, "COFFER_CONFIG": str(config)}
    run(
        [
            COFFER,
            "serve",
            "user",
            "add",
            "admin",
            "--role",
            "admin",
            "--password-file",
            str(password_file),
        ],
        console_env,
    )
    log = (workdir / "console.log").open("ab")
    proc = subprocess.Popen(
        [COFFER, "serve"],
        env=console_env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # survives the demo's end and its Ctrl-C
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(url + "healthz", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"demo: the console did not start (see {workdir / 'console.log'})")
        time.sleep(0.3)
    print(f"  open {url} and sign in as admin with the one-time password {password}")
    print(f"  (also in {password_file}; change it with 'coffer serve user passwd')")
    print(f"  the console runs in the background (pid {proc.pid}); stop it with: kill {proc.pid}")
