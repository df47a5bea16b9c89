"""``coffer serve``: the web console, and ``coffer serve user ...`` to manage its users.

    coffer serve [--listen HOST:PORT]
    coffer serve user add NAME --role viewer|restorer|admin --password-file FILE
    coffer serve user list | remove NAME | passwd NAME --password-file FILE [--role R]

Settings are the ``[serve]`` table of coffer.toml (cli/serve/config.py). The
console serves the configuration's repository and every ``[[destination]]``.
Passwords of console users are read from files only (never the command line).
The ``[[schedule]]`` tables run inside the server as background services
(cli/schedules/, docs/operations.md).
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import click

import cli.serve
from cli.app import App
from cli.commands.restore import command as restore_command
from cli.errors import CliError
from cli.schedules.service import build_scheduler
from cli.schedules.summary import owners_of_overview
from cli.serve import ROLES, UserFile, read_password_file, serve_settings
from cli.ui.output import note, print_json

log = logging.getLogger(__name__)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.group("serve", invoke_without_command=True)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Address to listen on (default from [serve], else 127.0.0.1:8765).",
)
@click.pass_context
def command(ctx: click.Context, listen: str | None) -> None:
    """Run the web console (watch backups, browse, preview, download, restore)."""
    if ctx.invoked_subcommand is not None:
        return
    app: App = ctx.obj
    settings = serve_settings(app.config, listen)
    if not UserFile(settings.users_file).load():
        raise CliError(
            f"no console users in {settings.users_file}: add one with "
            "'coffer serve user add NAME --role admin --password-file FILE'"
        )
    if not settings.tls and not _loopback(settings.host):
        log.warning(
            "listening on %s without TLS: passwords and sessions cross the network in clear",
            settings.host,
        )
    primary = app.target()
    destinations = app.destinations()
    name = next((d.name for d in destinations if d.target.url == primary.url), "main")
    repos = [cli.serve.ServedRepo(name, app.open_repo())]
    repos.extend(
        cli.serve.ServedRepo(d.name, app.open_target(d.target))
        for d in destinations
        if d.target.url != primary.url
    )
    services = cli.serve.Services()
    scheduler = build_scheduler(app)
    if scheduler is not None:
        # Each notification's delivery is stored in the repository, shown by the console.
        served = repos[0]
        scheduler.notifier.recorder = lambda d: served.notifications.record(d.to_record())
        # The daily summary lists the owners of the snapshots and of the run reports.
        scheduler.owners = lambda: owners_of_overview(served.overview(fresh=True))
        # The notifier first: started before and stopped after the scheduler that feeds it.
        services.register(scheduler.notifier)
        services.register(scheduler)
        note(f"{len(scheduler.jobs)} scheduled job(s) (coffer schedule list)")
    note(f"coffer console on {settings.url} (stop with Ctrl-C or SIGTERM)")
    cli.serve.serve(cli.serve.Console(settings, repos, app, restore_command), services)


@command.group("user")
def user_group() -> None:
    """Manage the console's users (the users file of [serve])."""


def _users(app: App) -> UserFile:
    return UserFile(serve_settings(app.config).users_file)


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="File holding the user's password (at least 8 characters).",
)
@click.pass_obj
def add(app: App, name: str, role: str, password_file: Path) -> None:
    """Add a user."""
    users = _users(app)
    users.add(name, role, read_password_file(password_file))
    note(f"added {role} {name} to {users.path}")


@user_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_users(app: App, as_json: bool) -> None:
    """List the users and their roles."""
    users = sorted(_users(app).load().values(), key=lambda u: u.name)
    if as_json:
        print_json([{"name": u.name, "role": u.role} for u in users])
        return
    for user in users:
        click.echo(f"{user.name}\t{user.role}")


@user_group.command("remove")
@click.argument("name")
@click.pass_obj
def remove(app: App, name: str) -> None:
    """Remove a user (their sessions end at their next request)."""
    _users(app).remove(name)
    note(f"removed {name}")


@user_group.command("passwd")
@click.argument("name")
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="File holding the new password.",
)
@click.option("--role", type=click.Choice(ROLES), help="Also change the role.")
@click.pass_obj
def passwd(app: App, name: str, password_file: Path, role: str | None) -> None:
    """Set a user's password (and optionally role)."""
    _users(app).passwd(name, read_password_file(password_file), role)
    note(f"changed {name}")
