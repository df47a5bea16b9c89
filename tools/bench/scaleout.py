"""Benchmark: a backup spread over 1, 2, 4, 8 workers (``make bench BENCH_ARGS="scaleout ..."``).

    python -m tools.bench scaleout [--users 2000] [--latency 80] [--workers 1,2,4,8]
                                   [--concurrency 8] [--throttling] [--sharepoint-units N]
                                   [--workdir DIR]

A simulated tenant of ``--users`` small mailboxes (the simulator's ``tiny``
scale, served ``--lazy``: each user's content is generated on first access, so
thousands of users start in seconds) answers every request after ``--latency``
milliseconds, standing in for the WAN, so a run is bound by round trips as
against Microsoft and scaling is measurable on a small machine. First a
one-process ``coffer backup`` (the baseline), then for each worker count a fresh
repository backed up by that many ``coffer worker`` processes (``--concurrency``
threads each) through a redis-server started on loopback. For each: seconds,
owners per minute, Graph requests per second, the speed-up over the one-process
run, and the CPU time of the simulator (it shares the machine: when it saturates
a core, the simulator, not Coffer, is what stops scaling), and the bytes each
run stored (against the one-process run: what workers stored twice, since each
job knows only the blobs committed before it began). JSON on standard output,
and a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.bench.m365 import COFFER, Sim, _env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Redis:
    """redis-server on loopback with a password (from a 0600 file)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        password = secrets.token_hex(16)
        conf = root / "redis.conf"
        conf.write_text(
            f"bind 127.0.0.1\nport {self.port}\nrequirepass {password}\ndir {root}\n"
            'appendonly yes\nsave ""\nlogfile redis.log\n'
        )
        conf.chmod(0o600)
        self.password_file = root / "password"
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)
        server = shutil.which("redis-server")
        if server is None:
            raise SystemExit("bench: redis-server is missing (make testdeps installs it)")
        self.proc = subprocess.Popen([server, str(conf)], stdin=subprocess.DEVNULL)
        time.sleep(0.5)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _sharepoint_units(users: int) -> int:
    """The tenant's SharePoint budget per minute by licences (docs/scale-out.md)."""
    for limit, units in ((1000, 1200), (5000, 2400), (15000, 3600), (50000, 4800)):
        if users <= limit:
            return units
    return 6000


def _run(env: dict[str, str], sim: Sim) -> dict[str, Any]:
    sim.admin("POST", "/stats/reset")
    sim_cpu = sim.cpu()
    started = time.monotonic()
    proc = subprocess.run(
        [COFFER, "-q", "backup", "--json"], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - started
    if proc.returncode not in (0, 3):
        raise SystemExit(f"bench: backup exited {proc.returncode}: {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    requests = int(sim.admin("GET", "/stats")["requests_total"])
    owners = len(report["owners"])
    return {
        "seconds": round(seconds, 1),
        "owners": owners,
        "owners_per_minute": round(owners * 60 / seconds, 1),
        "requests": requests,
        "requests_per_second": round(requests / seconds, 1),
        "simulator_cpu_seconds": round(sim.cpu() - sim_cpu, 1),
        # Against the one-process run: what two workers stored twice (the same
        # attachment in two mailboxes backed up at the same moment).
        "bytes_stored": int(report["repository"]["bytes_added_stored"]),
        "exit_code": proc.returncode,
        "workers": report.get("workers", {}),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench scaleout")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=80.0, help="milliseconds per request")
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--throttling", action="store_true")
    parser.add_argument(
        "--sharepoint-units",
        type=int,
        default=None,
        help="the workers' shared SharePoint budget per minute (default: by licences)",
    )
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",") if n]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="coffer-scaleout-"))
    workdir.mkdir(parents=True, exist_ok=True)
    extra = ("--latency", str(args.latency), "--lazy")
    sim = Sim(workdir / "sim", "tiny", args.users, args.throttling, extra=extra)
    broker = Redis(workdir / "redis")
    results: dict[str, Any] = {
        "users": args.users,
        "latency_ms": args.latency,
        "concurrency": args.concurrency,
        "simulator_start_seconds": round(sim.start_seconds, 1),
        "runs": {},
    }
    try:
        config = workdir / "sim" / "coffer.toml"
        cluster = workdir / "sim" / "cluster.toml"
        units = args.sharepoint_units or _sharepoint_units(args.users)
        cluster.write_text(
            config.read_text()
            + f'\n[cluster]\nbroker = "{broker.url}"\npassword_file = "{broker.password_file}"\n'
            f"sharepoint_units_per_minute = {units}\n"
        )

        def fresh(name: str, cfg: Path) -> dict[str, str]:
            env = _env(workdir, workdir / name, cfg)
            subprocess.run(
                [COFFER, "init", "--kdf-memory", "8", "--kdf-iterations", "1"],
                env=env,
                check=True,
                capture_output=True,
            )
            return env

        results["runs"]["one process"] = _run(fresh("repo-single", config), sim)
        base = results["runs"]["one process"]["seconds"]
        for count in counts:
            env = fresh(f"repo-{count}", cluster)
            procs = [
                subprocess.Popen(
                    [COFFER, "worker", "--concurrency", str(args.concurrency)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=open(workdir / f"worker-{count}-{i}.log", "wb"),  # noqa: SIM115
                    stdin=subprocess.DEVNULL,
                )
                for i in range(count)
            ]
            time.sleep(3)
            try:
                run = _run(env, sim)
            finally:
                for proc in procs:
                    proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    proc.wait(timeout=600)
            run["speedup"] = round(base / run["seconds"], 2)
            results["runs"][f"{count} worker(s)"] = run
    finally:
        broker.stop()
        sim.stop()
    print(json.dumps(results, indent=1))
    print()
    print("| run | seconds | owners/min | requests/s | speed-up | simulator CPU s | MB stored |")
    print("|---|---|---|---|---|---|---|")
    for name, run in results["runs"].items():
        print(
            f"| {name} | {run['seconds']} | {run['owners_per_minute']} | "
            f"{run['requests_per_second']} | {run.get('speedup', 1.0)} | "
            f"{run['simulator_cpu_seconds']} | {run['bytes_stored'] / 1e6:.2f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
