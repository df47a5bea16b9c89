"""Running a copy with a progress display and a report (``coffer copy``, destinations)."""

from __future__ import annotations

import time
from typing import Any

from cli.ui.progress import Progress
from store import Repository, Snapshot, copy_snapshots


class _CopyProgress:
    """Feeds the copy's events into the progress display."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def starting(self, snapshot: Snapshot) -> None:
        self._progress.current = f"{snapshot.owner.kind}/{snapshot.owner.name}"

    def blob(self, size: int) -> None:
        self._progress.item(self._progress.current, size)

    def snapshot(self, source: Snapshot, copied: Snapshot | None) -> None:
        self._progress.owners_done += 1


def _entry(source: Snapshot, there: Snapshot | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "owner": source.owner.name,
        "owner_kind": source.owner.kind,
        "time": source.time.isoformat().replace("+00:00", "Z"),
        "source_snapshot": source.id_hex,
        "partial": source.partial,
    }
    if there is not None:
        out["snapshot"] = there.id_hex
    return out


def run_copy(
    source: Repository,
    dest: Repository,
    snapshots: list[Snapshot],
    *,
    title: str = "copy",
    progress: bool = True,
) -> dict[str, Any]:
    """Copy ``snapshots`` (those the destination lacks), store a ``copy`` report in
    the destination, and return it. Raises what copy_snapshots raises."""
    started = time.monotonic()
    with Progress(title, enabled=progress, group_label="snapshots") as display:
        display.owners_total = len(snapshots)
        result = copy_snapshots(source, dest, snapshots, progress=_CopyProgress(display))
    summary: dict[str, Any] = {
        "from": source.backend.location,
        "to": dest.backend.location,
        "copied": [_entry(s, c) for s, c in result.copied],
        "already_present": [_entry(s, c) for s, c in result.present],
        "failed": [dict(_entry(s), error=reason) for s, reason in result.failed],
        "stats": result.stats.to_map(),
        "seconds": round(time.monotonic() - started, 3),
    }
    if result.copied or result.failed:
        summary["report"] = dest.save_report("copy", summary)
    return summary
