"""A real repository, a folder to back up, a coffer.toml with schedules, and the
scheduler's parts built on them the way ``coffer serve`` builds them."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cli.schedules import (
    CofferCommand,
    Notifier,
    Runner,
    Scheduler,
    StateFile,
    parse_notify,
    parse_schedules,
    state_dir,
)
from cli.settings.config import load_config
from tests.cli.support.helpers import COFFER, CofferEnv, init, new_env

PASSWORD = "s3cret password, never shown"

# A child that writes its initial environment (/proc/self/environ: what it was
# started with, before Python adds anything), its argv and what --password-file
# names into the file its first argument... for hooks: argv[1] is the output.
DUMP = (
    "import json, sys\n"
    "raw = open('/proc/self/environ', 'rb').read().split(b'\\0')\n"
    "env = dict(x.decode().split('=', 1) for x in raw if x)\n"
    "json.dump({'env': env, 'argv': sys.argv}, open(sys.argv[1], 'w'))\n"
)


@dataclass
class Setup:
    env: CofferEnv
    root: Path
    data: Path
    config: Path

    def write_config(self, text: str) -> None:
        self.config.write_text(text)

    def coffer_command(self) -> CofferCommand:
        return CofferCommand(
            config=self.config,
            cache_dir=self.root / "cache",
            repo=str(self.env.repo),
            password=PASSWORD.encode,
            program=(COFFER,),
        )

    def state(self) -> StateFile:
        return StateFile(state_dir(self.root / "cache"))

    def scheduler(self, now: list[float]) -> Scheduler:
        """A scheduler whose clock reads ``now[0]`` (tests move it)."""
        config = load_config(self.config)
        state = self.state()
        notify = parse_notify(config)
        return Scheduler(
            parse_schedules(config),
            Runner(self.coffer_command(), state),
            Notifier(notify),
            state,
            clock=lambda: now[0],
            summary=notify.summary,
        )

    def snapshots(self) -> list[dict[str, Any]]:
        out = self.env.run("--cache-dir", str(self.root / "cache"), "snapshots", "--json").json()
        assert isinstance(out, list)
        return out

    def cli(self, *args: str, check: bool = False) -> Any:
        return self.env.run(
            "-c", str(self.config), "--cache-dir", str(self.root / "cache"), *args, check=check
        )


def make_setup(root: Path, *, with_repository: bool = True) -> Setup:
    env = new_env(root / "env", PASSWORD + "\n")
    if with_repository:
        init(env)
    data = root / "data"
    data.mkdir()
    (data / "a.txt").write_text("alpha\n")
    return Setup(env, root, data, root / "coffer.toml")


def python_hook(code: str, *args: str, timeout: float = 30) -> str:
    """A TOML inline table running ``code`` with the test's Python (a real child)."""
    argv = json.dumps([sys.executable, "-c", code, *args])
    return f"{{ argv = {argv}, timeout = {timeout} }}"


@dataclass
class Receiver:
    """A local webhook receiver: answers ``fail_first`` requests with 503, then 200."""

    url: str
    bodies: list[dict[str, Any]]
    requests: list[int]


@contextmanager
def webhook_receiver(fail_first: int = 0) -> Iterator[Receiver]:
    bodies: list[dict[str, Any]] = []
    requests: list[int] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with lock:
                requests.append(1)
                failing = len(requests) <= fail_first
            if failing:
                self.send_response(503)
                self.end_headers()
                return
            assert self.headers.get("Content-Type") == "application/json"
            bodies.append(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"1")  # what Teams and Slack answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_port}/hook", bodies, requests)
    finally:
        server.shutdown()
        server.server_close()
