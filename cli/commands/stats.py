"""``coffer stats``: sizes, dedup and compression, per owner, per kind, per run."""

from __future__ import annotations

import click

from cli.app import App
from cli.ui.output import echo, human_size, print_json, shown
from store import format_time, repository_stats


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


@click.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@click.pass_obj
def command(app: App, as_json: bool) -> None:
    """Show repository size, logical size, dedup and compression ratios, and growth."""
    repo = app.open_repo()
    stats = repository_stats(repo)
    if as_json:
        print_json(stats.to_json())
        return
    ref = stats.referenced
    echo(f"repository size:      {human_size(stats.repository_bytes)}")
    for kind, size in sorted(stats.objects.items()):
        echo(f"  {kind + ':':<20}{human_size(size)}")
    echo(f"snapshots:            {stats.snapshots}")
    echo(f"logical size:         {human_size(stats.logical_bytes)} (all snapshots)")
    echo(f"                      {human_size(stats.latest_bytes)} (newest per owner)")
    echo(
        f"unique data:          {ref.blobs} blobs, {human_size(ref.raw_bytes)} raw, "
        f"{human_size(ref.stored_bytes)} stored"
    )
    echo(f"dedup ratio:          {_ratio(stats.dedup_ratio)}")
    echo(f"compression ratio:    {_ratio(stats.compression_ratio)}")
    unreferenced = stats.indexed.stored_bytes - ref.stored_bytes
    echo(f"unreferenced:         {human_size(unreferenced)} (freed by forget + prune)")
    echo("")
    echo(f"{'KIND':<10}{'OWNERS':>7}{'SNAPS':>7}{'NEWEST':>12}{'STORED':>12}{'DEDUP':>8}")
    for group in stats.kinds:
        echo(
            f"{group.kind:<10}{group.owners:>7}{group.snapshots:>7}"
            f"{human_size(group.latest_bytes):>12}{human_size(group.unique.stored_bytes):>12}"
            f"{_ratio(group.to_json()['dedup_ratio']):>8}"
        )
    echo("")
    echo(f"{'OWNER':<44}{'SNAPS':>6}{'ITEMS':>9}{'NEWEST':>12}{'STORED':>12}")
    for owner in stats.owners:
        name = f"{owner.kind}/{shown(owner.name)}"[:43]
        echo(
            f"{name:<44}{owner.snapshots:>6}{owner.latest_items:>9}"
            f"{human_size(owner.latest_bytes):>12}{human_size(owner.unique.stored_bytes):>12}"
        )
    echo("")
    echo(f"{'RUN':<10}{'TIME (UTC)':<22}{'SNAPS':>6}{'LOGICAL':>12}{'ADDED':>12}")
    for run in stats.runs:
        echo(
            f"{run.run[:8]:<10}{format_time(run.time_ns, precision=0):<22}{run.snapshots:>6}"
            f"{human_size(run.logical_bytes):>12}{human_size(run.added.stored_bytes):>12}"
        )
