"""``coffer mount``: browse every snapshot as a read-only filesystem."""

from __future__ import annotations

from pathlib import Path

import click

from cli.app import App
from cli.errors import CliError
from cli.ui.output import note
from mount import DEFAULT_REFRESH_SECONDS, MountError, mount_repository


class MountFailed(CliError):
    """The filesystem could not be mounted (exit code 17)."""

    exit_code = MountError.exit_code


@click.command("mount")
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("--background", is_flag=True, help="Run as a daemon once mounted.")
@click.option(
    "--allow-other", is_flag=True, help="Let other users in (their permissions still apply)."
)
@click.option(
    "--refresh",
    "refresh_seconds",
    type=click.FloatRange(min=0),
    default=DEFAULT_REFRESH_SECONDS,
    show_default=True,
    metavar="SECONDS",
    help="Look for new snapshots at most this often.",
)
@click.pass_obj
def command(
    app: App, mountpoint: Path, background: bool, allow_other: bool, refresh_seconds: float
) -> None:
    """Mount the repository read-only at MOUNTPOINT (an empty directory).

    snapshots/<time>/<kind>/<owner>/ holds every run, owners/<kind>/<owner>/<time>/
    each owner's history, ids/<id>/ every snapshot; 'latest' links point to the
    newest. Unmount with Ctrl-C, or 'fusermount3 -u MOUNTPOINT'.
    """
    repo = app.open_repo()

    def ready() -> None:
        if background:
            note(f"mounted at {mountpoint}; unmount with 'fusermount3 -u {mountpoint}'")
        else:
            note(f"mounted at {mountpoint}; press Ctrl-C to unmount")

    try:
        mount_repository(
            repo,
            mountpoint,
            foreground=not background,
            allow_other=allow_other,
            refresh_seconds=refresh_seconds,
            ready_callback=None if app.quiet else ready,
        )
    except MountError as exc:
        raise MountFailed(str(exc)) from None
