"""``coffer tenant check``: can the configured Microsoft 365 backup work? (read-only)

Signs in with the ``[tenant]`` configuration, makes one small request per configured
service and selected owner, and says which application permission, consent or licence
is missing (sources/m365/backup/preflight.py). No repository is needed and nothing is written.

Exit codes: 0 every configured service can be backed up for the owners that have it
(a user without a mailbox or OneDrive is "not applicable", not a failure); 3 a
permission, consent, protected-API approval or licence the configuration needs is
missing, or a service could not be checked (each named); 1 sign-in failed; 16 the
configuration is unusable.
"""

from __future__ import annotations

import click

from cli.app import App
from cli.errors import CliError, ConfigError
from cli.ui.output import echo, print_json, shown
from sources.m365.services import SERVICES
from store import ExitCode

_SHOWN_USERS = 10


@click.group("tenant")
def command() -> None:
    """Microsoft 365 tenant commands."""


@command.command("check")
@click.option(
    "--user",
    "users",
    multiple=True,
    metavar="UPN",
    help="Only these users (UPN or glob, repeatable); sites and teams are then not checked.",
)
@click.option(
    "--service",
    "services",
    multiple=True,
    type=click.Choice(SERVICES),
    help="Only these services (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def check(app: App, users: tuple[str, ...], services: tuple[str, ...], as_json: bool) -> int:
    """Check sign-in, permissions, consent and licences for the configured tenant."""
    from cli.flows.m365 import quiet_http_logs
    from sources.m365 import M365ConfigError, check_tenant, from_table

    table = app.config.section("tenant")
    if not table:
        raise CliError("no [tenant] in the configuration (see README, 'Backing up Microsoft 365')")
    try:
        settings = from_table(table, app.config.base_dir)
    except M365ConfigError as exc:
        raise ConfigError(f"{app.config.path}: {exc}") from None  # name the file
    quiet_http_logs()
    result = check_tenant(settings, only_users=users, only_services=services, prompt=echo)
    if as_json:
        print_json(result.as_json())
    else:
        _print(result.as_json())
    return ExitCode.OK if result.ok else ExitCode.PARTIAL


def _print(report: dict[str, object]) -> None:
    granted = report["granted_permissions"]
    assert isinstance(granted, list)
    echo(f"signed in ({report['auth']}); permissions in the token: {', '.join(granted) or '-'}")
    entries = {"directory": report["directory"]}
    services = report["services"]
    assert isinstance(services, dict)
    entries.update(services)
    for name, entry in entries.items():
        assert isinstance(entry, dict)
        status = str(entry["status"])
        if status == "not_configured":
            continue
        mark = "ok" if entry["ok"] else "PROBLEM"
        detail = f": {entry['message']}" if entry["message"] else ""
        echo(f"{name:<10} {mark:<8} {status}{shown(str(detail))}")
        missing = entry["not_applicable"]
        assert isinstance(missing, list)
        if missing:
            names = ", ".join(shown(str(u)) for u in missing[:_SHOWN_USERS])
            more = f" and {len(missing) - _SHOWN_USERS} more" if len(missing) > _SHOWN_USERS else ""
            what = "OneDrive" if name == "onedrive" else "mailbox"
            echo(f"{'':<10} not applicable (no {what}): {names}{more}")
    throttling = report["throttling"]
    assert isinstance(throttling, dict)
    echo(
        f"{report['users_selected']} user(s) selected; {throttling['requests']} request(s), "
        f"{throttling['throttled_answers']} throttled answer(s), "
        f"{throttling['throttled_seconds']} s waited"
    )
    echo("ready to back up" if report["ok"] else "not ready: fix the problems above")
