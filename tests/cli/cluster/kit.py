"""Real parts for scale-out tests: redis-server on loopback, ``coffer worker`` processes.

Nothing is mocked: Redis is Debian's ``redis-server`` (installed by ``make
testdeps``) with a password and an append-only file (so a restart keeps the
queued jobs, as docs/scale-out.md asks of a production broker; ``persistent=
False`` gives one that loses everything on a restart); workers are the real
``coffer worker`` command in their own processes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.cli.support.helpers import COFFER, CofferEnv
from tests.store.support.servers import free_port
from tools.graphsim.testing import RunningTenant

REDIS_PASSWORD = "broker-secret-7f3a9c"
REPO_PASSWORD = "s3cret password"


class RedisServer:
    """A redis-server process on 127.0.0.1 with a password (restartable)."""

    def __init__(self, root: Path, *, persistent: bool = True) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = root / "redis.conf"
        keep = "appendonly yes\nappendfsync always\n" if persistent else "appendonly no\n"
        self.conf.write_text(
            f"bind 127.0.0.1\nport {self.port}\nrequirepass {REDIS_PASSWORD}\n"
            f'dir {root}\n{keep}save ""\n'
            "daemonize no\nlogfile redis.log\n"
        )
        self.conf.chmod(0o600)
        self.password_file = root / "broker-password"
        self.password_file.write_text(REDIS_PASSWORD + "\n")
        self.password_file.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=REDIS_PASSWORD, decode_responses=True
        )

    def start(self) -> None:
        server = shutil.which("redis-server")
        assert server, "redis-server is missing: run `make testdeps`"
        self.proc = subprocess.Popen([server, str(self.conf)], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None

    def crash(self) -> None:
        """Kill -9: what was written to the append-only file stays, nothing else."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


@contextmanager
def running_redis(root: Path, *, persistent: bool = True) -> Iterator[RedisServer]:
    server = RedisServer(root, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def cluster_config(
    sim_dir: Path, server: RedisServer, name: str = "cluster.toml", extra: str = ""
) -> Path:
    """The simulator's coffer.toml plus a [cluster] table (in the same directory, so
    its relative paths still hold); ``extra`` adds lines to that table (and
    replaces the defaults it names: lease_seconds 6, visibility_timeout 15)."""
    base = (sim_dir / "coffer.toml").read_text()
    path = sim_dir / name
    given = {line.split("=")[0].strip() for line in extra.splitlines()}
    defaults = "".join(
        f"{k} = {v}\n"
        for k, v in (("lease_seconds", 6), ("visibility_timeout", 15))
        if k not in given
    )
    path.write_text(
        base + f'\n[cluster]\nbroker = "{server.url}"\n'
        f'password_file = "{server.password_file}"\n' + defaults + extra
    )
    return path


class Worker:
    """A ``coffer worker`` process; its log goes to a file."""

    def __init__(
        self, env: CofferEnv, config: Path, log: Path, *, concurrency: int = 2, **extra: str
    ) -> None:
        self.log = log
        self._handle = open(log, "wb")  # noqa: SIM115 (closed in stop)
        environ = env.env(COFFER_CONFIG=str(config), **extra)
        self.proc = subprocess.Popen(
            [COFFER, "-v", "worker", "--concurrency", str(concurrency)],
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
        )
        self.name = f"{os.uname().nodename}:{self.proc.pid}"
        deadline = time.monotonic() + 60
        while "serving queue" not in self.text():
            assert self.proc.poll() is None, f"worker exited {self.proc.returncode}: {self.text()}"
            assert time.monotonic() < deadline, f"worker did not start: {self.text()}"
            time.sleep(0.1)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._handle.close()
        return int(self.proc.returncode)


@contextmanager
def workers(
    env: CofferEnv, config: Path, root: Path, count: int, **extra: str
) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    root.mkdir(parents=True, exist_ok=True)
    try:
        for i in range(count):
            started.append(Worker(env, config, root / f"worker-{i}.log", **extra))
        yield started
    finally:
        for worker in started:
            worker.stop()


@dataclass(frozen=True)
class SlowOwnerRun:
    """A detached one-owner mail run whose messages are slow, and its worker."""

    worker: Worker
    run: str
    user_id: str


@contextmanager
def slow_owner_run(
    env: CofferEnv,
    tenant: RunningTenant,
    config: Path,
    log: Path,
    upn: str,
    delay: float,
    *backup_args: str,
) -> Iterator[SlowOwnerRun]:
    """Every message body of ``upn`` takes ``delay`` seconds, one worker (one
    thread) is started, and a detached backup of that mailbox alone is enqueued:
    the owner is still running for a while. The faults are cleared and the
    worker stopped on leaving."""
    user = user_id(tenant, upn)
    tenant.admin.inject_faults(
        {"kind": "slow", "match": f"/users/{user}/messages/[^/?]+/\\$value", "delay": delay}
    )
    with contextlib.ExitStack() as stack:
        stack.callback(tenant.admin.clear_faults)
        worker = Worker(env, config, log, concurrency=1)
        stack.callback(worker.stop)
        run = detach_mailbox(env, config, upn, *backup_args)
        yield SlowOwnerRun(worker, run, user)


def user_id(tenant: RunningTenant, upn: str) -> str:
    """The id of the simulated tenant's user ``upn`` (KeyError if there is none)."""
    return {u["userPrincipalName"]: u["id"] for u in tenant.admin.users()}[upn]


def detach_mailbox(env: CofferEnv, config: Path, upn: str, *backup_args: str) -> str:
    """Enqueues a detached backup of ``upn``'s mailbox alone; returns the run's id."""
    run: str = env.run(
        "backup",
        "--detach",
        "--json",
        "--user",
        upn,
        "--service",
        "mail",
        *backup_args,
        COFFER_CONFIG=str(config),
    ).json()["run"]
    return run


def run_snapshots(env: CofferEnv, run: str) -> list[dict[str, Any]]:
    """The snapshots (checkpoints too) of the run whose id starts with ``run``."""
    listing = env.run("snapshots", "--partial", "--json").json()
    return [s for s in listing if str(s.get("run", "")).startswith(run)]


@contextmanager
def slow_bodies(tenant: RunningTenant, delay: float = 0.05) -> Iterator[None]:
    """Every message body takes ``delay`` seconds: the run lasts long enough to be
    hit in the middle."""
    tenant.admin.inject_faults({"kind": "slow", "match": r"/\$value", "delay": delay})
    try:
        yield
    finally:
        tenant.admin.clear_faults()


def wait_until(what: Callable[[], bool], why: str, limit: float = 120.0) -> None:
    """Poll ``what`` until it holds; fails with ``why`` after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.2)


def the_run(client: redis.Redis) -> str:
    """The id of the one run in the broker (the test's), once it has started."""

    def runs() -> list[str]:
        return [k for k in client.scan_iter("coffer:run:*") if str(k).count(":") == 2]

    wait_until(lambda: bool(runs()), "no run started")
    (key,) = runs()
    return str(key).split(":")[2]
