"""``coffer find``: search every snapshot for items, and say where each version lives.

    coffer find --subject invoice --owner 'ann@*' --since 2026-01-01
    coffer find --name 'Budget*.xlsx' --json

Uses the filters of ``coffer restore`` (cli/flows/restoring.py). Each version of
each matching item is listed once, with the snapshots holding it (first and
last), its path, where the mount shows it, and the command that restores it;
so an administrator picks the point in time (a deleted item is in the
snapshots before its deletion). ``--json`` prints a list of versions.
"""

from __future__ import annotations

import shlex

import click

from cli.app import App
from cli.flows.restoring import filter_options
from cli.ui.output import echo, human_size, note, print_json, shown
from sources.m365.restore import ItemQuery, find_versions
from store import ExitCode, Layout, is_hidden, owner_matches


def _pastable(command_line: str) -> str:
    """The command as it is, to paste into a shell; escaped (so no longer exact:
    ``--json`` has the exact path) only when a name holds hidden characters."""
    if any(is_hidden(char) for char in command_line):
        return shown(command_line)
    return command_line


@click.command("find")
@filter_options
@click.option(
    "--snapshot", "snapshot_ids", multiple=True, metavar="ID", help="Only these snapshots."
)
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Show at most N versions.")
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON.")
@click.pass_obj
def command(
    app: App,
    owners: tuple[str, ...],
    query: ItemQuery,
    snapshot_ids: tuple[str, ...],
    limit: int | None,
    as_json: bool,
) -> int:
    """Find items across all snapshots by owner, service, folder, subject, sender or date."""
    repo = app.open_repo()
    every = repo.list_snapshots()
    pool = [s for s in every if not owners or owner_matches(s, list(owners))]
    if snapshot_ids:
        pool = [s for s in pool if any(s.id_hex.startswith(p.lower()) for p in snapshot_ids)]
    versions = find_versions(repo, pool, query)
    chosen = versions[:limit] if limit else versions
    layout = Layout.build(every)
    if as_json:
        print_json([v.to_map(layout) for v in chosen])
        return ExitCode.OK
    if not versions:
        note("nothing matched the selection")
        return ExitCode.OK
    for version in chosen:
        data = version.to_map(layout)
        item = version.item
        when = f" {data['when'][:16].replace('T', ' ')}" if data["when"] else ""
        echo(
            f"{version.owner_kind}/{shown(version.owner_name)}  {item.service}  "
            f"{shown(item.folder, path=True) if item.folder else '-'}  "
            f'"{shown(item.title)}"{when}  {human_size(item.entry.size)}'
        )
        first, last = data["snapshots"][0], data["snapshots"][-1]
        held = (
            f"in snapshot {last['id'][:8]} ({last['time']})"
            if len(data["snapshots"]) == 1
            else f"in {len(data['snapshots'])} snapshots, {first['id'][:8]} ({first['time']}) "
            f"to {last['id'][:8]} ({last['time']})"
        )
        echo(f"    {held}")
        echo(f"    path   {shown(data['path'], path=True)}")
        if data.get("mount_path"):
            echo(f"    mount  {shown(data['mount_path'], path=True)}")
        if version.item.kind == "failed":
            # The record of an item Microsoft 365 would not hand out: nothing to restore.
            attrs = version.item.attrs
            echo(f"    unreadable: {attrs.get('code')} (item {attrs.get('id')})")
            continue
        command_line = shlex.join(
            [
                "coffer",
                "restore",
                last["id"][:12],
                "--owner",
                version.owner_key,
                "--path",
                data["path"],
                "--to",
                "original",
            ]
        )
        echo(f"    restore: {_pastable(command_line)}")
    if limit and len(versions) > limit:
        note(f"... {len(versions) - limit} more (raise --limit, or narrow the search)")
    items = len({(v.owner_key, v.item.entry.item_id or v.item.path) for v in versions})
    note(f"{len(versions)} version(s) of {items} item(s)")
    return ExitCode.OK
