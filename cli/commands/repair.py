"""``coffer repair index`` and ``coffer repair snapshots``: the only commands that
change a repository after damage."""

from __future__ import annotations

import click

from cli.app import App
from cli.ui.meter import Meter
from cli.ui.output import note, print_json, shown
from store import CheckState, repair_index, repair_snapshots


@click.group("repair")
def command() -> None:
    """Repair a damaged repository (after 'coffer check' found damage)."""


@command.command("index")
@click.option(
    "--read-data",
    is_flag=True,
    help="Verify every blob of every pack (default: trailers, and whole packs the last "
    "check found damaged).",
)
@click.option("--dry-run", is_flag=True, help="Only say what would change.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def index_command(app: App, read_data: bool, dry_run: bool, as_json: bool) -> None:
    """Rebuild the index from the packs; lost and damaged blobs leave the index.

    The next backup then stores those blobs again instead of deduplicating
    against lost data. Run 'coffer repair snapshots' afterwards.
    """
    repo = app.open_repo()
    meter = Meter("repair index", enabled=not (app.quiet or as_json))
    with meter:
        out = repair_index(
            repo,
            read_data=read_data,
            state=CheckState(repo.cache_dir),
            dry_run=dry_run,
            progress=meter.update,
        )
    if as_json:
        print_json(out.to_json() | {"report": out.report, "dry_run": dry_run})
        return
    prefix = "would index" if dry_run else "indexed"
    note(
        f"scanned {out.packs_scanned} packs ({out.packs_read_whole} read whole); "
        f"{prefix} {out.packs_indexed} packs, {out.blobs_indexed} blobs"
    )
    for pack in out.missing_packs:
        note(f"pack {pack} is missing: its blobs are gone from the index")
    for pack in out.damaged_packs:
        note(f"{pack} is damaged: {out.salvaged_blobs} intact blob(s) copied out, file removed")
    if out.lost_blobs:
        note(
            f"{len(out.lost_blobs)} blob(s) lost or damaged are no longer indexed: the next "
            "backup stores them again; run 'coffer repair snapshots' to rebuild the snapshots "
            "that used them"
        )
    for key in out.acknowledged:
        note(f"acknowledged as lost: {key}")
    if out.report:
        note(f"report {out.report}")


@command.command("snapshots")
@click.option("--dry-run", is_flag=True, help="Only say what would change.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def snapshots_command(app: App, dry_run: bool, as_json: bool) -> None:
    """Rewrite snapshots that reference lost data, from what survives.

    Every lost item is listed. The owners' next backups read everything again
    and store what was lost, if it still exists at the source.
    """
    repo = app.open_repo()
    out = repair_snapshots(repo, state=CheckState(repo.cache_dir), dry_run=dry_run)
    if as_json:
        print_json(out.to_json() | {"report": out.report, "dry_run": dry_run})
        return
    if not out.repaired:
        note(f"all {out.checked} snapshots are intact")
    for item in out.repaired:
        old = item.old
        new = f" -> {item.new.short_id}" if item.new is not None else ""
        verb = "would lose" if dry_run else "lost"
        note(
            f"snapshot {old.short_id}{new} of {old.owner.kind}/{shown(old.owner.name)}: "
            f"{verb} {item.lost_count} item(s)"
        )
        for path in item.lost[:20]:
            note(f"  {shown(path, path=True)}")
        if len(item.lost) > 20:
            note(f"  ... and {len(item.lost) - 20} more (see the report)")
    for key in out.acknowledged:
        note(f"acknowledged as lost: {key}")
    if out.report:
        note(f"report {out.report}")
