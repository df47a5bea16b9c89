"""Side-by-side benchmark of the storage engines on the same corpus.

    python -m tools.bench engine [--corpus mail|home] [--quick] [--repeat N]
        [--engines coffer,restic,borg] [--owners N --mails-per-owner N
        --large-files N --large-mib N] [--projects N --files-per-project N
        --vm-images N --vm-mib N]

Two corpus shapes: ``mail`` (tools.bench.corpus: mail-like files sharing
attachments, plus large files) and ``home`` (tools.bench.homecorpus: many
small source files, sparse VM-image-sized files, hard and symbolic links).

Phases, each for every engine before the next phase (so all see the same
input): first backup, no-change rerun, rerun after changing 1% of the
files, full restore. Reports medians of wall time and peak RSS, and the
repository size, as a markdown table (ratios against restic and borg) and
JSON in ``bench-results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from tools.bench.corpus import change_one_percent, generate
from tools.bench.engines import ENGINES, Engine
from tools.bench.homecorpus import change_home_one_percent, generate_home
from tools.bench.measure import dir_size, drop_caches, median
from tools.bench.phases import (
    add_mail_options,
    bench_parser,
    mail_sizes,
    measure_phase,
    phase_line,
    phase_medians,
    sizes_from,
)

PHASES = ("first backup", "no-change rerun", "1% changed rerun", "full restore")


def run_once(
    engines: list[Engine], corpus: Path, scratch: Path, seed: int, shape: str = "mail"
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {e.name: {} for e in engines}
    for engine in engines:
        engine.reset()
        engine.init()
    for phase in PHASES:
        if phase == "1% changed rerun":
            if shape == "home":
                change_home_one_percent(corpus, seed=seed)
            else:
                change_one_percent(corpus, seed=seed)
        for engine in engines:
            cold = drop_caches()
            measured = measure_phase(engine, phase, corpus, scratch)
            load = os.getloadavg()[0]
            results[engine.name][phase] = {
                "seconds": measured.seconds,
                "peak_rss_mib": measured.peak_rss_mib,
                "cold_cache": cold,
                "load_1min": load,
            }
            print(f"{phase_line(engine.name, phase, measured, 18)}  load {load:.1f}", flush=True)
        if phase == "1% changed rerun":
            for engine in engines:
                results[engine.name]["repository bytes"] = dir_size(engine.repo)
    return results


def summarise(
    runs: list[dict[str, dict[str, Any]]], corpus_bytes: int
) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for name in runs[0]:
        entry: dict[str, Any] = dict(phase_medians(runs, name, PHASES))
        entry["repository bytes"] = median([r[name]["repository bytes"] for r in runs])
        entry["first backup MB/s"] = corpus_bytes / 1e6 / entry["first backup"]["seconds"]
        summary[name] = entry
    return summary


def markdown(summary: dict[str, dict[str, Any]], corpus_desc: str) -> str:
    names = list(summary)
    lines = [f"Corpus: {corpus_desc}", ""]
    header = "| | " + " | ".join(names) + " |"
    lines += [header, "|---" * (len(names) + 1) + "|"]
    for phase in PHASES:
        cells = [f"{summary[n][phase]['seconds']:.1f} s" for n in names]
        lines.append(f"| {phase} (time) | " + " | ".join(cells) + " |")
    cells = [f"{max(summary[n][p]['peak_rss_mib'] for p in PHASES):.0f} MiB" for n in names]
    lines.append("| peak RSS (any phase) | " + " | ".join(cells) + " |")
    cells = [f"{summary[n]['repository bytes'] / 2**20:.0f} MiB" for n in names]
    lines.append("| repository size | " + " | ".join(cells) + " |")
    if "coffer" in summary:
        lines += [
            "",
            "Ratios (Coffer relative to the other engine; > 1 means Coffer is better):",
            "",
        ]
        lines += ["| | " + " | ".join(n for n in names if n != "coffer") + " |"]
        lines += ["|---" * len(names) + "|"]
        c = summary["coffer"]
        for phase in PHASES:
            cells = [
                f"{summary[n][phase]['seconds'] / c[phase]['seconds']:.2f}x"
                for n in names
                if n != "coffer"
            ]
            lines.append(f"| {phase} speed | " + " | ".join(cells) + " |")
        coffer_rss = max(c[p]["peak_rss_mib"] for p in PHASES)
        cells = [
            f"{max(summary[n][p]['peak_rss_mib'] for p in PHASES) / coffer_rss:.2f}x"
            for n in names
            if n != "coffer"
        ]
        lines.append("| peak RSS (lower is better for Coffer) | " + " | ".join(cells) + " |")
        cells = [
            f"{summary[n]['repository bytes'] / c['repository bytes']:.2f}x"
            for n in names
            if n != "coffer"
        ]
        lines.append("| repository size (smaller) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__, work="bench-results/engine", engines="coffer,restic,borg")
    parser.add_argument("--corpus", choices=("mail", "home"), default="mail")
    add_mail_options(parser, owners="mail: owners (default 10; --quick 2)", prefix="mail: ")
    parser.add_argument("--projects", type=int, help="home: projects (default 40; --quick 4)")
    parser.add_argument("--files-per-project", type=int, help="home: (default 1,000; --quick 250)")
    parser.add_argument("--vm-images", type=int, help="home: VM images (default 3; --quick 1)")
    parser.add_argument("--vm-mib", type=int, help="home: apparent MiB each (default 2048; 256)")
    args = parser.parse_args(argv)
    work: Path = args.work.resolve()
    sizes = corpus_sizes(args)
    suffix = "-".join(f"{k}{v}" for k, v in sorted(sizes.items()))
    corpus_dir = work / (f"corpus-{args.corpus}" + (f"-{suffix}" if suffix else ""))
    started = time.perf_counter()
    if args.corpus == "home":
        corpus = generate_home(corpus_dir, **sizes)
    else:
        corpus = generate(corpus_dir, **sizes)
    corpus_bytes = dir_size(corpus)
    files = sum(1 for p in corpus.rglob("*") if p.is_file())
    took = time.perf_counter() - started
    desc = (
        f"{args.corpus}: {files} files, {corpus_bytes / 1e9:.2f} GB apparent, "
        f"{allocated_size(corpus) / 1e9:.2f} GB on disk (generated in {took:.0f} s)"
    )
    print(f"corpus: {desc}", flush=True)
    engines = [ENGINES[name](name, work / name) for name in args.engines.split(",")]
    runs = []
    for repeat in range(args.repeat):
        print(f"run {repeat + 1}/{args.repeat}", flush=True)
        runs.append(run_once(engines, corpus, work, seed=100 + repeat, shape=args.corpus))
    summary = summarise(runs, corpus_bytes)
    table = markdown(summary, desc)
    print(table)
    loads = [
        phase["load_1min"]
        for run in runs
        for e in run.values()
        for phase in e.values()
        if isinstance(phase, dict)
    ]
    load = (
        f"1-minute load average after each phase: {min(loads):.1f} to {max(loads):.1f} "
        f"(median {median(loads):.1f}), {os.cpu_count()} cores"
    )
    print(load)
    (work / f"engine-{args.corpus}.json").write_text(
        json.dumps({"corpus": desc, "load": load, "runs": runs, "summary": summary}, indent=1)
    )
    (work / f"engine-{args.corpus}.md").write_text(table + "\n\n" + load + "\n")


def corpus_sizes(args: argparse.Namespace) -> dict[str, int]:
    """Generator keyword arguments from --quick and the size options."""
    if args.corpus == "home":
        return sizes_from(
            args,
            quick={"projects": 4, "files_per_project": 250, "vm_images": 1, "vm_size": 256 << 20},
            counts=("projects", "files_per_project", "vm_images"),
            mib="vm_mib",
            size="vm_size",
        )
    return mail_sizes(args)


def allocated_size(path: Path) -> int:
    """Bytes the files under ``path`` take on disk (holes of sparse files excluded)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total
