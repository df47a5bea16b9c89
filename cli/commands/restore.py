"""``coffer restore``: put items back into Microsoft 365, or into a local directory.

    coffer restore SNAPSHOT --to original|user:UPN[/FOLDER]|site:SITE[/PATH] [filters]
    coffer restore SNAPSHOT --to-dir DIR [filters]

SNAPSHOT is an ID (``coffer find`` says which holds a version) or ``latest``
(the newest of every owner). Filters (cli/flows/restoring.py) narrow what is
restored. Exit codes: 0 done (items skipped by the conflict policy are not
failures; nothing matching is not an error), 3 some items failed (listed in
the report), 1 nothing could be done. Every restore stores a report in the
repository (``coffer report``); ``--json`` prints it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from cli.app import App
from cli.flows.restorepaths import combine, path_plan
from cli.flows.restoring import filter_options, publish
from cli.ui.output import human_size, shown
from cli.ui.progress import Progress
from sources.localdir import CONFLICT_POLICIES, OWNER_POLICIES, restore_to_dir
from sources.m365.restore import ItemQuery
from store import ExitCode, Layout, Repository, Snapshot, owner_component, select_snapshots

NOTHING = "nothing matched the selection"


@click.command("restore")
@click.argument("snapshot")
@click.option(
    "--to",
    "to",
    metavar="TARGET",
    help="Into Microsoft 365: 'original', 'user:<upn>[/<folder>]' or 'site:<site>[/<path>]'.",
)
@click.option(
    "--to-dir",
    "to_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Into this local directory (created if missing).",
)
@filter_options
@click.option(
    "--path",
    "subpaths",
    multiple=True,
    metavar="PATH",
    help="Restore only this folder or item of the snapshot (repeatable: one restore of them all).",
)
@click.option(
    "--on-conflict",
    type=click.Choice(CONFLICT_POLICIES),
    default="skip",
    show_default=True,
    help="When another version of an item is in the target.",
)
@click.option(
    "--restore-owner",
    type=click.Choice(OWNER_POLICIES),
    default="numeric",
    show_default=True,
    help="--to-dir as root: give files back their recorded owner by uid/gid, by user/group "
    "name, or not at all. Set-ID bits survive only where the owner was restored.",
)
@click.option(
    "--dry-run", is_flag=True, help="Only say what would be created, replaced or skipped."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--broker",
    metavar="URL",
    help="--to: spread the restore over workers, one job per owner (else COFFER_BROKER, "
    "else [cluster] broker). See docs/scale-out.md.",
)
@click.pass_obj
def command(
    app: App,
    snapshot: str,
    to: str | None,
    to_dir: Path | None,
    owners: tuple[str, ...],
    query: ItemQuery,
    subpaths: tuple[str, ...],
    on_conflict: str,
    restore_owner: str,
    dry_run: bool,
    as_json: bool,
    broker: str | None,
) -> int:
    """Restore items of SNAPSHOT (an ID, or 'latest' for the newest of every owner)."""
    if (to is None) == (to_dir is None):
        raise click.UsageError("give one target: --to TARGET or --to-dir DIR")
    repo = app.open_repo()
    chosen = select_snapshots(repo.list_snapshots(), snapshot, list(owners) or None)
    paths = tuple(dict.fromkeys(p.strip("/") for p in subpaths if p.strip("/")))
    if to_dir is not None:
        if dry_run:
            raise click.UsageError("--dry-run is for restores into Microsoft 365 (--to)")
        if broker:
            raise click.UsageError("--broker is for restores into Microsoft 365 (--to)")
        return _to_dir(
            app, repo, chosen, snapshot, to_dir, query, paths, on_conflict, restore_owner, as_json
        )
    if paths:
        query = replace(query, paths=paths)
    from cli.flows.m365restore import restore_to_m365

    assert to is not None
    return restore_to_m365(
        app, repo, chosen, snapshot, to, query, on_conflict, dry_run, as_json, NOTHING, broker
    )


def _to_dir(
    app: App,
    repo: Repository,
    chosen: list[Snapshot],
    selector: str,
    to_dir: Path,
    query: ItemQuery,
    paths: tuple[str, ...],
    on_conflict: str,
    restore_owner: str,
    as_json: bool,
) -> int:
    from cli.malloc import keep_freed_memory
    from sources.m365.restore.localdir import selector as m365_selector

    keep_freed_memory()

    several = len(chosen) > 1
    # Owner folders are named as the mount names them (owners/<kind>/<name>),
    # so a restore and a mount of the same snapshots can be compared directly,
    # and two owners sharing a name never merge.
    owner_names = Layout.build(repo.list_snapshots()).owner_names if several else {}
    narrow = bool(query.narrows_items or query.services)
    owners_report: list[dict[str, Any]] = []
    with Progress("restore", enabled=not (app.quiet or as_json)) as progress:
        for snap in chosen:
            m365 = snap.source.get("type") == "m365"
            if narrow and not m365:
                continue  # Microsoft 365 filters leave folder snapshots out
            # One snapshot goes straight into the target; several go under
            # <kind>/<name>/ so owners never mix.
            owner_dir = owner_names.get(snap.owner.identity) or owner_component(
                snap.owner.name or snap.owner.key
            )
            target = to_dir / snap.owner.kind / owner_dir if several else to_dir
            reader = repo.reader(snap)
            base, chosen_paths = path_plan(reader, paths)
            m365_select = m365_selector(reader, query, base) if m365 and narrow else None
            result = restore_to_dir(
                reader,
                target,
                path=base,
                includes=list(query.includes),
                on_conflict=on_conflict,
                progress=progress.item,
                select=combine(chosen_paths, m365_select),
                owners=restore_owner,
            )
            owners_report.append(
                {
                    "owner": snap.owner.name,
                    "kind": snap.owner.kind,
                    "snapshot": snap.id_hex,
                    "target": str(target),
                    **result.to_map(),
                }
            )
    failed = sum(int(r["failed"]) for r in owners_report)
    written = sum(r["created"] + r["replaced"] + r["kept_both"] for r in owners_report)
    nothing = (
        written == 0
        and failed == 0
        and not any(r["unchanged"] or r["skipped"] for r in owners_report)
    )
    report: dict[str, Any] = {
        "format": "coffer-restore-report",
        "version": 1,
        "kind": "restore",
        "source": "snapshot-tree",
        "selector": selector,
        "target": {"kind": "dir", "dir": str(to_dir)},
        "filters": query.describe(),
        "paths": list(paths),
        "on_conflict": on_conflict,
        "restore_owner": restore_owner,
        "status": "nothing" if nothing else ("partial" if failed else "ok"),
        "exit_code": ExitCode.PARTIAL if failed else ExitCode.OK,
        "owners": owners_report,
        "failed": failed,
    }
    lines = [
        f"{shown(r['owner'])}: {r['created']} created, {r['replaced']} replaced, "
        f"{r['kept_both']} kept both, {r['skipped']} skipped, "
        f"{r['unchanged']} already there, "
        f"{r['failed']} failed, {human_size(r['bytes_written'])} written to "
        f"{shown(r['target'], path=True)}"
        for r in owners_report
        # Owners the filter left empty are in the report, not on the screen.
        if r["created"] + r["replaced"] + r["kept_both"] + r["skipped"] + r["unchanged"]
        or r["failed"]
    ]
    for r in owners_report:
        lines.extend(
            f"  failed {shown(f['path'], path=True)}: {f['reason']}" for f in r["failures"]
        )
    if nothing:
        lines = [NOTHING]
    publish(repo, report, lines, as_json)
    return int(report["exit_code"])
