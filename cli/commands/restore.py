"""``coffer restore``: restore snapshots (to a local directory for now)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.app import App
from cli.errors import EXIT_OK, EXIT_PARTIAL, CliError
from cli.output import human_size, note, print_json
from cli.progress import Progress
from sources.folder import restore_to_dir
from sources.folder.restore import CONFLICT_POLICIES
from store import Layout, owner_component, select_snapshots


@click.command("restore")
@click.argument("snapshot")
@click.option(
    "--to-dir",
    "to_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Restore into this local directory (created if missing).",
)
@click.option("--owner", "owners", multiple=True, metavar="GLOB", help="Only these owners.")
@click.option(
    "--include",
    "includes",
    multiple=True,
    metavar="GLOB",
    help="Only items whose path matches (a match on a folder includes what is in it).",
)
@click.option(
    "--path",
    "subpath",
    default="",
    metavar="PATH",
    help="Restore only this folder or item of the snapshot.",
)
@click.option(
    "--on-conflict",
    type=click.Choice(CONFLICT_POLICIES),
    default="skip",
    show_default=True,
    help="When the target already has the item.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def command(
    app: App,
    snapshot: str,
    to_dir: Path | None,
    owners: tuple[str, ...],
    includes: tuple[str, ...],
    subpath: str,
    on_conflict: str,
    as_json: bool,
) -> int:
    """Restore SNAPSHOT (an ID, or 'latest' for the newest of every owner)."""
    if to_dir is None:
        raise CliError("give a target: --to-dir DIR")
    repo = app.open_repo()
    chosen = select_snapshots(repo.list_snapshots(), snapshot, list(owners) or None)
    several = len(chosen) > 1
    # Owner folders are named as the mount names them (owners/<kind>/<name>),
    # so a restore and a mount of the same snapshots can be compared directly,
    # and two owners sharing a name never merge.
    owner_names = Layout.build(repo.list_snapshots()).owner_names if several else {}
    owners_report: list[dict[str, Any]] = []
    with Progress("restore", enabled=not (app.quiet or as_json)) as progress:
        for snap in chosen:
            # One snapshot goes straight into the target; several go under
            # <kind>/<name>/ so owners never mix.
            owner_dir = owner_names.get(snap.owner.identity) or owner_component(
                snap.owner.name or snap.owner.key
            )
            target = to_dir / snap.owner.kind / owner_dir if several else to_dir
            result = restore_to_dir(
                repo.reader(snap),
                target,
                path=subpath,
                includes=list(includes),
                on_conflict=on_conflict,
                progress=progress.item,
            )
            owners_report.append(
                {
                    "owner": snap.owner.name,
                    "snapshot": snap.id_hex,
                    "target": str(target),
                    **result.to_map(),
                }
            )
    failed = sum(int(r["failed"]) for r in owners_report)
    report: dict[str, Any] = {
        "selector": snapshot,
        "target": str(to_dir),
        "on_conflict": on_conflict,
        "owners": owners_report,
        "failed": failed,
    }
    report["report"] = repo.save_report("restore", report)
    if as_json:
        print_json(report)
    else:
        for r in owners_report:
            note(
                f"{r['owner']}: {r['created']} created, {r['replaced']} replaced, "
                f"{r['kept_both']} kept both, {r['skipped']} skipped, "
                f"{r['unchanged']} already there, "
                f"{r['failed']} failed, {human_size(r['bytes_written'])} written to {r['target']}"
            )
            for failure in r["failures"]:
                note(f"  failed {failure['path']}: {failure['reason']}")
        total = sum(r["created"] + r["replaced"] + r["kept_both"] for r in owners_report)
        if (
            total == 0
            and failed == 0
            and not any(r["unchanged"] or r["skipped"] for r in owners_report)
        ):
            note("nothing matched the selection")
    return EXIT_PARTIAL if failed else EXIT_OK
