"""Redis memory of a scale-out backup (docs/scale-out.md, Sizing).

    python -m tools.bench brokermemory --users 2000 --complete-users 40 --workers 2

Two measurements on a fresh redis-server each (``INFO memory``):

1. ``--users`` users (0: skipped): ``coffer backup --detach`` enqueues one job per owner and
   nobody runs them: ``used_memory`` before and after is what the queued jobs
   and the run's counters cost, per owner.
2. ``--complete-users`` users (0: skipped) backed up to the end by ``--workers`` workers:
   ``used_memory_peak`` over the run, and ``used_memory`` once it is done (the
   run's outcomes, kept until ``result_expiry``), per owner; and ``MEMORY
   USAGE`` of every key left (the data without the per-connection buffers).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from tools.bench.dedupworkers import _stop, _workers
from tools.bench.m365 import COFFER, Sim, _env
from tools.bench.scaleout import Redis


def _client(broker: Redis) -> redis.Redis:
    password = broker.password_file.read_text().strip()
    client = redis.Redis(host="127.0.0.1", port=broker.port, password=password)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            return client
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _memory(client: redis.Redis) -> dict[str, int]:
    info: dict[str, Any] = client.info("memory")
    names = ("used_memory", "used_memory_peak", "used_memory_dataset")
    return {k: int(info[k]) for k in names}


def _key_sizes(client: redis.Redis) -> dict[str, int]:
    """``MEMORY USAGE`` of each key (what the data itself takes, without the
    server's per-connection buffers that ``used_memory`` includes)."""
    return {
        key.decode(errors="replace"): int(client.memory_usage(key) or 0)
        for key in client.scan_iter(count=1000)
    }


def _measure(
    workdir: Path, users: int, workers: int, concurrency: int, complete: bool
) -> dict[str, Any]:
    name = f"{'complete' if complete else 'queued'}-{users}"
    sim = Sim(workdir / f"sim-{name}", "tiny", users, False, extra=("--lazy",))
    broker = Redis(workdir / f"redis-{name}")
    try:
        client = _client(broker)
        config = workdir / f"sim-{name}" / "cluster.toml"
        config.write_text(
            (workdir / f"sim-{name}" / "coffer.toml").read_text()
            + f'\n[cluster]\nbroker = "{broker.url}"\npassword_file = "{broker.password_file}"\n'
            "sharepoint_units_per_minute = 600000\n"
        )
        env = _env(workdir, workdir / f"repo-{name}", config)
        subprocess.run(
            [COFFER, "init", "--kdf-memory", "8", "--kdf-iterations", "1"],
            env=env,
            check=True,
            capture_output=True,
        )
        before = _memory(client)
        procs = _workers([env] * workers, concurrency, workdir) if complete else []
        try:
            args = ["backup", "--json"] if complete else ["backup", "--detach", "--json"]
            proc = subprocess.run(
                [COFFER, "-q", *args], env=env, capture_output=True, text=True, check=False
            )
        finally:
            _stop(procs)
        if proc.returncode not in (0, 3):
            raise SystemExit(f"bench: {name} exited {proc.returncode}: {proc.stderr[-2000:]}")
        report = json.loads(proc.stdout)
        owners = len(report["owners"]) if complete else int(report["owners"])
        after = _memory(client)
        sizes = _key_sizes(client)
    finally:
        broker.stop()
        sim.stop()
    return {
        "users": users,
        "owners": owners,
        "used_memory_before": before["used_memory"],
        "used_memory_after": after["used_memory"],
        "used_memory_peak": after["used_memory_peak"],
        "used_memory_dataset_after": after["used_memory_dataset"],
        "keys_after": sizes,
        "key_bytes_per_owner_after": round(sum(sizes.values()) / owners),
        "bytes_per_owner_after": round((after["used_memory"] - before["used_memory"]) / owners),
        "peak_bytes_per_owner": round((after["used_memory_peak"] - before["used_memory"]) / owners),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench brokermemory")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--complete-users", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="coffer-brokermemory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    if args.users:
        out["queued"] = _measure(workdir, args.users, 0, args.concurrency, complete=False)
    if args.complete_users:
        out["complete"] = _measure(
            workdir, args.complete_users, args.workers, args.concurrency, complete=True
        )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
