"""``python -m tools.bench NAME [options]``: run one benchmark (``mount``), or list them."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {"mount": "tools.bench.mount"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(
            "usage: python -m tools.bench NAME [options]; NAME is one of: " + ", ".join(BENCHMARKS)
        )
        print("(make bench BENCH_ARGS='mount --big-mib 64 --items 5000 --million 0')")
        return 2
    module = importlib.import_module(BENCHMARKS[argv[0]])
    code: int = module.main(argv[1:])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
