"""The commands of ``coffer``, one module each."""

from __future__ import annotations

import click

from cli.commands import (
    backup,
    check,
    diff,
    forget,
    init,
    key,
    ls,
    prune,
    repair,
    report,
    restore,
    snapshots,
    stats,
)


def register(group: click.Group) -> None:
    """Add every command to the top-level group."""
    for module in (
        init,
        backup,
        snapshots,
        ls,
        restore,
        diff,
        check,
        repair,
        forget,
        prune,
        key,
        stats,
        report,
    ):
        group.add_command(module.command)
