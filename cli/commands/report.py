"""``coffer report``: list the reports stored in the repository, or show one."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from cli.app import App
from cli.cluster import cluster_settings
from cli.cluster.runreport import assemble, find_manifest
from cli.cluster.settings import JobsLost, RunLost
from cli.errors import CliError
from cli.flows.m365 import summary_lines
from cli.ui.output import echo, print_json, shown
from store import REPORTS, ExitCode, Repository, StoreError, format_time

KINDS = ("backup", "restore", "check", "forget", "prune", "repair", "key")


def _summary(kind: str, report: dict[str, Any]) -> str:
    if kind == "backup":
        owners = report.get("owners") or []
        partial = " partial" if report.get("partial") else ""
        return f"run {str(report.get('run', ''))[:8]}: {len(owners)} owner(s){partial}"
    if kind == "check":
        mode = "read-data" if report.get("read_data") else "structure"
        if report.get("subset"):
            mode += f" {report['subset']}"
        state = f"DAMAGED, {report.get('errors')} error(s)" if report.get("damaged") else "ok"
        return f"{mode}: {state}"
    if kind == "forget":
        return f"removed {len(report.get('snapshots') or [])} snapshot(s)"
    if kind == "prune":
        return (
            f"deleted {len(report.get('deleted') or [])} object(s), "
            f"marked {len(report.get('marked') or [])} pack(s)"
        )
    if kind in ("repair", "key"):
        return str(report.get("action", ""))
    if kind == "restore" and isinstance(report.get("totals"), dict):
        t = report["totals"]
        target = report.get("target") or {}
        where = target.get("to") or target.get("dir") or "?"
        dry = " (dry run)" if report.get("dry_run") else ""
        return (
            f"to {where}{dry}: {t.get('created', 0)} created, {t.get('replaced', 0)} replaced, "
            f"{t.get('skipped', 0)} skipped, {t.get('failed', 0)} failed, "
            f"exit {report.get('exit_code')}"
        )
    if kind == "restore" and "owners" in report:
        target = report.get("target") or {}
        return (
            f"to {target.get('dir', '?')}: {report.get('failed', 0)} failed, "
            f"exit {report.get('exit_code')}"
        )
    return ", ".join(
        f"{k}={v}" for k, v in list(report.items())[:3] if not isinstance(v, list | dict)
    )


def _all_keys(repo: Repository, kind: str | None) -> list[str]:
    kinds = [kind] if kind else [*KINDS]
    if not kind:
        extra = {info.key.split("/")[1] for info in repo.backend.list(REPORTS)}
        kinds += sorted(extra - set(KINDS))
    keys = [key for k in kinds for key in repo.list_reports(k)]
    return sorted(keys, key=lambda k: k.rpartition("/")[2])


def _find(repo: Repository, keys: list[str], wanted: str) -> str:
    if wanted in keys:
        return wanted
    matches = [k for k in keys if wanted in k.rpartition("/")[2] or k.endswith(wanted)]
    if not matches:
        for key in keys:
            if not key.startswith("reports/backup/"):
                continue
            try:
                if str(repo.load_report(key).get("run", "")).startswith(wanted.lower()):
                    matches.append(key)
            except (StoreError, ValueError):
                continue
    if not matches:
        raise CliError(f"no report matches {wanted!r}")
    if len(matches) > 1:
        raise CliError(f"{wanted!r} matches {len(matches)} reports; give more of the name")
    return matches[0]


class RunNotFinished(CliError):
    """A detached scale-out run whose owners are not all finished."""

    exit_code = ExitCode.PARTIAL


def _scale_out_run(app: App, repo: Repository, run: str) -> str:
    """The report of a detached scale-out run (cli/cluster/runreport.py), put
    together and stored now if every owner has finished. Raises CliError if
    ``run`` names no such run, RunNotFinished (exit 3) while owners are left,
    RunLost (exit 19) when owners are left and the configured broker holds no
    state of the run, JobsLost (exit 19) when it holds the run but some owners'
    jobs are nowhere (nothing will finish those: ``coffer backup --resume``)."""
    manifest = find_manifest(repo, run)
    if manifest is None:
        raise CliError(f"no report matches {run!r}")
    outcomes: dict[str, dict[str, Any]] = {}
    cluster = cluster_settings(app.config)
    if cluster is not None:
        # Redis only when a broker is configured (it knows failures that never
        # reached the repository, such as a worker without the password).
        from cli.cluster.coordinator import outcomes_of

        outcomes = outcomes_of(cluster, str(manifest["run"]))
    now = time.time()
    report, pending = assemble(
        repo,
        manifest,
        outcomes,
        finished=format_time(time.time_ns()),
        seconds=now - float(manifest.get("started_epoch", now)),
    )
    total = len(manifest["owners"])
    if pending and cluster is not None:
        from cli.cluster.coordinator import lost_by_broker

        if lost_by_broker(cluster, str(manifest["run"])):
            raise RunLost(
                f"run {manifest['run']}: the broker holds no state of this run (lost: "
                "restarted without persistence, flushed, evicted, expired); "
                f"{total - len(pending)} of {total} owners finished; "
                f"`coffer backup --resume {manifest['run']}` enqueues the other "
                f"{len(pending)} again"
            )
        from cli.cluster.coordinator import lost_jobs_of

        lost = lost_jobs_of(cluster, str(manifest["run"]), pending)
        if lost:
            raise JobsLost(
                f"run {manifest['run']}: the jobs of {len(lost)} owner(s) are lost (neither "
                "done, in a worker's hands nor queued: the broker's queue was lost, or "
                f"Celery dropped them); {total - len(pending)} of {total} owners finished; "
                f"`coffer backup --resume {manifest['run']}` enqueues those {len(lost)} again"
            )
    if pending:
        raise RunNotFinished(
            f"run {manifest['run']}: {total - len(pending)} of {total} owners finished; "
            "not finished yet"
        )
    report["summary"] = "\n".join(summary_lines(report))
    return repo.save_report("backup", report)


@click.command("report")
@click.argument("run", required=False)
@click.option("--kind", type=click.Choice(KINDS), help="Only reports of this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def command(app: App, run: str | None, kind: str | None, as_json: bool) -> None:
    """List stored reports (backup, restore, check, forget, prune, repair, key), or show
    the one named by RUN: a report name (or part of it) or a backup run ID."""
    repo = app.open_repo()
    keys = _all_keys(repo, kind)
    if run is not None:
        try:
            key = _find(repo, keys, run)
        except CliError:
            key = _scale_out_run(app, repo, run)  # a detached run, finished since?
        report = repo.load_report(key)
        if as_json:
            print_json({"key": key, "report": report})
        else:
            echo(shown(key, path=True))
            # The readable summary the command printed, then everything.
            summary = report.get("summary")
            if isinstance(summary, str) and summary:
                echo(summary)
                echo("")
            echo(json.dumps(report, indent=2, sort_keys=True))
        return
    rows = []
    for key in keys:
        _prefix, report_kind, name = key.split("/", 2)
        try:
            summary = _summary(report_kind, repo.load_report(key))
        except (StoreError, ValueError) as exc:
            summary = f"UNREADABLE: {exc}"
        rows.append({"key": key, "kind": report_kind, "name": name, "summary": summary})
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo("no reports")
        return
    for row in rows:
        echo(f"{shown(row['kind']):<8}{shown(row['name']):<42}{row['summary']}")
    echo(f"{len(rows)} report(s)")
