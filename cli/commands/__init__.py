"""The commands of ``coffer``, one module each, imported only when used.

Importing every command (and through them rich, the Graph client, FUSE...)
would cost every invocation a few hundred milliseconds; the group below
loads a command's module only when that command runs or help is shown.
"""

from __future__ import annotations

import importlib

import click

# command name -> module defining ``command``
COMMANDS: dict[str, str] = {
    "init": "cli.commands.init",
    "backup": "cli.commands.backup",
    "snapshots": "cli.commands.snapshots",
    "ls": "cli.commands.ls",
    "restore": "cli.commands.restore",
    "find": "cli.commands.find",
    "mount": "cli.commands.mount",
    "diff": "cli.commands.diff",
    "check": "cli.commands.check",
    "repair": "cli.commands.repair",
    "forget": "cli.commands.forget",
    "prune": "cli.commands.prune",
    "key": "cli.commands.key",
    "stats": "cli.commands.stats",
    "report": "cli.commands.report",
    "copy": "cli.commands.copy",
    "tenant": "cli.commands.tenant",
    "serve": "cli.commands.serve",
    "schedule": "cli.commands.schedule",
    "worker": "cli.commands.worker",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMANDS.get(cmd_name)
        if module_name is None:
            return super().get_command(ctx, cmd_name)
        command = importlib.import_module(module_name).command
        assert isinstance(command, click.Command)
        return command
