"""``coffer backup``: back up the Microsoft 365 tenant of the configuration, or local folders.

Without ``--path``, the tenant configured in ``[tenant]`` is backed up (one
snapshot per user, site and team); with ``--path``, local folders.
Every run stores a report in the repository (``coffer report``); ``--json``
prints it. Exit codes: 0 done, 3 partial (items skipped, an owner or service
failed), 1 nothing could be backed up, 16 nothing configured to back up.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from cli.app import App
from cli.cluster import ClusterSettings, cluster_settings
from cli.cluster.runreport import find_manifest
from cli.errors import CliError, ConfigError
from cli.flows.afterbackup import after_backup_summary, forget_after_backup
from cli.flows.fanout import send_to_destinations
from cli.ui.output import echo, human_duration, human_size, note, print_json, shown
from cli.ui.progress import Progress
from sources.folder import FolderBackupResult, backup_folder
from sources.folder.statahead import StatAhead
from sources.m365.services import SERVICES
from store import BackupRun, ExitCode, Owner, Repository


def _folder_report(result: FolderBackupResult, seconds: float) -> dict[str, Any]:
    snap = result.snapshot
    return {
        "owner": snap.owner.name,
        "owner_kind": snap.owner.kind,
        "snapshot": snap.id_hex,
        "stats": snap.stats,
        "seconds": round(seconds, 3),
        "skipped": [{"path": s.path, "reason": s.reason} for s in result.skipped],
        "changed_during_read": result.changed_during_read,
    }


@click.command("backup")
@click.option(
    "--path",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Back up this local folder (repeatable).",
)
@click.option(
    "--wait",
    type=float,
    default=0.0,
    metavar="SECONDS",
    help="Wait this long for a running backup of the same owner.",
)
@click.option(
    "--checkpoint-interval",
    type=float,
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="Commit partial progress this often.",
)
@click.option(
    "--user",
    "users",
    multiple=True,
    metavar="UPN",
    help="Microsoft 365: only these users (UPN or glob, repeatable).",
)
@click.option(
    "--service",
    "services",
    multiple=True,
    type=click.Choice(SERVICES),
    help="Microsoft 365: only these services (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@click.option(
    "--workers",
    "processes",
    type=click.IntRange(min=0, max=64),
    default=None,
    metavar="N",
    help="--path: read, chunk, hash and compress in N worker processes "
    "(default: one per core but one; 0: all in this process).",
)
@click.option(
    "--broker",
    metavar="URL",
    help="Microsoft 365: spread the run over workers (redis://HOST:6379/0; else "
    "COFFER_BROKER, else [cluster] broker). See docs/scale-out.md.",
)
@click.option(
    "--detach",
    is_flag=True,
    help="With a broker: enqueue the run, print its ID and return (coffer report RUN).",
)
@click.option(
    "--resume",
    metavar="RUN",
    help="With a broker: enqueue again the owners not finished of a run whose state the "
    "broker lost, or the owners whose jobs it lost (coffer report RUN says so), then "
    "follow it (or --detach).",
)
@click.pass_obj
@send_to_destinations
def command(
    app: App,
    paths: tuple[Path, ...],
    wait: float,
    checkpoint_interval: float,
    users: tuple[str, ...],
    services: tuple[str, ...],
    as_json: bool,
    broker: str | None,
    detach: bool,
    resume: str | None,
    processes: int | None,
) -> int:
    """Back up the configured Microsoft 365 tenant, or local folders given with --path."""
    if not paths and processes is not None:
        # Microsoft 365 content arrives over HTTPS in this process; the
        # workers read local files only.
        raise click.UsageError("--workers applies to folder backups (--path) only")
    if resume is not None:
        if paths or users or services:
            # The run's owners and services are its manifest's; another choice
            # would be another run.
            raise click.UsageError("--resume takes no --path, --user or --service")
        cluster = cluster_settings(app.config, broker)
        if cluster is None:
            raise ConfigError("--resume needs a broker (--broker, COFFER_BROKER or [cluster])")
        return _resume(app, resume, as_json, cluster, detach=detach)
    if not paths:
        cluster = cluster_settings(app.config, broker)
        if detach and cluster is None:
            raise ConfigError("--detach needs a broker (--broker, COFFER_BROKER or [cluster])")
        return _tenant(
            app, wait, checkpoint_interval, users, services, as_json, cluster, detach=detach
        )
    # The stat-ahead helper walks the folders while the repository opens.
    with StatAhead(paths):
        repo = app.open_repo()
        started = time.monotonic()
        reports: list[dict[str, Any]] = []
        results: list[FolderBackupResult] = []
        with (
            Progress("backup", enabled=not (app.quiet or as_json)) as progress,
            BackupRun(repo, checkpoint_seconds=checkpoint_interval) as run,
        ):
            progress.owners_total = len(paths)
            for path in paths:
                owner_started = time.monotonic()
                result = backup_folder(
                    run, path, progress=progress.item, wait=wait, processes=processes
                )
                results.append(result)
                progress.owners_done += 1
                reports.append(_folder_report(result, time.monotonic() - owner_started))
    writer = run.writer.stats
    summary: dict[str, Any] = {
        "format": "coffer-backup-report",
        "version": 1,
        "kind": "backup",
        "source": "folders",
        "run": run.run_id,
        "seconds": round(time.monotonic() - started, 3),
        "owners": reports,
        "bytes_added": writer.bytes_new_stored,
        "blobs_added": writer.blobs_new,
        "partial": any(r["skipped"] for r in reports),
    }
    summary["report"] = repo.save_report("backup", summary)
    code = ExitCode.PARTIAL if summary["partial"] else ExitCode.OK
    _after_backup(app, repo, [r.snapshot.owner for r in results], code, summary, as_json)
    if as_json:
        print_json(summary)
    else:
        for report in reports:
            stats = report["stats"]
            note(
                f"{shown(report['owner'])}: snapshot {report['snapshot'][:8]}: "
                f"{stats['items_new']} new, {stats['items_changed']} changed, "
                f"{stats['items_unchanged']} unchanged, {stats['items_removed']} removed, "
                f"{human_size(stats['bytes_read'])} read"
            )
            for skipped in report["skipped"]:
                note(f"  skipped {shown(skipped['path'], path=True)}: {skipped['reason']}")
        note(
            f"added {human_size(writer.bytes_new_stored)} to the repository "
            f"in {human_duration(summary['seconds'])}"
        )
    return code


def _after_backup(
    app: App,
    repo: Repository,
    owners: list[Owner],
    code: int,
    report: dict[str, Any],
    as_json: bool,
) -> None:
    """``[retention] after-backup = true``: forget by policy, for this run's owners only.

    Runs only after a fully successful run (exit 0): a partial run's new
    snapshots lack the items it skipped, which may survive only in the
    snapshots the policy would remove. Like ``coffer forget`` it deletes
    snapshot objects only; ``coffer prune`` frees the space (docs/retention.md).
    Adds a ``forget`` entry to ``report`` (the printed one; the forget has its
    own report in the repository). Raises ConfigError for a bad table.
    """
    if code != ExitCode.OK:
        return
    outcome = forget_after_backup(repo, app.config, owners)
    if outcome is None:
        return
    report["forget"] = after_backup_summary(outcome)
    if not as_json:
        note(f"after-backup: forgot {len(outcome[0].removed)} snapshot(s) by the retention policy")


def _tenant(
    app: App,
    wait: float,
    checkpoint_interval: float,
    users: tuple[str, ...],
    services: tuple[str, ...],
    as_json: bool,
    cluster: ClusterSettings | None = None,
    *,
    detach: bool = False,
) -> int:
    """Back up the tenant of the configuration's [tenant] table (spread over the
    workers of ``cluster`` when one is configured: cli/cluster)."""
    from cli.flows.m365 import ProgressAdapter, quiet_http_logs
    from sources.m365 import M365ConfigError, TenantBackup, from_table

    table = app.config.section("tenant")
    if not table:
        raise ConfigError(
            "nothing to back up: configure a [tenant] (see README, 'Backing up Microsoft 365') "
            "or give --path DIR"
        )
    try:
        settings = from_table(table, app.config.base_dir)
    except M365ConfigError as exc:
        raise ConfigError(f"{app.config.path}: {exc}") from None  # name the file
    quiet_http_logs()
    if cluster is not None:
        # Celery and Redis are loaded only here: a one-process run never imports them.
        from cli.cluster.coordinator import ClusterBackup

        coordinator = ClusterBackup(cluster)  # BrokerUnreachable (15) before anything else
        repo = app.open_repo()
        manifest = coordinator.enqueue(
            repo,
            settings,
            prompt=note,
            checkpoint_seconds=checkpoint_interval,
            wait=wait,
            only_users=users,
            only_services=services,
        )
        if detach:
            if as_json:
                print_json({"run": manifest["run"], "owners": len(manifest["owners"])})
            else:
                note(f"run {manifest['run']}: {len(manifest['owners'])} owner job(s) enqueued")
                echo(manifest["run"])
            return ExitCode.OK
        with Progress("backup", enabled=not (app.quiet or as_json)) as progress:
            counters = coordinator.follow(manifest["run"], len(manifest["owners"]), progress)
        return _finish(app, repo, coordinator.report(repo, manifest, counters), as_json)
    repo = app.open_repo()
    with Progress("backup", enabled=not (app.quiet or as_json)) as progress:
        backup = TenantBackup(
            repo,
            settings,
            progress=ProgressAdapter(progress),
            prompt=note,
            checkpoint_seconds=checkpoint_interval,
            wait=wait,
            only_users=users,
            only_services=services,
        )
        report = backup.run()
    return _finish(app, repo, report, as_json)


def _resume(app: App, run: str, as_json: bool, cluster: ClusterSettings, *, detach: bool) -> int:
    """``--resume RUN``: enqueue again the owners of a scale-out run whose state
    the broker lost (cli/cluster/coordinator.py ``resume``), then follow the run
    to its report unless ``detach``. A run whose owners all finished: nothing is
    done, exit 0. Raises CliError (no such run), RunNotLost (3: the broker holds
    the run), BrokerUnreachable (15)."""
    from cli.cluster.coordinator import ClusterBackup

    coordinator = ClusterBackup(cluster)  # BrokerUnreachable (15) before anything else
    repo = app.open_repo()
    manifest = find_manifest(repo, run)
    if manifest is None:
        raise CliError(f"no scale-out run matches {run!r}")
    run_id, total = str(manifest["run"]), len(manifest["owners"])
    enqueued = coordinator.resume(repo, manifest)
    if as_json and (detach or not enqueued):
        print_json({"run": run_id, "owners": total, "enqueued": enqueued})
    if not enqueued:
        note(f"run {run_id}: every owner finished; nothing to resume (`coffer report {run_id}`)")
        return ExitCode.OK
    if detach:
        if not as_json:
            note(f"run {run_id}: {enqueued} of {total} owner job(s) enqueued again")
            echo(run_id)
        return ExitCode.OK
    with Progress("backup", enabled=not (app.quiet or as_json)) as progress:
        counters = coordinator.follow(run_id, total, progress)
    return _finish(app, repo, coordinator.report(repo, manifest, counters), as_json)


def _finish(app: App, repo: Repository, report: dict[str, Any], as_json: bool) -> int:
    """Store and show a tenant run's report; apply retention; returns the exit code."""
    from cli.flows.m365 import summary_lines

    report["summary"] = "\n".join(summary_lines(report))
    report["report"] = repo.save_report("backup", report)
    owners = [Owner(o["kind"], o["key"], o["name"]) for o in report["owners"] if o.get("snapshot")]
    _after_backup(app, repo, owners, int(report["exit_code"]), report, as_json)
    if as_json:
        print_json(report)
    else:
        note(report["summary"])
    return int(report["exit_code"])
