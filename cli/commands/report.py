"""``coffer report``: list the reports stored in the repository, or show one."""

from __future__ import annotations

import json
from typing import Any

import click

from cli.app import App
from cli.errors import CliError
from cli.ui.output import echo, print_json, shown
from store import Repository, StoreError

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
        extra = {info.key.split("/")[1] for info in repo.backend.list("reports/")}
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
        key = _find(repo, keys, run)
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
