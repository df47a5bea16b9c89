"""``coffer copy``: copy snapshots to another repository (docs/copy.md)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from cli.app import App
from cli.errors import CliError
from cli.flows.copying import run_copy
from cli.settings.targets import PasswordSource, RepoTarget
from cli.ui.output import human_duration, human_size, note, print_json
from store import ExitCode, Repository, Snapshot, StoreError, owner_matches, select_snapshots

T = TypeVar("T")


def _side(what: str, target: RepoTarget, open_it: Callable[[], T]) -> T:
    """Run ``open_it``; name the side in its error, keeping the error's exit code."""
    try:
        return open_it()
    except (StoreError, CliError) as exc:
        try:
            error = type(exc)(f"{what} {target.label}: {exc}")
        except TypeError:  # an error class with another signature: keep it as it is
            raise exc from None
        error.exit_code = exc.exit_code
        raise error from None


def _choose(
    repo: Repository, selectors: tuple[str, ...], owners: tuple[str, ...], partial: bool
) -> list[Snapshot]:
    snapshots = repo.list_snapshots()
    patterns = list(owners) or None
    if not selectors:
        return [
            s
            for s in snapshots
            if (partial or not s.partial) and (patterns is None or owner_matches(s, patterns))
        ]
    chosen: dict[bytes, Snapshot] = {}
    for selector in selectors:
        for snapshot in select_snapshots(snapshots, selector, patterns):
            assert snapshot.snapshot_id is not None
            chosen[snapshot.snapshot_id] = snapshot
    return list(chosen.values())


@click.command("copy")
@click.argument("selectors", nargs=-1, metavar="[SNAPSHOT]...")
@click.option(
    "--from",
    "source_option",
    metavar="REPO",
    help="Copy from this repository: a path, a URL or a destination's name "
    "(else COFFER_FROM_REPO).",
)
@click.option(
    "--to",
    "target_option",
    metavar="REPO",
    help="Copy to this repository (default: the one -r, COFFER_REPO or the configuration names).",
)
@click.option(
    "--from-password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the source's password (else COFFER_FROM_PASSWORD_FILE, "
    "else COFFER_FROM_PASSWORD).",
)
@click.option("--owner", "owners", multiple=True, metavar="GLOB", help="Only these owners.")
@click.option("--partial", is_flag=True, help="Also copy checkpoints of unfinished runs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def command(
    app: App,
    selectors: tuple[str, ...],
    source_option: str | None,
    target_option: str | None,
    from_password_file: Path | None,
    owners: tuple[str, ...],
    partial: bool,
    as_json: bool,
) -> int:
    """Copy snapshots from one repository to another.

    SNAPSHOT is an ID (or a unique prefix) or 'latest' (the newest of each
    owner); without any, every snapshot the destination does not have yet.
    The destination keeps its own keys: data is re-encrypted for it, and only
    what it lacks is transferred. Running it again copies nothing; an
    interrupted copy is resumed by running it again.
    """
    source_value = source_option or os.environ.get("COFFER_FROM_REPO")
    if not source_value:
        raise click.UsageError(
            "give the repository to copy from: --from REPO (or COFFER_FROM_REPO)"
        )
    source_target = app.target(source_value)
    dest_target = app.target(target_option)
    source = _side(
        "source",
        source_target,
        lambda: app.open_target(
            source_target, PasswordSource.copy_source(from_password_file, source_target)
        ),
    )
    dest = _side("destination", dest_target, lambda: app.open_target(dest_target))
    if source.repo_id == dest.repo_id:
        raise click.UsageError("the source and the destination are the same repository")
    snapshots = _choose(source, selectors, owners, partial)
    summary = _side(
        "copy to",
        dest_target,
        lambda: run_copy(source, dest, snapshots, progress=not (app.quiet or as_json)),
    )
    if as_json:
        print_json(summary)
    else:
        for entry in summary["copied"]:
            note(
                f"copied {entry['owner_kind']}/{entry['owner']} {entry['time']}: "
                f"{entry['source_snapshot'][:8]} -> {entry['snapshot'][:8]}"
            )
        for entry in summary["failed"]:
            note(
                f"failed {entry['owner_kind']}/{entry['owner']} {entry['time']} "
                f"({entry['source_snapshot'][:8]}): {entry['error']}"
            )
        stats = summary["stats"]
        note(
            f"{len(summary['copied'])} snapshots copied, {len(summary['already_present'])} "
            f"already there, {len(summary['failed'])} failed; read "
            f"{human_size(stats['bytes_read'])} from the source, added "
            f"{human_size(stats['bytes_added'])} to the destination "
            f"in {human_duration(summary['seconds'])}"
        )
    return ExitCode.PARTIAL if summary["failed"] else ExitCode.OK
