"""The measuring loop the engine and S3 benchmarks share (tools/bench/engine.py, s3.py).

One phase of one engine is measured by :func:`measure_phase` (a backup of the
corpus, or the full restore into an emptied directory), printed by
:func:`phase_line` and summarised over the repeats by :func:`phase_medians`
(median wall time, highest peak RSS). The mail corpus's size options, which
both benchmarks take, are :func:`add_mail_options` and :func:`mail_sizes` (any
corpus's through :func:`sizes_from`); their common options, :func:`bench_parser`.
Nothing here keeps state; the functions run the engines' commands and return.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.bench.engines import Engine
from tools.bench.measure import Measurement, median

RESTORE = "full restore"


def bench_parser(description: str | None, *, work: str, engines: str) -> argparse.ArgumentParser:
    """The options every engine benchmark takes (--work, --repeat, --quick, --engines)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path(work))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small corpus (checks the harness)")
    parser.add_argument("--engines", default=engines)
    return parser


def measure_phase(
    engine: Engine,
    phase: str,
    corpus: Path,
    scratch: Path,
    verify: Callable[[Path], None] | None = None,
) -> Measurement:
    """Measure ``phase`` of ``engine``: :data:`RESTORE` restores into
    ``scratch/restore-<engine>`` (emptied first; ``verify(target)`` then sees the
    restored tree, which is removed after), any other phase backs up ``corpus``.
    What ``verify`` raises propagates (the tree is left for a look)."""
    if phase != RESTORE:
        return engine.backup(corpus)
    target = scratch / f"restore-{engine.name}"
    shutil.rmtree(target, ignore_errors=True)
    measured = engine.restore(target)
    if verify is not None:
        verify(target)
    shutil.rmtree(target, ignore_errors=True)
    return measured


def phase_line(engine: str, phase: str, measured: Measurement, width: int) -> str:
    """The progress line of one measured phase (``phase`` padded to ``width``)."""
    return (
        f"  {engine:7} {phase:{width}} {measured.seconds:8.2f} s  {measured.peak_rss_mib:7.0f} MiB"
    )


def phase_medians(
    runs: list[dict[str, Any]], engine: str, phases: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """Per phase over ``runs`` (each ``{engine: {phase: {"seconds", "peak_rss_mib"}}}``):
    the median wall time and the highest peak RSS."""
    return {
        phase: {
            "seconds": median([r[engine][phase]["seconds"] for r in runs]),
            "peak_rss_mib": max(r[engine][phase]["peak_rss_mib"] for r in runs),
        }
        for phase in phases
    }


def add_mail_options(parser: argparse.ArgumentParser, *, owners: str, prefix: str = "") -> None:
    """The mail corpus's size options (``owners``: the help of --owners; ``prefix``
    starts the others' help)."""
    parser.add_argument("--owners", type=int, help=owners)
    parser.add_argument(
        "--mails-per-owner", type=int, help=f"{prefix}(default 10,000; --quick 1,000)"
    )
    parser.add_argument("--large-files", type=int, help=f"{prefix}(default 20; --quick 2)")
    parser.add_argument("--large-mib", type=int, help=f"{prefix}(default 25; --quick 4)")


def sizes_from(
    args: argparse.Namespace,
    *,
    quick: dict[str, int],
    counts: tuple[str, ...],
    mib: str,
    size: str,
) -> dict[str, int]:
    """A corpus generator's keyword arguments: ``quick`` under --quick, then each of
    the ``counts`` options given, and the ``mib`` option (MiB) as ``size`` bytes."""
    sizes = dict(quick) if args.quick else {}
    for name in counts:
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)
    if getattr(args, mib) is not None:
        sizes[size] = getattr(args, mib) << 20
    return sizes


def mail_sizes(args: argparse.Namespace) -> dict[str, int]:
    """The mail corpus generator's keyword arguments from --quick and the size options."""
    return sizes_from(
        args,
        quick={"owners": 2, "mails_per_owner": 1000, "large_files": 2, "large_size": 4 << 20},
        counts=("owners", "mails_per_owner", "large_files"),
        mib="large_mib",
        size="large_size",
    )
