"""``coffer ls``: list the items of a snapshot."""

from __future__ import annotations

import stat as stat_module
from collections.abc import Iterator

import click

from cli.app import App
from cli.errors import CliError
from cli.output import print_json
from store import Entry, Snapshot, SnapshotReader, format_time, select_snapshots


def entry_json(path: str, entry: Entry) -> dict[str, object]:
    out: dict[str, object] = {
        "path": path,
        "name": entry.display_name,
        "type": {"f": "file", "d": "dir", "l": "symlink"}[entry.type],
        "mode": f"{entry.mode:o}",
        "mtime": format_time(entry.mtime_ns),
        "mtime_ns": entry.mtime_ns,
    }
    if entry.is_file:
        out["size"] = entry.size
    if entry.is_symlink and entry.target is not None:
        out["target"] = entry.target.decode("utf-8", "surrogateescape")
    if entry.item_id:
        out["item_id"] = entry.item_id
    if entry.attrs:
        out["attrs"] = entry.attrs
    return out


def one_snapshot(app: App, selector: str, owners: tuple[str, ...]) -> Snapshot:
    """Resolve a selector that must name exactly one snapshot."""
    repo = app.open_repo()
    chosen = select_snapshots(repo.list_snapshots(), selector, list(owners) or None)
    if len(chosen) > 1:
        names = ", ".join(s.owner.name for s in chosen)
        raise CliError(
            f"'{selector}' names {len(chosen)} snapshots ({names}); pick one with --owner"
        )
    return chosen[0]


def _items(reader: SnapshotReader, path: str, recursive: bool) -> Iterator[tuple[str, Entry]]:
    base = path.strip("/")
    entry = reader.stat(base)
    if not entry.is_dir:
        yield base, entry
        return
    if recursive:
        yield from reader.walk(base)
    else:
        for child in reader.listdir(base):
            yield (f"{base}/{child.display_name}" if base else child.display_name), child


@click.command("ls")
@click.argument("snapshot")
@click.argument("path", required=False, default="")
@click.option(
    "--owner",
    "owners",
    multiple=True,
    metavar="GLOB",
    help="Pick the owner when SNAPSHOT is 'latest'.",
)
@click.option("-R", "--recursive", is_flag=True, help="List everything below PATH.")
@click.option("-l", "--long", "long_format", is_flag=True, help="Show mode, size and time.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def command(
    app: App,
    snapshot: str,
    path: str,
    owners: tuple[str, ...],
    recursive: bool,
    long_format: bool,
    as_json: bool,
) -> None:
    """List the items of SNAPSHOT (an ID or 'latest') at PATH."""
    chosen = one_snapshot(app, snapshot, owners)
    reader = app.open_repo().reader(chosen)
    items = _items(reader, path, recursive)
    if as_json:
        print_json([entry_json(p, e) for p, e in items])
        return
    for item_path, entry in items:
        shown = item_path + ("/" if entry.is_dir else "")
        if entry.is_symlink and entry.target is not None:
            shown += " -> " + entry.target.decode("utf-8", "surrogateescape")
        if long_format:
            mode = stat_module.filemode(entry.st_mode)
            click.echo(
                f"{mode} {entry.size:>12} {format_time(entry.mtime_ns, precision=0)} {shown}"
            )
        else:
            click.echo(shown)
