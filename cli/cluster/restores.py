"""``coffer restore --to ...`` with a broker: one restore job per owner, one report.

Each chosen snapshot (one owner) becomes a job (restorejobs.py), largest first
by the items of the snapshot. Teams and group snapshots are left out with the
same notices a one-process restore gives (Graph cannot write them back). When
several owners go to one alternate target, each job's folder gets the owner's
name appended, as a one-process restore does (sources/m365/restore/runner.py,
``_place``), so owners never mix. The command follows the run's counters
like a backup and puts the one restore report together from the owners'
reports in the repository (``reports/restore-owner/RUN/``) and the broker's
outcomes (jobs that failed before they could write one). When Redis loses the
run (coordinator.py), the owners with a report in the repository are done and
the others are enqueued again: restores are idempotent (what is in place is
found and left alone).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cli.cluster.broker import RESTORE_TASK
from cli.cluster.coordinator import ClusterBackup
from cli.cluster.restorejobs import RestoreMessage, restore_owner_kind
from cli.cluster.runstate import RunState
from cli.cluster.settings import ClusterSettings
from cli.ui.progress import Progress
from sources.m365.restore import REPORT_FORMAT, REPORT_VERSION, ItemQuery, RestoreTarget
from sources.m365.restore.report import verdict
from sources.m365.restore.runner import GROUPS_NOTICE, TEAMS_NOTICE
from store import Repository, Snapshot

SUMS = ("created", "replaced", "kept_both", "skipped", "failed", "bytes_uploaded")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _size(snap: Snapshot) -> int:
    stats = snap.stats or {}
    return sum(int(stats.get(k, 0) or 0) for k in ("items_new", "items_changed", "items_unchanged"))


def _owner_target(target: RestoreTarget, snap: Snapshot, several: bool) -> RestoreTarget:
    if not target.alternate or not several:
        return target
    name = snap.owner.name.replace("/", " ").strip() or snap.owner.key
    return replace(target, folder=(*target.folder, name))


def _failed_owner(message: RestoreMessage, outcome: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": message.kind,
        "key": message.key,
        "name": message.name,
        "snapshot": message.snapshot,
        "snapshot_time": "",
        "target": "",
        "status": "failed",
        "error": str(outcome.get("error") or "the job failed"),
        "seconds": 0.0,
        "requests": 0,
        "throttled_seconds": 0.0,
        "services": {},
        "worker": outcome.get("worker"),
    }


def restore_with_broker(
    cluster: ClusterSettings,
    repo: Repository,
    tenant_id: str,
    graph_url: str,
    chosen: list[Snapshot],
    query: ItemQuery,
    target: RestoreTarget,
    *,
    on_conflict: str,
    dry_run: bool,
    selector: str,
    progress: Progress | None,
) -> dict[str, Any]:
    """Enqueue, follow and report (the report is returned, not yet stored).
    Raises BrokerUnreachable (exit 15) before anything is enqueued."""
    follower = ClusterBackup(cluster)  # checks the broker first
    started = time.time()
    notices: list[str] = []
    teams = sum(1 for s in chosen if s.owner.kind == "teams")
    groups = sum(1 for s in chosen if s.owner.kind == "groups")
    if teams:
        notices.append(TEAMS_NOTICE.format(n=teams))
    if groups:
        notices.append(GROUPS_NOTICE.format(n=groups))
    owners = sorted(
        (s for s in chosen if s.owner.kind not in ("teams", "groups")), key=lambda s: -_size(s)
    )
    run_id = os.urandom(16).hex()
    several = len(owners) > 1
    messages = [
        RestoreMessage(
            run_id,
            tenant_id,
            snap.id_hex,
            snap.owner.kind,
            snap.owner.key,
            snap.owner.name,
            _owner_target(target, snap, several),
            query,
            on_conflict,
            dry_run,
        )
        for snap in owners
    ]
    RunState(follower.redis, run_id, cluster.result_seconds).start(len(messages))
    follower.send(RESTORE_TASK, [m.to_map() for m in messages])

    def recover() -> dict[str, dict[str, Any]]:
        done: dict[str, dict[str, Any]] = {}
        for key in repo.list_reports(restore_owner_kind(run_id)):
            for owner in repo.load_report(key).get("owners", []):
                field = f"{owner['kind']}:{owner['key']}"
                done[field] = {"status": owner.get("status"), "worker": owner.get("worker")}
        follower.send(RESTORE_TASK, [m.to_map() for m in messages if m.field not in done])
        return done

    counters = follower.follow(run_id, len(messages), progress, recover)
    stored: dict[str, dict[str, Any]] = {}
    for key in repo.list_reports(restore_owner_kind(run_id)):
        entry = repo.load_report(key)
        for notice in entry.get("notices", []):
            if notice not in notices:
                notices.append(notice)
        for owner in entry.get("owners", []):
            stored[f"{owner['kind']}:{owner['key']}"] = owner
    results: list[dict[str, Any]] = []
    for message in messages:
        owner = stored.get(message.field)
        if owner is not None:
            results.append(owner)
        elif counters["owners"].get(message.field, {}).get("status") == "failed":
            results.append(_failed_owner(message, counters["owners"][message.field]))
    results.sort(key=lambda o: (o["kind"], str(o["name"]).lower()))
    services = [s for o in results for s in o["services"].values()]
    summary: dict[str, Any] = {n: sum(int(s.get(n, 0)) for s in services) for n in SUMS}
    summary["failed"] += sum(1 for o in results if o["status"] == "failed" and not o["services"])
    summary["requests"] = sum(int(o.get("requests", 0)) for o in results)
    summary["throttled_seconds"] = round(
        sum(float(o.get("throttled_seconds", 0)) for o in results), 3
    )
    summary["owners"] = len(results)
    for status in ("ok", "partial", "failed", "skipped"):
        summary[f"owners_{status}"] = sum(1 for o in results if o["status"] == status)
    status, code = verdict(bool(results), summary)
    workers: dict[str, int] = {}
    for owner in results:
        if owner.get("worker"):
            workers[str(owner["worker"])] = workers.get(str(owner["worker"]), 0) + 1
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "kind": "restore",
        "source": "m365",
        "run": run_id,
        "selector": selector,
        "snapshots": [s.id_hex for s in chosen],
        "target": {**target.describe(), "to": str(target)},
        "filters": query.describe(),
        "on_conflict": on_conflict,
        "dry_run": dry_run,
        "started": _iso(started),
        "finished": _iso(time.time()),
        "seconds": round(time.time() - started, 3),
        "status": status,
        "exit_code": code,
        "tenant": {"tenant_id": tenant_id, "graph_url": graph_url},
        "broker": cluster.label,
        "workers": dict(sorted(workers.items())),
        "totals": summary,
        "notices": notices,
        "owners": results,
    }
