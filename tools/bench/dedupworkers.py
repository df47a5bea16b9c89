"""What workers store twice: one tenant with shared attachments backed up by one
process, then by N workers, with and without the index refresh (docs/scale-out.md).

    python -m tools.bench dedupworkers --users 40 --workers 3 --rounds 2

Runs, each into a fresh repository, alternating the worker runs round by round:

- ``one process``: the baseline (one blob writer for every owner: nothing twice);
- ``N workers, one cache``: workers on one machine (they share the local blob
  index in the cache directory, so they see each other's index objects at once);
- ``N workers, own caches, refresh off``: as on N machines (each worker its own
  cache), each job knowing only what was committed before it began
  (``[cluster] index_refresh = 0``);
- ``N workers, own caches, refresh Ts``: the same with the refresh every T s.

For each: bytes stored (the run report's ``bytes_added_stored``), the extra over
one process, the repository's size on disk, seconds, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.bench.m365 import COFFER, Sim, _du, _env
from tools.bench.scaleout import Redis


def _workers(
    envs: list[dict[str, str]], concurrency: int, logs: Path
) -> list[subprocess.Popen[bytes]]:
    procs = [
        subprocess.Popen(
            [COFFER, "-v", "worker", "--concurrency", str(concurrency)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(logs / f"worker-{i}.log", "wb"),  # noqa: SIM115 (closed with the process)
            stdin=subprocess.DEVNULL,
        )
        for i, env in enumerate(envs)
    ]
    time.sleep(3)  # every worker on the queue before the first job
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=600)


def _run(
    workdir: Path, name: str, config: Path, workers: int, own_caches: bool, concurrency: int
) -> dict[str, Any]:
    repo = workdir / f"repo-{name}"
    env = _env(workdir, repo, config)
    subprocess.run(
        [COFFER, "init", "--kdf-memory", "8", "--kdf-iterations", "1"],
        env=env,
        check=True,
        capture_output=True,
    )
    logs = workdir / f"logs-{name}"
    logs.mkdir()
    envs = [
        {**env, "XDG_CACHE_HOME": str(workdir / f"cache-{name}-{i}")} if own_caches else env
        for i in range(workers)
    ]
    procs = _workers(envs, concurrency, logs) if workers else []
    load = os.getloadavg()[0]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [COFFER, "-q", "backup", "--json"], env=env, capture_output=True, text=True, check=False
        )
    finally:
        _stop(procs)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench: {name} exited {proc.returncode}: {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    check = subprocess.run([COFFER, "check"], env=env, capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise SystemExit(f"bench: coffer check of {name} exited {check.returncode}")
    return {
        "bytes_stored": int(report["repository"]["bytes_added_stored"]),
        "repository_bytes": _du(repo),
        "owners": len(report["owners"]),
        "seconds": round(seconds, 1),
        "load_1min_at_start": round(load, 1),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench dedupworkers")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency", type=float, default=20.0, help="milliseconds per request")
    parser.add_argument("--refresh", type=float, default=2.0, help="index_refresh seconds")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="coffer-dedupworkers-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sim = Sim(
        workdir / "sim", "tiny", args.users, False, extra=("--latency", str(args.latency), "--lazy")
    )
    broker = Redis(workdir / "redis")
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        base = (workdir / "sim" / "coffer.toml").read_text()

        def cluster(name: str, refresh: float) -> Path:
            path = workdir / "sim" / f"{name}.toml"
            path.write_text(
                base + f'\n[cluster]\nbroker = "{broker.url}"\n'
                f'password_file = "{broker.password_file}"\n'
                f"sharepoint_units_per_minute = 600000\nindex_refresh = {refresh}\n"
            )
            return path

        n = args.workers
        plain = workdir / "sim" / "coffer.toml"
        variants = [
            (f"{n} workers, one cache, refresh off", cluster("shared", 0), True, False),
            (f"{n} workers, own caches, refresh off", cluster("off", 0), True, True),
            (
                f"{n} workers, own caches, refresh {args.refresh:g}s",
                cluster("on", args.refresh),
                True,
                True,
            ),
        ]
        runs["one process"] = [_run(workdir, "single", plain, 0, False, args.concurrency)]
        for round_ in range(args.rounds):
            for i, (label, config, _w, own) in enumerate(variants):
                result = _run(workdir, f"r{round_}v{i}", config, n, own, args.concurrency)
                runs.setdefault(label, []).append(result)
    finally:
        broker.stop()
        sim.stop()
    one = runs["one process"][0]["bytes_stored"]
    out = {"users": args.users, "workers": n, "concurrency": args.concurrency, "runs": runs}
    print(json.dumps(out, indent=1))
    print()
    print("| run | MB stored (each round) | extra over one process (median) | seconds |")
    print("|---|---|---|---|")
    for label, results in runs.items():
        stored = sorted(r["bytes_stored"] for r in results)
        median = stored[len(stored) // 2]
        cells = ", ".join(f"{r['bytes_stored'] / 1e6:.2f}" for r in results)
        secs = ", ".join(f"{r['seconds']}" for r in results)
        print(f"| {label} | {cells} | {(median - one) / one * 100:.1f}% | {secs} |")


if __name__ == "__main__":
    main(sys.argv[1:])
