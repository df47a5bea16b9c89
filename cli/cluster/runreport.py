"""The one run report of a scale-out backup, put together from the repository.

When it enqueues a run, ``coffer backup`` stores the run's manifest
(``reports/backup-run/``: tenant, settings, discovery's problems, the owners
enqueued, when) in the repository; each worker stores its owner's full report
(``reports/backup-owner/RUN/``). The run report is the manifest plus the owner
reports, with totals and the exit code computed as a one-process run does
(sources/m365/backup/runner.py), and a ``worker`` field per owner. Outcomes that never
reached the repository (a worker without the repository password) come from
the broker's counters (``outcomes``) with their error.

No Celery and no Redis here: ``coffer report RUN`` of a detached run reads the
repository, and the broker only if one is configured.
"""

from __future__ import annotations

from typing import Any

from store import ExitCode, Repository

MANIFEST_KIND = "backup-run"
OWNER_KIND = "backup-owner"
OK, PARTIAL, FAILED, NOT_APPLICABLE = "ok", "partial", "failed", "not_applicable"
SUMS = (
    "items_new",
    "items_changed",
    "items_deleted",
    "items_unchanged",
    "items_skipped",
    "items_excluded",
    "items_failed_new",
    "bytes_read",
    "bytes_added",
)


def owner_kind(run_id: str) -> str:
    return f"{OWNER_KIND}/{run_id}"


def find_manifest(repo: Repository, run_id: str) -> dict[str, Any] | None:
    """The manifest of the run whose id starts with ``run_id`` (None if none)."""
    wanted = run_id.lower()
    for key in reversed(repo.list_reports(MANIFEST_KIND)):
        manifest = repo.load_report(key)
        if str(manifest.get("run", "")).startswith(wanted) and len(wanted) >= 4:
            return manifest
    return None


def owner_reports(repo: Repository, run_id: str) -> dict[str, dict[str, Any]]:
    """The stored owner reports of a run, by ``kind:key`` (the last one wins)."""
    out: dict[str, dict[str, Any]] = {}
    for key in repo.list_reports(owner_kind(run_id)):
        entry = repo.load_report(key)
        out[f"{entry.get('kind')}:{entry.get('key')}"] = entry
    return out


def _failed_entry(owner: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": owner["kind"],
        "key": owner["key"],
        "name": owner["name"],
        "status": FAILED,
        "snapshot": None,
        "error": str(outcome.get("error") or "the job failed"),
        "seconds": 0.0,
        "requests": 0,
        "throttled_seconds": 0.0,
        "services": {},
        "worker": outcome.get("worker"),
    }


def _totals(owners: list[dict[str, Any]]) -> dict[str, Any]:
    services = [s for o in owners for s in o["services"].values()]
    out: dict[str, Any] = {name: sum(int(s.get(name, 0)) for s in services) for name in SUMS}
    out["requests"] = sum(int(o.get("requests", 0)) for o in owners)
    out["throttled_seconds"] = round(sum(float(o.get("throttled_seconds", 0)) for o in owners), 3)
    out["items_failed"] = sum(len(s.get("failed", [])) for s in services)
    out["owners"] = len(owners)
    for status in (OK, PARTIAL, FAILED, NOT_APPLICABLE):
        out[f"owners_{status}"] = sum(1 for o in owners if o["status"] == status)
    return out


def _failed_items(owners: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [
        {"owner": o["name"], "kind": o["kind"], **record}
        for o in owners
        for s in o["services"].values()
        for record in s.get("failed", [])
    ]
    return sorted(out, key=lambda r: (not r.get("new"), str(r["owner"]), str(r.get("path"))))


def assemble(
    repo: Repository,
    manifest: dict[str, Any],
    outcomes: dict[str, dict[str, Any]],
    *,
    finished: str,
    seconds: float,
) -> tuple[dict[str, Any], list[str]]:
    """The run report, and the ``kind:key`` of owners not finished yet (empty
    when the run is complete)."""
    stored = owner_reports(repo, str(manifest["run"]))
    owners: list[dict[str, Any]] = []
    pending: list[str] = []
    repository = {"bytes_added_stored": 0, "bytes_added_raw": 0, "blobs_added": 0}
    repository["blobs_deduplicated"] = 0
    problems = list(manifest.get("problems", []))
    for owner in manifest["owners"]:
        field = f"{owner['kind']}:{owner['key']}"
        entry = stored.get(field)
        if entry is not None:
            entry = dict(entry)
            for name, value in (entry.pop("repository", None) or {}).items():
                repository[name] = repository.get(name, 0) + int(value)
            for problem in entry.pop("problems", None) or []:
                if problem not in problems:
                    problems.append(problem)
            entry.pop("run", None)
            owners.append(entry)
        elif outcomes.get(field, {}).get("status") == FAILED:
            owners.append(_failed_entry(owner, outcomes[field]))
        elif field in outcomes and outcomes[field].get("snapshot"):
            # Finished in an earlier delivery whose report is stored under
            # another run's job (cannot happen) or lost: say what is known.
            entry = _failed_entry(owner, outcomes[field])
            entry.update(status=OK, snapshot=outcomes[field]["snapshot"], error=None)
            owners.append(entry)
        else:
            pending.append(field)
    owners.sort(key=lambda r: (r["kind"], str(r["name"]).lower()))
    summary = _totals(owners)
    applicable = [r for r in owners if r["status"] != NOT_APPLICABLE]
    if pending:
        status, code = PARTIAL, ExitCode.PARTIAL  # not finished (yet): never reported as done
    elif applicable and all(r["status"] == FAILED for r in applicable):
        status, code = FAILED, ExitCode.ERROR
    elif any(r["status"] in (FAILED, PARTIAL) for r in owners) or problems:
        status, code = PARTIAL, ExitCode.PARTIAL
    else:
        status, code = OK, ExitCode.OK
    workers: dict[str, int] = {}
    for entry in owners:
        if entry.get("worker"):
            workers[str(entry["worker"])] = workers.get(str(entry["worker"]), 0) + 1
    report = {
        key: manifest[key]
        for key in ("format", "version", "kind", "source", "run", "host", "started", "tenant")
    }
    report.update(
        finished=finished,
        seconds=round(seconds, 3),
        status=status,
        exit_code=code,
        settings=manifest.get("settings", {}),
        broker=manifest.get("broker"),
        workers=dict(sorted(workers.items())),
        totals=summary,
        repository=repository,
        problems=problems,
        owners_skipped=list(manifest.get("owners_skipped", [])),
        owners_pending=list(pending),
        failed_items=_failed_items(owners),
        owners=owners,
    )
    return report, pending
