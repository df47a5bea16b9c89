"""``coffer ls``: list the items of a snapshot."""

from __future__ import annotations

import os
import stat as stat_module
from collections.abc import Iterator

import click

from cli.app import App
from cli.errors import CliError
from cli.ui.output import echo, print_json, shown
from store import (
    Entry,
    Snapshot,
    SnapshotItem,
    SnapshotReader,
    VirtualFS,
    VirtualLink,
    VNode,
    format_time,
    select_snapshots,
)


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
        names = ", ".join(shown(s.owner.name) for s in chosen)
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


# First components of the repository-wide virtual layout (as the mount shows it).
VIRTUAL_ROOTS = ("snapshots", "owners", "ids")


def _is_virtual(selector: str) -> bool:
    return selector.strip("/") == "" or selector.strip("/").split("/")[0] in VIRTUAL_ROOTS


def _node_json(path: str, node: VNode) -> dict[str, object]:
    if isinstance(node, SnapshotItem):
        item = entry_json(path, node.entry)
        item["snapshot"] = node.snapshot.id_hex
        return item
    out: dict[str, object] = {
        "path": path,
        "name": path.rsplit("/", 1)[-1],
        "type": "symlink" if isinstance(node, VirtualLink) else "dir",
        "mtime": format_time(node.mtime_ns),
        "mtime_ns": node.mtime_ns,
    }
    if isinstance(node, VirtualLink):
        out["target"] = node.target
    return out


def _virtual_items(vfs: VirtualFS, path: str, recursive: bool) -> Iterator[tuple[str, VNode]]:
    base = path.strip("/")
    node = vfs.resolve(base, follow=True)
    if not node.is_dir:
        yield base, node
        return
    for name, child in vfs.children(node):
        child_path = f"{base}/{os.fsdecode(name)}" if base else os.fsdecode(name)
        yield child_path, child
        if recursive and child.is_dir:
            yield from _virtual_items(vfs, child_path, recursive)


def _target(node: Entry | VNode) -> str | None:
    if isinstance(node, SnapshotItem):
        node = node.entry
    if isinstance(node, VirtualLink):
        return node.target
    if isinstance(node, Entry) and node.target is not None:
        return node.target.decode("utf-8", "surrogateescape")
    return None


def _show(items: Iterator[tuple[str, Entry | VNode]], long_format: bool) -> None:
    """One line per item: ``path``, ``dir/``, ``link -> target``; with -l mode, size,
    time. Names are escaped (cli/ui/output.py ``shown``); ``--json`` has them exact."""
    for item_path, node in items:
        line = shown(item_path, path=True) + ("/" if node.is_dir else "")
        target = _target(node)
        if target is not None:
            line += " -> " + shown(target, path=True)
        if long_format:
            mode = stat_module.filemode(node.st_mode)
            mtime = format_time(node.mtime_ns, precision=0)
            echo(f"{mode} {node.size:>12} {mtime} {line}")
        else:
            echo(line)


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
    """List the items of SNAPSHOT (an ID or 'latest') at PATH.

    SNAPSHOT may also be a path of the repository-wide layout the mount shows
    (``/``, ``snapshots/...``, ``owners/<kind>/<name>/latest/...``, ``ids/...``),
    read through the same virtual filesystem as the mount.
    """
    if _is_virtual(snapshot):
        vfs = VirtualFS(app.open_repo())
        full = f"{snapshot.strip('/')}/{path}".strip("/")
        virtual = _virtual_items(vfs, full, recursive)
        if as_json:
            print_json([_node_json(p, n) for p, n in virtual])
        else:
            _show(virtual, long_format)
        return
    chosen = one_snapshot(app, snapshot, owners)
    reader = app.open_repo().reader(chosen)
    items = _items(reader, path, recursive)
    if as_json:
        print_json([entry_json(p, e) for p, e in items])
        return
    _show(items, long_format)
