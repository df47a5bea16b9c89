"""``coffer diff``: what changed between two snapshots."""

from __future__ import annotations

import click

from cli.app import App
from cli.commands.ls import one_snapshot
from cli.ui.output import echo, human_size, note, print_json, shown
from store import Change, diff_trees, pair_moves


def _entry_type(change: Change) -> str | None:
    entry = change.new or change.old
    return entry.type if entry is not None else None


_SIGNS = {"added": "+", "removed": "-", "changed": "M", "metadata": "U", "moved": ">"}


@click.command("diff")
@click.argument("first")
@click.argument("second")
@click.option(
    "--owner", "owners", multiple=True, metavar="GLOB", help="Pick the owner for 'latest'."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of changes.")
@click.pass_obj
def command(app: App, first: str, second: str, owners: tuple[str, ...], as_json: bool) -> None:
    """List items added (+), removed (-), changed (M), with new metadata (U) or moved (>)
    from snapshot FIRST to SECOND. Unchanged folders are skipped without reading them."""
    old = one_snapshot(app, first, owners)
    new = one_snapshot(app, second, owners)
    repo = app.open_repo()
    changes = pair_moves(list(diff_trees(repo.tree_reader, old.tree, new.tree)))
    if as_json:
        print_json(
            [
                {
                    "change": c.kind,
                    "path": c.path,
                    **({"from": c.old_path} if c.old_path else {}),
                    "type": _entry_type(c),
                    "old_size": c.old.size if c.old is not None and c.old.is_file else None,
                    "new_size": c.new.size if c.new is not None and c.new.is_file else None,
                }
                for c in changes
            ]
        )
        return
    counts: dict[str, int] = {}
    delta = 0
    for change in changes:
        counts[change.kind] = counts.get(change.kind, 0) + 1
        entry = change.new or change.old
        suffix = "/" if entry is not None and entry.is_dir else ""
        moved = f" (from {shown(change.old_path, path=True)})" if change.old_path else ""
        echo(f"{_SIGNS[change.kind]}    {shown(change.path, path=True)}{suffix}{moved}")
        old_size = change.old.size if change.old is not None and change.old.is_file else 0
        new_size = change.new.size if change.new is not None and change.new.is_file else 0
        if change.kind in ("added", "removed", "changed"):
            delta += new_size - old_size
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no differences"
    note(f"{old.short_id} -> {new.short_id}: {summary}; size change {human_size(delta)}")
