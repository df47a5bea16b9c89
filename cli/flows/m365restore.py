"""``coffer restore --to ...``: the command line's side of a restore into Microsoft 365.

Checks what cannot work before anything is sent (folder snapshots, Teams
asked for explicitly, a service the target cannot hold), signs in with
``[tenant]`` and ``[restore]`` (sources/m365/restore/settings.py), picks the
restore folder (the journal of cli/flows/restoring.py), runs the restore with a
progress display and an ETA, stores the report and prints its summary.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cli.app import App
from cli.cluster import cluster_settings
from cli.errors import CliError, ConfigError
from cli.flows.m365 import ProgressAdapter, quiet_http_logs
from cli.flows.restoring import (
    journal_folder,
    journal_key,
    journal_record,
    publish,
    summary_lines,
)
from cli.ui.output import note
from cli.ui.progress import Progress
from sources.m365 import M365ConfigError, TenantSettings
from sources.m365.restore import (
    SITE,
    ItemQuery,
    RestoreTarget,
    TenantRestore,
    parse_target,
    restore_settings,
)
from store import ExitCode, Repository, Snapshot

GROUPS_REFUSED = (
    "Microsoft 365 group conversations and calendars cannot be restored into Microsoft 365 "
    "(Graph cannot recreate posts with their senders and dates): export them with --to-dir DIR"
)
TEAMS_REFUSED = (
    "Teams channel messages cannot be restored into Microsoft 365 (Graph cannot create them): "
    "export them with --to-dir DIR"
)


class CannotRestore(CliError):
    """The request asks for what cannot be restored there (exit 2, like a usage error:
    nothing was sent, and a script can tell it from a failed restore)."""

    exit_code = ExitCode.USAGE


def check_request(chosen: list[Snapshot], query: ItemQuery, target: RestoreTarget) -> None:
    """Refuse what cannot work, in one line (CannotRestore, exit 2)."""
    kinds = {s.owner.kind for s in chosen}
    if any(s.source.get("type") != "m365" for s in chosen):
        raise CannotRestore(
            "snapshots of local folders can only be restored to a directory: use --to-dir DIR"
        )
    if "teams" in query.services or "post" in query.kinds or kinds == {"teams"}:
        raise CannotRestore(TEAMS_REFUSED)
    if "groups" in query.services or kinds == {"groups"}:
        raise CannotRestore(GROUPS_REFUSED)
    if target.kind == SITE:
        wrong = [s for s in query.services if s in ("mail", "contacts", "calendar")]
        wrong += [k for k in query.kinds if k in ("message", "contact", "event")]
        if wrong:
            raise CannotRestore(
                f"{wrong[0]} cannot be restored to a SharePoint site: use --to user:<upn>"
            )


def restore_to_m365(
    app: App,
    repo: Repository,
    chosen: list[Snapshot],
    selector: str,
    to: str,
    query: ItemQuery,
    on_conflict: str,
    dry_run: bool,
    as_json: bool,
    nothing_message: str,
    broker: str | None = None,
) -> int:
    try:
        target = parse_target(to)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    check_request(chosen, query, target)
    table = app.config.section("tenant")
    if not table:
        raise ConfigError(
            "restoring into Microsoft 365 needs a [tenant] (README, 'Restoring Microsoft 365')"
        )
    try:
        settings = restore_settings(
            table, app.config.section("restore") or None, app.config.base_dir
        )
    except M365ConfigError as exc:
        raise ConfigError(f"{app.config.path}: {exc}") from None  # name the file
    key = journal_key([s.id_hex for s in chosen], target, query)
    if target.alternate and not target.explicit_folder:
        earlier = journal_folder(repo.cache_dir, key)
        if earlier:
            target = replace(target, folder=(earlier,))
    if target.alternate and not dry_run:
        journal_record(repo.cache_dir, key, target.folder[0], finished=False)
    quiet_http_logs()
    cluster = cluster_settings(app.config, broker)
    if cluster is not None:
        # A broker is configured: one job per owner over the workers (cli/cluster).
        from cli.cluster.restores import restore_with_broker

        with Progress("restore", enabled=not (app.quiet or as_json)) as progress:
            report = restore_with_broker(
                cluster,
                repo,
                settings.connection.tenant_id,
                settings.connection.graph_url,
                chosen,
                query,
                target,
                on_conflict=on_conflict,
                dry_run=dry_run,
                selector=selector,
                progress=progress,
            )
    else:
        report = _one_process(
            app, repo, settings, chosen, query, target, on_conflict, dry_run, selector, as_json
        )
    return _finish(app, repo, report, key, target, dry_run, as_json, nothing_message)


def _one_process(
    app: App,
    repo: Repository,
    settings: TenantSettings,
    chosen: list[Snapshot],
    query: ItemQuery,
    target: RestoreTarget,
    on_conflict: str,
    dry_run: bool,
    selector: str,
    as_json: bool,
) -> dict[str, Any]:
    with Progress("restore", enabled=not (app.quiet or as_json)) as progress:
        run = TenantRestore(
            repo,
            settings,
            chosen,
            query,
            target,
            on_conflict=on_conflict,
            dry_run=dry_run,
            selector=selector,
            progress=ProgressAdapter(progress),
            prompt=note,  # a device-code sign-in's instructions
        )
        progress.eta_source = run.eta.seconds_left
        return run.run()


def _finish(
    app: App,
    repo: Repository,
    report: dict[str, Any],
    key: str,
    target: RestoreTarget,
    dry_run: bool,
    as_json: bool,
    nothing_message: str,
) -> int:
    if target.alternate and not dry_run:
        journal_record(repo.cache_dir, key, target.folder[0], finished=True)
    lines = summary_lines(report)
    if report["status"] == "nothing":
        lines = (
            [*report.get("notices", []), nothing_message]
            if report.get("notices")
            else [nothing_message]
        )
    publish(repo, report, lines, as_json)
    code = report["exit_code"]
    return int(code) if isinstance(code, int) else ExitCode.OK
