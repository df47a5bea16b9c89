"""What a Microsoft 365 backup did, per owner and service (the run report's parts).

The report is JSON, self-describing (``"format": "coffer-backup-report"``,
``"version": 1``); its shape is documented in docs/layout.md ("Backup
reports"). Counters are thread-safe: download workers update them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sources.m365.graph.throttle import Meter

MAX_LISTED = 1000  # skipped items listed per service (the count is always exact)

# Service and owner statuses.
OK = "ok"
PARTIAL = "partial"  # some items skipped
FAILED = "failed"  # the service could not be backed up this time
NOT_APPLICABLE = "not_applicable"  # no mailbox, no OneDrive, ...


@dataclass
class ServiceReport:
    """Counters of one service of one owner."""

    name: str
    status: str = OK
    items_new: int = 0
    items_changed: int = 0
    items_deleted: int = 0
    items_unchanged: int = 0
    items_skipped: int = 0
    items_excluded: int = 0
    bytes_read: int = 0  # content downloaded from Microsoft 365
    bytes_added: int = 0  # new content stored (before compression): what dedup left
    seconds: float = 0.0
    error: str | None = None
    resynced: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    # Items that can never be read (failures.py): new ones make the service partial
    # (an administrator must hear of them once); known ones are listed only.
    failed: list[dict[str, Any]] = field(default_factory=list)
    items_failed_new: int = 0
    notes: list[str] = field(default_factory=list)
    debug: list[str] = field(default_factory=list)  # in the JSON report only, not shown
    counts: dict[str, int] = field(default_factory=dict)  # items per kind (messages, ...)
    meter: Meter = field(default_factory=Meter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, counter: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + amount)

    def count(self, kind: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + amount

    def skip(self, item: str, reason: str) -> None:
        with self._lock:
            self.items_skipped += 1
            if len(self.skipped) < MAX_LISTED:
                self.skipped.append({"item": item, "reason": reason})
            if self.status == OK:
                self.status = PARTIAL

    def note(self, message: str) -> None:
        with self._lock:
            if message not in self.notes:
                self.notes.append(message)

    def debug_note(self, message: str) -> None:
        """A fact for whoever reads the JSON report (not shown in the summary)."""
        with self._lock:
            if message not in self.debug:
                self.debug.append(message)

    def failed_item(self, record: dict[str, Any], *, new: bool) -> None:
        """List a permanently failed item; a new one makes the service partial."""
        with self._lock:
            self.failed = [r for r in self.failed if r.get("id") != record.get("id")]
            if len(self.failed) < MAX_LISTED:
                self.failed.append({**record, "new": new})
            if new:
                self.items_failed_new += 1
                if self.status == OK:
                    self.status = PARTIAL

    def incomplete(self, error: str) -> None:
        """Part of the service could not be backed up (what could was stored)."""
        with self._lock:
            if self.status in (OK, PARTIAL):
                self.status = PARTIAL
            self.error = error

    def fail(self, error: str) -> None:
        with self._lock:
            self.status = FAILED
            self.error = error

    def to_map(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "items_new": self.items_new,
            "items_changed": self.items_changed,
            "items_deleted": self.items_deleted,
            "items_unchanged": self.items_unchanged,
            "items_skipped": self.items_skipped,
            "items_excluded": self.items_excluded,
            "bytes_read": self.bytes_read,
            "bytes_added": self.bytes_added,
            "seconds": round(self.seconds, 3),
            "requests": self.meter.requests,
            "throttled": self.meter.throttled,
            "throttled_seconds": round(self.meter.throttled_seconds, 3),
            "retries": self.meter.retries,
            "resynced": list(self.resynced),
            "skipped": list(self.skipped),
            "items_failed": len(self.failed),
            "items_failed_new": self.items_failed_new,
            "failed": sorted(self.failed, key=lambda r: str(r.get("path"))),
            "notes": list(self.notes),
            "debug": list(self.debug),
            "counts": dict(sorted(self.counts.items())),
            "error": self.error,
        }


@dataclass
class OwnerReport:
    """One owner (user, site or team) of the run."""

    kind: str
    key: str
    name: str
    status: str = OK
    snapshot: str | None = None
    error: str | None = None
    seconds: float = 0.0
    services: dict[str, ServiceReport] = field(default_factory=dict)
    meter: Meter = field(default_factory=Meter)
    # What the owner's backup worked around, one line each (a base naming blobs in
    # no index: store/backup/audit.py); not a failure.
    warnings: list[str] = field(default_factory=list)

    def service(self, name: str) -> ServiceReport:
        if name not in self.services:
            self.services[name] = ServiceReport(name)
        return self.services[name]

    def settle(self) -> None:
        """Derive the owner's status from its services'."""
        statuses = [s.status for s in self.services.values()]
        if self.error is not None and not self.snapshot:
            self.status = FAILED
        elif statuses and all(s == NOT_APPLICABLE for s in statuses):
            self.status = NOT_APPLICABLE
        elif statuses and all(s in (FAILED, NOT_APPLICABLE) for s in statuses):
            self.status = FAILED
        elif any(s in (FAILED, PARTIAL) for s in statuses):
            self.status = PARTIAL
        else:
            self.status = OK

    def total(self, counter: str) -> int:
        return sum(int(getattr(s, counter)) for s in self.services.values())

    def to_map(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "name": self.name,
            "status": self.status,
            "snapshot": self.snapshot,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "requests": self.meter.requests,
            "throttled_seconds": round(self.meter.throttled_seconds, 3),
            "warnings": list(self.warnings),
            "services": {name: s.to_map() for name, s in sorted(self.services.items())},
        }


TOTALS = (
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


def totals(owners: list[OwnerReport]) -> dict[str, Any]:
    out: dict[str, Any] = {name: sum(o.total(name) for o in owners) for name in TOTALS}
    out["requests"] = sum(o.meter.requests for o in owners)
    out["throttled_seconds"] = round(sum(o.meter.throttled_seconds for o in owners), 3)
    out["items_failed"] = sum(len(s.failed) for o in owners for s in o.services.values())
    out["owners"] = len(owners)
    for status in (OK, PARTIAL, FAILED, NOT_APPLICABLE):
        out[f"owners_{status}"] = sum(1 for o in owners if o.status == status)
    return out


def failed_items(owners: list[OwnerReport]) -> list[dict[str, Any]]:
    """Every permanently failed item of the run, new ones first (failures.py)."""
    out = [
        {"owner": o.name, "kind": o.kind, **record}
        for o in owners
        for s in o.services.values()
        for record in s.failed
    ]
    return sorted(out, key=lambda r: (not r.get("new"), str(r["owner"]), str(r.get("path"))))
