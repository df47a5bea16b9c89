"""``coffer prune``: free the space of forgotten snapshots, without stopping backups."""

from __future__ import annotations

import time

import click

from cli.app import App
from cli.errors import ConfigError
from cli.ui.output import human_size, note, print_json
from store import DEFAULT_GRACE_NS, Duration, PruneOptions, prune


def _grace_ns(text: str) -> int:
    duration = Duration.parse(text)
    now = time.time_ns()
    return now - duration.nanoseconds_before(now)


def _max_unused(text: str) -> float:
    value = text.strip().lower()
    if value == "unlimited":
        return float("inf")
    try:
        number = float(value.removesuffix("%"))
    except ValueError:
        raise ValueError(f"--max-unused {text}: give a percentage (5%) or 'unlimited'") from None
    if number < 0:
        raise ValueError("--max-unused must not be negative")
    return number


@click.command("prune")
@click.option(
    "--max-unused",
    metavar="PERCENT|unlimited",
    help="Unused space tolerated in partly used packs before they are repacked "
    "(default 5%, or [prune] max-unused).",
)
@click.option(
    "--grace",
    metavar="DURATION",
    help="How long marked packs wait before deletion (default 24h, or [prune] grace).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be marked, repacked and deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def command(
    app: App, max_unused: str | None, grace: str | None, dry_run: bool, as_json: bool
) -> None:
    """Free space: mark unreferenced packs now, delete them after the grace period.

    Backups may run at the same time: packs a running backup may still use
    are kept, and packs a newer backup needs again are revived.
    """
    section = app.config.section("prune")
    grace_text = grace or section.get("grace")
    unused_text = max_unused or section.get("max-unused", "5%")
    try:
        grace_ns = _grace_ns(str(grace_text)) if grace_text else DEFAULT_GRACE_NS
        unused = _max_unused(str(unused_text))
    except ValueError as exc:
        if grace or max_unused:
            raise click.UsageError(str(exc)) from None
        raise ConfigError(f"{app.config.path}: [prune]: {exc}") from None
    repo = app.open_repo()
    started = time.monotonic()
    result = prune(
        repo, PruneOptions(grace_ns=grace_ns, max_unused_percent=unused, dry_run=dry_run)
    )
    seconds = time.monotonic() - started
    if as_json:
        print_json(result.to_json() | {"seconds": round(seconds, 3)})
        return
    would = "would " if dry_run else ""
    note(
        f"{result.snapshots} snapshots reference {result.used_blobs} blobs in "
        f"{result.packs} packs ({human_size(result.pack_bytes)})"
    )
    if result.revived:
        note(f"revived {len(result.revived)} marked pack(s) that backups need again")
    if result.deleted:
        note(
            f"{would}delete {len(result.deleted)} pack(s) marked more than the grace period ago "
            f"({human_size(result.deleted_bytes)})"
        )
    for reason in result.postponed:
        note(f"postponed: {reason}")
    if result.repacked:
        note(
            f"{would}repack {len(result.repacked)} partly used pack(s) "
            f"({human_size(result.repacked_bytes)}) into {len(result.new_packs)} new one(s)"
        )
    if result.marked:
        note(
            f"{would}mark {len(result.marked)} unreferenced pack(s) "
            f"({human_size(result.marked_bytes)}) for deletion after the grace period"
        )
    if result.temporaries_removed:
        note(
            f"{would}remove {len(result.temporaries_removed)} temporary object(s) left by "
            f"interrupted writes ({human_size(result.temporaries_bytes)})"
        )
    if not (
        result.marked
        or result.deleted
        or result.repacked
        or result.revived
        or result.temporaries_removed
    ):
        note("nothing to do")
    note(f"done in {seconds:.1f}s" + (f" (report {result.report})" if result.report else ""))
