"""Backup and restore throughput to an S3 server: Coffer against restic.

    python -m tools.bench s3 [--quick] [--repeat N] [--engines coffer,restic]

Starts a moto S3 server on loopback (``moto_server``, in memory), then for
each engine, in turn, on the same corpus (tools/bench/corpus.py): ``init``,
first backup, a rerun with nothing changed, and a full restore into an empty
directory, which is compared with the corpus. Each engine has its own bucket
and its own local cache (kept between phases, as on a real machine). Reports
the medians of wall time, throughput (corpus MB per second) and peak RSS, and
the bytes each engine stored in its bucket, as a markdown table and JSON in
``bench-results/s3/``.

moto keeps every object in memory and answers from one Python process, so
absolute figures are bounded by it; the comparison is what the numbers are for.
"""

from __future__ import annotations

import filecmp
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tools.bench.corpus import generate
from tools.bench.engines import Coffer, Engine, Restic
from tools.bench.measure import Measurement, dir_size, drop_caches, median
from tools.bench.phases import (
    add_mail_options,
    bench_parser,
    mail_sizes,
    measure_phase,
    phase_line,
    phase_medians,
)

PHASES = ("first backup", "no-change rerun", "full restore")
ACCESS_KEY = "coffer-bench"
SECRET_KEY = "coffer-bench-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """moto in server mode on a free loopback port, for the length of a ``with``."""

    def __init__(self, work: Path) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        binary = Path(sys.executable).with_name("moto_server")
        self._log = open(work / "moto.log", "wb")  # noqa: SIM115 - closed in __exit__
        self._process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def __enter__(self) -> MotoServer:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SystemExit("moto_server exited; see moto.log")
            try:
                urllib.request.urlopen(self.endpoint, timeout=2).close()
                return self
            except OSError:
                time.sleep(0.2)
        raise SystemExit("moto_server did not answer within 60 s")

    def __exit__(self, *exc: object) -> None:
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()

    def _client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def bucket_bytes(self, bucket: str) -> int:
        total = 0
        for page in self._client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
            total += sum(item["Size"] for item in page.get("Contents", []))
        return total

    def drop_bucket(self, bucket: str) -> None:
        """Delete a bucket and its objects (moto holds them all in memory)."""
        client = self._client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        client.delete_bucket(Bucket=bucket)


def _aws(env: dict[str, str]) -> dict[str, str]:
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


class S3Coffer(Coffer):
    bucket = ""
    endpoint = ""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["COFFER_REPO"] = f"s3:{self.endpoint}/{self.bucket}/repo"
        return _aws(env)

    def init(self) -> Measurement:
        return self._coffer("init", "--kdf-memory", "64", "--kdf-iterations", "3")


class S3Restic(Restic):
    bucket = ""
    endpoint = ""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["RESTIC_REPOSITORY"] = f"s3:{self.endpoint}/{self.bucket}"
        return _aws(env)


ENGINES: dict[str, type[Engine]] = {"coffer": S3Coffer, "restic": S3Restic}


def _same_tree(left: Path, right: Path) -> bool:
    """True when every file under ``left`` is under ``right`` with the same bytes."""
    for path in left.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            other = right / path.relative_to(left)
            if not other.is_file() or not filecmp.cmp(path, other, shallow=False):
                return False
    return True


def _restored_root(target: Path, corpus: Path) -> Path:
    """restic restores the full path under the target; Coffer restores the folder itself."""
    nested = target / corpus.relative_to(corpus.anchor)
    return nested if nested.is_dir() else target


def _check_restored(corpus: Path, engine: str, target: Path) -> None:
    """Stop the benchmark when the tree restored into ``target`` is not the corpus."""
    if not _same_tree(corpus, _restored_root(target, corpus)):
        raise SystemExit(f"{engine}: the restored tree differs from the corpus")


def run_once(engines: list[Engine], server: MotoServer, corpus: Path, work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for engine in engines:
        engine.reset()
        engine.bucket = f"bench-{engine.name}-{uuid.uuid4().hex[:8]}"  # type: ignore[attr-defined]
        engine.endpoint = server.endpoint  # type: ignore[attr-defined]
        engine.init()
        phases: dict[str, Any] = {}
        for phase in PHASES:
            verify = functools.partial(_check_restored, corpus, engine.name)
            # Each phase from a cold page cache, as in the engine benchmark,
            # and after the writeback of the phase before: without it, three
            # restores in a row of the same tree took 5.4, 11.2 and 13.6 s,
            # the system time growing from 2.8 to 11.6 s.
            drop_caches()
            measured = measure_phase(engine, phase, corpus, work, verify)
            phases[phase] = {"seconds": measured.seconds, "peak_rss_mib": measured.peak_rss_mib}
            print(phase_line(engine.name, phase, measured, 16), flush=True)
        bucket = engine.bucket  # type: ignore[attr-defined]
        phases["bucket bytes"] = server.bucket_bytes(bucket)
        server.drop_bucket(bucket)
        results[engine.name] = phases
    return results


def markdown(summary: dict[str, Any], corpus_desc: str, corpus_bytes: int) -> str:
    names = list(summary)
    lines = [f"Corpus: {corpus_desc}", "", "| | " + " | ".join(names) + " |"]
    lines.append("|---" * (len(names) + 1) + "|")
    for phase in PHASES:
        cells = []
        for name in names:
            seconds = summary[name][phase]["seconds"]
            rate = (
                f", {corpus_bytes / 1e6 / seconds:.0f} MB/s" if phase != "no-change rerun" else ""
            )
            cells.append(f"{seconds:.1f} s{rate}")
        lines.append(f"| {phase} | " + " | ".join(cells) + " |")
    cells = [f"{max(summary[n][p]['peak_rss_mib'] for p in PHASES):.0f} MiB" for n in names]
    lines.append("| peak RSS (any phase) | " + " | ".join(cells) + " |")
    cells = [f"{summary[n]['bucket bytes'] / 2**20:.0f} MiB" for n in names]
    lines.append("| stored in the bucket | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__, work="bench-results/s3", engines="coffer,restic")
    add_mail_options(parser, owners="corpus size (default 10; --quick 2)")
    args = parser.parse_args(argv)
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    sizes = mail_sizes(args)
    name = "corpus-" + "-".join(f"{k}{v}" for k, v in sorted(sizes.items())) if sizes else "corpus"
    corpus = generate(work / name, **sizes)
    corpus_bytes = dir_size(corpus)
    files = sum(1 for p in corpus.rglob("*") if p.is_file())
    desc = f"{files} files, {corpus_bytes / 1e9:.2f} GB"
    print(f"corpus: {desc}", flush=True)
    engines = [ENGINES[name](name, work / name) for name in args.engines.split(",")]
    runs = []
    for repeat in range(args.repeat):
        print(f"run {repeat + 1}/{args.repeat}", flush=True)
        # A new server per round: moto answered more slowly round after round
        # (Coffer's restore 5.1, 9.3, 12.4 s in one run), and the engine run
        # first in a round would pay for the rounds before.
        with MotoServer(work) as server:
            runs.append(run_once(engines, server, corpus, work))
    summary: dict[str, Any] = {}
    for name in runs[0]:
        entry: dict[str, Any] = dict(phase_medians(runs, name, PHASES))
        entry["bucket bytes"] = median([r[name]["bucket bytes"] for r in runs])
        summary[name] = entry
    load = os.getloadavg()[0]
    table = markdown(summary, desc, corpus_bytes) + f"\n\nLoad average at the end: {load:.1f}"
    print(table)
    (work / "s3.json").write_text(
        json.dumps({"corpus": desc, "runs": runs, "summary": summary}, indent=1)
    )
    (work / "s3.md").write_text(table + "\n")
