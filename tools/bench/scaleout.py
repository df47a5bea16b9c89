"""Benchmark: a backup spread over 1, 2, 4, 8 workers (``make bench BENCH_ARGS="scaleout ..."``).

    python -m tools.bench scaleout [--users 2000] [--latency 80] [--workers 1,2,4,8]
                                   [--concurrency 8] [--throttling] [--sharepoint-units N]
                                   [--no-restore] [--baseline FILE] [--workdir DIR]

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

After the backups, the same one-process run and worker counts each restore the
whole tenant's mail from their repository to its original place, after the
simulator has removed every message of the tenant (``POST /_sim/wipe``), so
that each run writes every message again through Graph. For every run the CPU
time of Coffer (the ``coffer`` command and, with workers, the worker
processes) and of redis-server is reported beside the simulator's: where
scaling stops, the one that saturated is the one to blame.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

from tools.bench.m365 import COFFER, Sim, _cpu_of, _env


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

    def cpu(self) -> float:
        return _cpu_of(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sharepoint_units(users: int) -> int:
    """The tenant's SharePoint budget per minute by licences (docs/scale-out.md)."""
    for limit, units in ((1000, 1200), (5000, 2400), (15000, 3600), (50000, 4800)):
        if users <= limit:
            return units
    return 6000


def _run(
    env: dict[str, str], sim: Sim, broker: Redis, args: list[str], workers: list[int], keep: Path
) -> dict[str, Any]:
    """Run ``coffer ARGS --json`` once and measure it (``workers``: worker pids).

    The command's JSON report is kept in the file ``keep``.
    """
    if args[0] == "restore":
        sim.admin("POST", "/wipe")  # every message lost: the restore writes them all again
    sim.admin("POST", "/stats/reset")
    sim_cpu, redis_cpu, own_cpu = sim.cpu(), broker.cpu(), _children_cpu()
    workers_cpu = sum(_cpu_of(pid) for pid in workers)
    started = time.monotonic()
    proc = subprocess.run(
        [COFFER, "-q", *args, "--json"], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - started
    if proc.returncode not in (0, 3):
        raise SystemExit(f"bench: {args[0]} exited {proc.returncode}: {proc.stderr[-2000:]}")
    keep.write_text(proc.stdout)
    report = json.loads(proc.stdout)
    requests = int(sim.admin("GET", "/stats")["requests_total"])
    owners = len(report["owners"])
    result: dict[str, Any] = {
        "seconds": round(seconds, 1),
        "owners": owners,
        "owners_per_minute": round(owners * 60 / seconds, 1),
        "requests": requests,
        "requests_per_second": round(requests / seconds, 1),
        "coffer_cpu_seconds": round(
            _children_cpu() - own_cpu + sum(_cpu_of(pid) for pid in workers) - workers_cpu, 1
        ),
        "simulator_cpu_seconds": round(sim.cpu() - sim_cpu, 1),
        "redis_cpu_seconds": round(broker.cpu() - redis_cpu, 2),
        "exit_code": proc.returncode,
        "workers": report.get("workers", {}),
    }
    durations = sorted(float(o.get("seconds", 0)) for o in report["owners"])
    if durations:
        result["owner_median_seconds"] = round(durations[len(durations) // 2], 1)
    if args[0] == "backup":
        # Against the one-process run: what two workers stored twice (the same
        # attachment in two mailboxes backed up at the same moment).
        result["bytes_stored"] = int(report["repository"]["bytes_added_stored"])
    else:
        totals = report["totals"]
        result["items_written"] = int(totals["created"]) + int(totals["kept_both"])
        result["items_failed"] = int(totals["failed"])
    return result


def _table(title: str, runs: dict[str, Any], last: str) -> None:
    print(f"### {title}")
    print()
    print(
        "| run | seconds | owners/min | requests/s | speed-up | owner median s | "
        f"Coffer CPU s | simulator CPU s | Redis CPU s | {last} |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, run in runs.items():
        extra = (
            f"{run['bytes_stored'] / 1e6:.2f}" if "bytes_stored" in run else run["items_written"]
        )
        print(
            f"| {name} | {run['seconds']} | {run['owners_per_minute']} | "
            f"{run['requests_per_second']} | {run.get('speedup', 1.0)} | "
            f"{run.get('owner_median_seconds', '')} | {run.get('coffer_cpu_seconds', '')} | "
            f"{run.get('simulator_cpu_seconds', '')} | {run.get('redis_cpu_seconds', '')} | "
            f"{extra} |"
        )
    print()


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
    parser.add_argument("--no-restore", action="store_true", help="backups only")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="the one-process backup's measures from an earlier run (its JSON 'runs' entry, "
        "or this tool's whole output) instead of running it again; the one-process restore "
        "then restores from the first worker count's repository",
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

        backup = ["backup"]
        restore = [
            "restore", "latest", "--to", "original", "--service", "mail",
        ]  # fmt: skip
        if args.baseline is not None:
            earlier = json.loads(args.baseline.read_text())
            results["runs"]["one process"] = earlier.get("runs", {}).get("one process", earlier)
            results["runs"]["one process"]["from"] = str(args.baseline)
            results["load_after"] = {}
        else:
            single = fresh("repo-single", config)
            results["runs"]["one process"] = _run(
                single, sim, broker, backup, [], workdir / "backup-1p.json"
            )
            results["load_after"] = {"one process": os.getloadavg()}
        envs = {count: fresh(f"repo-{count}", cluster) for count in counts}

        def over_workers(what: str, command: list[str], runs: dict[str, Any]) -> None:
            base = runs["one process"]["seconds"]
            for count in counts:
                with _Workers(envs[count], count, args.concurrency, workdir, what) as pids:
                    keep = workdir / f"{what}-{count}w.json"
                    run = _run(envs[count], sim, broker, command, pids, keep)
                run["speedup"] = round(base / run["seconds"], 2)
                runs[f"{count} worker(s)"] = run
                results["load_after"][f"{what} {count} worker(s)"] = os.getloadavg()

        over_workers("backup", backup, results["runs"])
        if not args.no_restore:
            if args.baseline is not None:
                # The same snapshots as the first worker count's, read without a broker.
                single = _env(workdir, workdir / f"repo-{counts[0]}", config)
            results["restores"] = {
                "one process": _run(single, sim, broker, restore, [], workdir / "restore-1p.json")
            }
            over_workers("restore", restore, results["restores"])
    finally:
        broker.stop()
        sim.stop()
    print(json.dumps(results, indent=1))
    print()
    _table("Backups", results["runs"], "MB stored")
    if "restores" in results:
        _table("Restores of every mailbox", results["restores"], "items written")


class _Workers:
    """``count`` ``coffer worker`` processes for the length of a ``with``; yields their pids."""

    def __init__(
        self, env: dict[str, str], count: int, concurrency: int, workdir: Path, what: str
    ) -> None:
        self.procs = [
            subprocess.Popen(
                [COFFER, "worker", "--concurrency", str(concurrency)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(workdir / f"worker-{what}-{count}-{i}.log", "wb"),  # noqa: SIM115
                stdin=subprocess.DEVNULL,
            )
            for i in range(count)
        ]

    def __enter__(self) -> list[int]:
        time.sleep(3)  # let every worker reach the queue before the first job
        return [proc.pid for proc in self.procs]

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            proc.wait(timeout=600)


if __name__ == "__main__":
    main(sys.argv[1:])
