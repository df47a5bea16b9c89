"""What a restore did, per owner and service: the restore report's parts.

Outcomes of an item (docs/restore.md, "Reports"):

- ``created``: it was not in the target folder and now is;
- ``replaced``: another version was there (same identity, other content) and
  ``--on-conflict replace`` put the snapshot's version in its place;
- ``kept_both``: another version was there and ``keep-both`` added the
  snapshot's version beside it;
- ``skipped``: nothing written, with a reason: already there (the same
  content), or another version is there and the policy is ``skip``, or the
  item cannot go to this kind of target. Not a failure;
- ``failed``: it could not be restored (the reason says why): exit code 3.

Counters are thread-safe: item workers update them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sources.m365.graph.throttle import Meter
from store import ExitCode

MAX_LISTED = 1000  # items listed per service and outcome (the counts are always exact)
OUTCOMES = ("created", "replaced", "kept_both", "skipped", "failed")

# Skip reasons that are counted by kind in the report (and printed as one line).
ALREADY_THERE = "already there (same content)"
OTHER_VERSION = "another version is in the target (--on-conflict skip)"


@dataclass
class ServiceResult:
    name: str
    created: int = 0
    replaced: int = 0
    kept_both: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_uploaded: int = 0
    seconds: float = 0.0
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    skipped_items: list[dict[str, str]] = field(default_factory=list)
    failed_items: list[dict[str, str]] = field(default_factory=list)
    planned: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    meter: Meter = field(default_factory=Meter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, outcome: str, item: str, reason: str = "", *, planned: bool = False) -> None:
        """Count one item's outcome (``planned``: a dry run's would-be outcome)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
            if planned and len(self.planned) < MAX_LISTED:
                entry = {"item": item, "action": outcome}
                if reason:
                    entry["reason"] = reason
                self.planned.append(entry)
            if outcome == "skipped":
                self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + 1
                if reason not in (ALREADY_THERE,) and len(self.skipped_items) < MAX_LISTED:
                    self.skipped_items.append({"item": item, "reason": reason})
            elif outcome == "failed" and len(self.failed_items) < MAX_LISTED:
                self.failed_items.append({"item": item, "reason": reason})

    def uploaded(self, size: int) -> None:
        with self._lock:
            self.bytes_uploaded += size

    def note(self, message: str) -> None:
        with self._lock:
            if message not in self.notes:
                self.notes.append(message)

    @property
    def written(self) -> int:
        return self.created + self.replaced + self.kept_both

    def to_map(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "replaced": self.replaced,
            "kept_both": self.kept_both,
            "skipped": self.skipped,
            "failed": self.failed,
            "bytes_uploaded": self.bytes_uploaded,
            "seconds": round(self.seconds, 3),
            "requests": self.meter.requests,
            "throttled": self.meter.throttled,
            "throttled_seconds": round(self.meter.throttled_seconds, 3),
            "retries": self.meter.retries,
            "skipped_reasons": dict(sorted(self.skipped_reasons.items())),
            "skipped_items": list(self.skipped_items),
            "failed_items": list(self.failed_items),
            "planned": list(self.planned),
            "notes": list(self.notes),
        }


@dataclass
class OwnerResult:
    """One source owner (user, site) of the restore and where it went."""

    kind: str
    key: str
    name: str
    snapshot: str
    snapshot_time: str
    target: str = ""
    status: str = "ok"  # ok | partial | failed | skipped
    error: str | None = None
    seconds: float = 0.0
    services: dict[str, ServiceResult] = field(default_factory=dict)
    meter: Meter = field(default_factory=Meter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def service(self, name: str) -> ServiceResult:
        with self._lock:
            if name not in self.services:
                self.services[name] = ServiceResult(name)
            return self.services[name]

    def total(self, counter: str) -> int:
        return sum(int(getattr(s, counter)) for s in self.services.values())

    def settle(self) -> None:
        if self.status == "skipped":
            return
        nothing_done = self.total("written") == 0 and self.total("skipped") == 0
        if nothing_done and (self.error is not None or self.total("failed")):
            # Every item failed (or none could be tried): not a partial success.
            self.status = "failed"
        elif self.error is not None or self.total("failed"):
            self.status = "partial"
        else:
            self.status = "ok"

    def to_map(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "name": self.name,
            "snapshot": self.snapshot,
            "snapshot_time": self.snapshot_time,
            "target": self.target,
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "requests": self.meter.requests,
            "throttled_seconds": round(self.meter.throttled_seconds, 3),
            "services": {name: s.to_map() for name, s in sorted(self.services.items())},
        }


TOTALS = ("created", "replaced", "kept_both", "skipped", "failed", "bytes_uploaded")


def totals(owners: list[OwnerResult]) -> dict[str, Any]:
    out: dict[str, Any] = {name: sum(o.total(name) for o in owners) for name in TOTALS}
    out["requests"] = sum(o.meter.requests for o in owners)
    out["throttled_seconds"] = round(sum(o.meter.throttled_seconds for o in owners), 3)
    out["owners"] = len(owners)
    for status in ("ok", "partial", "failed", "skipped"):
        out[f"owners_{status}"] = sum(1 for o in owners if o.status == status)
    return out


def verdict(any_owner: bool, summary: dict[str, Any]) -> tuple[str, ExitCode]:
    """A restore run's status and exit code from its :func:`totals`: ``nothing``
    (no owner matched, 0), ``failed`` (items failed and none was restored or
    skipped, 3), ``partial`` (some failed, 3), ``ok`` (0). One place for the run
    in one process and the run spread over workers (cli/cluster)."""
    if not any_owner:
        return "nothing", ExitCode.OK
    if summary["failed"] and not (
        summary["created"] or summary["replaced"] or summary["kept_both"] or summary["skipped"]
    ):
        return "failed", ExitCode.PARTIAL
    if summary["failed"]:
        return "partial", ExitCode.PARTIAL
    return "ok", ExitCode.OK
