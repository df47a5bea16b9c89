"""The commands of ``coffer``, one module each."""

from __future__ import annotations

import click

from cli.commands import backup, init, ls, mount, restore, snapshots


def register(group: click.Group) -> None:
    """Add every command to the top-level group."""
    for module in (init, backup, snapshots, ls, restore, mount):
        group.add_command(module.command)
