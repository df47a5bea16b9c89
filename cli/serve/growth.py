"""The repository's growth over time, for the repository page's chart: a series
that survives ``forget`` and ``prune`` (it is read from the stored reports,
which neither removes), resynchronised with a measurement whenever one exists.

- Each backup run adds what it stored (compressed and encrypted bytes: the
  report's ``repository.bytes_added_stored``, or ``bytes_added`` of a folder run).
- Each prune report measures the packs (``pack_bytes``, at its start): the
  series is set to that, then lowered by what it deleted (``deleted_bytes``).
- The last point is the repository's size measured now (``coffer stats``).

Between measurements the series is the sum of what runs stored, so it can
drift from the truth by what maintenance changed without a prune report
(index and snapshot objects); each prune and the final point correct it.
Pure reading; callers hold the repository's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cli.serve.overview import RunSummary, report_time
from store import Repository, StoreError


@dataclass(frozen=True)
class GrowthPoint:
    time: float  # POSIX seconds
    bytes: int
    event: str  # what set it: "backup", "prune: measured", "prune: freed", "now: measured"


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def prune_events(repo: Repository) -> list[tuple[float, int, int]]:
    """(time, packs measured, bytes deleted) of every stored prune that ran (not dry
    runs); unreadable reports are left out. Raises StoreError when listing fails."""
    out = []
    for key in repo.list_reports("prune"):
        try:
            report = repo.load_report(key)
        except StoreError:
            continue
        if report.get("dry_run"):
            continue
        out.append(
            (report_time(key), _int(report.get("pack_bytes")), _int(report.get("deleted_bytes")))
        )
    return out


def growth_points(
    runs: list[RunSummary],
    prunes: list[tuple[float, int, int]],
    now: float,
    size_now: int | None,
) -> list[GrowthPoint]:
    """The series (module docstring), oldest first."""
    events: list[tuple[float, int, str, int, int]] = [
        (r.time, 0, "backup", r.stored_bytes, 0) for r in runs if r.time
    ]
    events += [(t, 1, "prune", measured, deleted) for t, measured, deleted in prunes if t]
    points: list[GrowthPoint] = []
    total = 0
    for when, _order, kind, value, deleted in sorted(events):
        if kind == "backup":
            total += value
            points.append(GrowthPoint(when, total, "backup"))
            continue
        total = value
        points.append(GrowthPoint(when, total, "prune: measured"))
        if deleted:
            total = max(0, total - deleted)
            points.append(GrowthPoint(when, total, "prune: freed"))
    if size_now is not None:
        points.append(
            GrowthPoint(max(now, points[-1].time if points else now), size_now, "now: measured")
        )
    return points
