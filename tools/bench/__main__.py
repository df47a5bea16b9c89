"""``python -m tools.bench <benchmark> [options]`` (``make bench BENCH_ARGS=...``)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "engine": "tools.bench.engine",  # Coffer vs restic vs borg on one corpus
    "scale": "tools.bench.scale",  # one owner of 1,000,000 items
    "mount": "tools.bench.mount",  # mounts side by side
    "chunking": "tools.bench.chunking",  # chunk sizes: dedup against chunk count
    "s3": "tools.bench.s3",  # backup and restore through an S3 server, Coffer vs restic
    "m365": "tools.bench.m365",  # a simulated Microsoft 365 tenant: full, incremental, dedup
    "scaleout": "tools.bench.scaleout",  # one backup over 1, 2, 4, 8 workers (docs/scale-out.md)
    "dedupworkers": "tools.bench.dedupworkers",  # what workers store twice (docs/scale-out.md)
    "brokermemory": "tools.bench.brokermemory",  # Redis memory per owner (docs/scale-out.md)
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        names = ", ".join(BENCHMARKS)
        raise SystemExit(f"usage: python -m tools.bench {{{names}}} [options]")
    module = importlib.import_module(BENCHMARKS[sys.argv[1]])
    module.main(sys.argv[2:])


if __name__ == "__main__":
    main()
