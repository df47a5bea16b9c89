"""``coffer snapshots``: list snapshots."""

from __future__ import annotations

import click

from cli.app import App
from cli.ui.output import echo, human_size, print_json, shown
from store import Snapshot, format_time, owner_matches


def snapshot_json(snapshot: Snapshot) -> dict[str, object]:
    return {
        "id": snapshot.id_hex,
        "short_id": snapshot.short_id,
        "time": snapshot.time.isoformat().replace("+00:00", "Z"),
        "time_ns": snapshot.time_ns,
        "owner": snapshot.owner.name,
        "owner_kind": snapshot.owner.kind,
        "owner_key": snapshot.owner.key,
        "run": snapshot.run,
        "partial": snapshot.partial,
        "host": snapshot.host,
        "parent": snapshot.parent.hex() if snapshot.parent else None,
        "stats": snapshot.stats,
    }


@click.command("snapshots")
@click.option(
    "--owner",
    "owners",
    multiple=True,
    metavar="GLOB",
    help="Only these owners (name, key or kind/name; globs).",
)
@click.option("--partial", is_flag=True, help="Include checkpoints of unfinished runs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def command(app: App, owners: tuple[str, ...], partial: bool, as_json: bool) -> None:
    """List the repository's snapshots, oldest first."""
    repo = app.open_repo()
    listed = [
        s
        for s in repo.list_snapshots()
        if (partial or not s.partial) and (not owners or owner_matches(s, list(owners)))
    ]
    if as_json:
        print_json([snapshot_json(s) for s in listed])
        return
    if not listed:
        echo("no snapshots")
        return
    echo(f"{'ID':<10}{'TIME (UTC)':<30}{'OWNER':<44}{'ITEMS':>9}{'READ':>11}  RUN")
    for s in listed:
        items = sum(
            int(s.stats.get(k, 0)) for k in ("items_new", "items_changed", "items_unchanged")
        )
        flag = " (partial)" if s.partial else ""
        owner = f"{s.owner.kind}/{shown(s.owner.name)}"[:43]
        echo(
            f"{s.short_id:<10}{format_time(s.time_ns):<30}{owner:<44}"
            f"{items:>9}{human_size(int(s.stats.get('bytes_read', 0))):>11}  {s.run[:8]}{flag}"
        )
    echo(f"{len(listed)} snapshots")
