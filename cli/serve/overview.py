"""What the pages and the metrics show, computed from the repository: runs from the
stored backup reports, owners from the snapshots, size from the statistics.

Pure reading; callers hold the repository's lock. Both report shapes are read:
Microsoft 365 runs (``"source": "m365"``, per-owner ``services``) and folder
runs (per-owner ``stats``). A report that cannot be read is shown as such,
never skipped silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from store import Repository, Snapshot, StoreError

ITEM_COUNTERS = ("items_new", "items_changed", "items_unchanged")


@dataclass
class OwnerRun:
    """One owner in one run."""

    kind: str
    key: str
    name: str
    status: str
    seconds: float
    items: int
    bytes_read: int
    bytes_added: int
    skipped: int
    throttled_seconds: float
    snapshot: str | None


@dataclass
class RunSummary:
    key: str
    run: str
    time: float  # when the report was stored (POSIX seconds)
    source: str
    status: str
    seconds: float
    items: int
    bytes_read: int
    bytes_added: int
    failures: int  # owners that failed plus items skipped
    owners: list[OwnerRun] = field(default_factory=list)
    error: str | None = None
    stored_bytes: int = 0  # what the run added to the repository (compressed, encrypted)


@dataclass
class OwnerSummary:
    kind: str
    key: str
    name: str
    last_success: float | None  # newest complete snapshot
    last_attempt: float | None  # newest run naming the owner (or snapshot)
    snapshots: int
    runs: list[tuple[RunSummary, OwnerRun]] = field(default_factory=list)

    @property
    def identity(self) -> str:
        return f"{self.kind}/{self.key}"

    def age(self, now: float) -> float | None:
        return None if self.last_success is None else now - self.last_success

    def stale(self, now: float, limit: float) -> bool:
        age = self.age(now)
        return age is None or age > limit


@dataclass
class Overview:
    runs: list[RunSummary]  # newest first
    owners: list[OwnerSummary]  # by kind, name
    snapshots: list[Snapshot]
    made_at: float


def report_time(key: str) -> float:
    """The time in a report's key (``reports/<kind>/<UTC time>-<random>``); 0 if none."""
    stamp = key.rpartition("/")[2].rpartition("-")[0]
    try:
        parsed = datetime.strptime(stamp, "%Y-%m-%dT%H-%M-%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return 0.0
    return parsed.timestamp()


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _m365_owner(data: dict[str, Any]) -> OwnerRun:
    services = [s for s in (data.get("services") or {}).values() if isinstance(s, dict)]
    return OwnerRun(
        kind=str(data.get("kind", "")),
        key=str(data.get("key", "")),
        name=str(data.get("name", "")),
        status=str(data.get("status", "")),
        seconds=_float(data.get("seconds")),
        items=sum(_int(s.get(c)) for s in services for c in ITEM_COUNTERS),
        bytes_read=sum(_int(s.get("bytes_read")) for s in services),
        bytes_added=sum(_int(s.get("bytes_added")) for s in services),
        skipped=sum(_int(s.get("items_skipped")) for s in services),
        throttled_seconds=_float(data.get("throttled_seconds")),
        snapshot=data.get("snapshot") if isinstance(data.get("snapshot"), str) else None,
    )


def _folder_owner(data: dict[str, Any], snapshots: dict[str, Snapshot]) -> OwnerRun:
    stats = data.get("stats") if isinstance(data.get("stats"), dict) else {}
    assert isinstance(stats, dict)
    snapshot_id = data.get("snapshot") if isinstance(data.get("snapshot"), str) else None
    snap = snapshots.get(snapshot_id or "")
    skipped = len(data.get("skipped") or [])
    return OwnerRun(
        kind=str(data.get("owner_kind", "folders")),
        key=snap.owner.key if snap else str(data.get("owner", "")),
        name=str(data.get("owner", "")),
        status="partial" if skipped else "ok",
        seconds=_float(data.get("seconds")),
        items=sum(_int(stats.get(c)) for c in ITEM_COUNTERS),
        bytes_read=_int(stats.get("bytes_read")),
        bytes_added=_int(stats.get("bytes_new")) or _int(stats.get("bytes_added")),
        skipped=skipped,
        throttled_seconds=0.0,
        snapshot=snapshot_id,
    )


def summarize_run(key: str, report: dict[str, Any], snapshots: dict[str, Snapshot]) -> RunSummary:
    """One backup report as a row of the runs page."""
    m365 = report.get("source") == "m365"
    raw_owners = [o for o in report.get("owners") or [] if isinstance(o, dict)]
    owners = [_m365_owner(o) if m365 else _folder_owner(o, snapshots) for o in raw_owners]
    if m365:
        status = str(report.get("status", "?"))
        bytes_added = sum(o.bytes_added for o in owners)
        repository = report.get("repository")
        stored = _int(repository.get("bytes_added_stored")) if isinstance(repository, dict) else 0
    else:
        status = "partial" if report.get("partial") else "ok"
        bytes_added = stored = _int(report.get("bytes_added"))
    return RunSummary(
        key=key,
        run=str(report.get("run", "")),
        time=report_time(key),
        source=str(report.get("source", "?")),
        status=status,
        seconds=_float(report.get("seconds")),
        items=sum(o.items for o in owners),
        bytes_read=sum(o.bytes_read for o in owners),
        bytes_added=bytes_added,
        failures=sum(1 for o in owners if o.status == "failed") + sum(o.skipped for o in owners),
        owners=owners,
        stored_bytes=stored,
    )


def build_overview(repo: Repository) -> Overview:
    """Read every snapshot and backup report. Raises StoreError when listing fails."""
    snapshots = repo.list_snapshots()
    by_id = {s.id_hex: s for s in snapshots}
    runs: list[RunSummary] = []
    for key in repo.list_reports("backup"):
        try:
            runs.append(summarize_run(key, repo.load_report(key), by_id))
        except (StoreError, ValueError) as exc:
            runs.append(
                RunSummary(
                    key, "", report_time(key), "?", "unreadable", 0, 0, 0, 0, 0, error=str(exc)
                )
            )
    runs.sort(key=lambda r: r.time, reverse=True)
    owners: dict[str, OwnerSummary] = {}
    for snap in sorted(snapshots, key=lambda s: s.time_ns):
        o = snap.owner
        summary = owners.setdefault(o.identity, OwnerSummary(o.kind, o.key, o.name, None, None, 0))
        summary.name = o.name
        summary.snapshots += 1
        when = snap.time_ns / 1e9
        summary.last_attempt = max(summary.last_attempt or 0.0, when)
        if not snap.partial:
            summary.last_success = max(summary.last_success or 0.0, when)
    for run in runs:
        for owner_run in run.owners:
            identity = f"{owner_run.kind}/{owner_run.key}"
            if identity not in owners:
                owners[identity] = OwnerSummary(
                    owner_run.kind, owner_run.key, owner_run.name, None, None, 0
                )
            summary = owners[identity]
            summary.runs.append((run, owner_run))
            summary.last_attempt = max(summary.last_attempt or 0.0, run.time)
    ordered = sorted(owners.values(), key=lambda o: (o.kind, o.name.lower()))
    return Overview(runs, ordered, snapshots, time.time())
