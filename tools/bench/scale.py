"""One owner of 1,000,000 small items: backup, listing and restore with bounded memory.

    python -m tools.bench scale [--items N] [--work DIR]

Each phase runs in its own process so its peak RSS is its own. The backup
goes through the engine's streaming API (as a Microsoft 365 source would),
the listing and the restore through the ``coffer`` command. After each
backup it also reports the local cache's size on disk (the owner's catalogue
and the blob index: LMDB files that keep their high-water mark).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tools.bench.engine import allocated_size
from tools.bench.measure import run_measured

PASSWORD = "scale benchmark"


def backup_items(repo: Path, items: int, first: int = 0) -> None:
    """Runs in the measured child process: adds items ``first`` to ``items`` - 1.

    A later call with ``first`` > 0 is what a delta source does: it mentions
    only the new items; everything else carries over from the catalogue.
    """
    from store import BackupRun, LocalBackend, Owner, Repository

    repository = Repository.open(LocalBackend(repo), PASSWORD.encode())
    owner = Owner("users", "scale-user", "scale.user@contoso.example")
    with BackupRun(repository) as run, run.owner(owner) as session:
        for number in range(first, items):
            folder = f"mail/folder-{number % 100:02d}"
            body = f"Subject: item {number}\r\n\r\nmessage number {number}\r\n".encode()
            session.add_item(
                f"{folder}/{number:07d}.eml",
                body,
                mtime_ns=1_700_000_000_000_000_000 + number,
                version=f"ck-{number}",
                item_id=f"id-{number}",
                attrs={"subject": f"item {number}"},
            )
        session.commit()
    repository.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("bench-results/scale"))
    args = parser.parse_args(argv)
    work: Path = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    coffer = str(Path(sys.executable).with_name("coffer"))
    env = dict(
        os.environ,
        COFFER_REPO=str(work / "repo"),
        COFFER_PASSWORD=PASSWORD,
        XDG_CACHE_HOME=str(work / "cache"),
    )
    subprocess.run([coffer, "init"], env=env, check=True, capture_output=True)
    results: dict[str, dict[str, float]] = {}

    def record(name: str, args: list[str]) -> None:
        measured = run_measured(args, env=env)
        if measured.returncode != 0:
            raise SystemExit(f"{name} failed:\n{measured.output[-3000:]}")
        results[name] = {"seconds": measured.seconds, "peak_rss_mib": measured.peak_rss_mib}
        print(f"{name:28} {measured.seconds:8.1f} s  {measured.peak_rss_mib:7.0f} MiB", flush=True)
        if "backup" in name:
            cache_mib = allocated_size(work / "cache") / 2**20
            results[name]["cache_mib"] = cache_mib
            print(f"{'  local cache on disk':28} {cache_mib:8.0f} MiB", flush=True)

    record(
        "backup",
        [
            sys.executable,
            "-c",
            f"from tools.bench.scale import backup_items; "
            f"from pathlib import Path; backup_items(Path({str(work / 'repo')!r}), {args.items})",
        ],
    )
    record("ls -R (every item)", [coffer, "-q", "ls", "latest", "-R"])
    record("ls one folder", [coffer, "-q", "ls", "latest", "mail/folder-42"])
    record(
        "restore to a directory", [coffer, "-q", "restore", "latest", "--to-dir", str(work / "out")]
    )
    restored = sum(len(files) for _, _, files in os.walk(work / "out"))
    if restored != args.items:
        raise SystemExit(f"restored {restored} items, expected {args.items}")
    shutil.rmtree(work / "out")
    # An incremental backup adding 1% new items (as a delta source would).
    more = args.items + args.items // 100
    record(
        "second backup (1% new items)",
        [
            sys.executable,
            "-c",
            "from tools.bench.scale import backup_items; from pathlib import Path; "
            f"backup_items(Path({str(work / 'repo')!r}), {more}, {args.items})",
        ],
    )
    (work / "scale.json").write_text(
        json.dumps({"items": args.items, "results": results}, indent=1)
    )
