"""Items that can never be read, recorded instead of pinning a delta link.

An item whose content Graph refuses for good (malware, an item Exchange cannot
open, a corrupt item that answers 500 to every retry; errors.permanent_item_error)
must not hold back its folder's or drive's delta link: the link would never
move, the item would be retried and the run be partial for ever, and once the
token expired the whole drive would be enumerated every run. So such an item is:

- recorded in the snapshot beside where it would be, as ``<name>.failed.json``
  (docs/layout.md, "Failed items"): its name, Graph ID, error code and message,
  first and last seen; visible in ``coffer ls``, ``find`` and the mount;
- kept in the service's sync state under ``"failed"`` (ID -> record), so later
  runs know it;
- listed in the run report: the run that first meets it is partial (exit 3,
  the item named with its code); later runs list it and stay ok;
- retried by ID on the next ``RETRY_RUNS`` runs by the services that can fetch
  one item by ID (mail, drives), and whenever delta or a listing names it again
  (an event's attachments: when the event changes); read at last, its record
  and marker go; gone from Microsoft 365, too.

Thread-safe: download workers record failures.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sources.m365.graph.errors import GraphError

SUFFIX = ".failed.json"
RETRY_RUNS = 3  # later runs that read the item again before it is only listed


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def marker(path: str) -> str:
    """Where the record of the item at ``path`` lives in the snapshot."""
    return f"{path}{SUFFIX}"


class Failures:
    """The permanently failed items of one service (see the module docstring)."""

    def __init__(
        self,
        ctx: Any,
        state: dict[str, Any],
        *,
        keep: Callable[[str, str], bool] | None = None,
    ) -> None:
        """``ctx`` is the ServiceContext; ``state`` the part of the sync state that
        holds the collection's records (the service's, or one drive's)."""
        self.ctx = ctx
        raw = state.get("failed")
        self.records: dict[str, dict[str, Any]] = raw if isinstance(raw, dict) else {}
        state["failed"] = self.records
        self._touched: set[str] = set()
        self._lock = threading.Lock()
        self._keep = keep or ctx.session.unchanged

    def record(self, item_id: str, path: str, exc: GraphError) -> None:
        """``item_id`` at ``path`` failed for good this run (the marker is written)."""
        now = _now()
        with self._lock:
            old = self.records.get(item_id)
            new = old is None
            record: dict[str, Any] = {
                "id": item_id,
                "service": self.ctx.name,
                "path": path,
                "name": path.rsplit("/", 1)[-1],
                "status": exc.status,
                "code": exc.code,
                "message": exc.message,
                "first_seen": old["first_seen"] if old else now,
                "last_seen": now,
                "retries": 0 if old is None else int(old.get("retries", 0)) + 1,
            }
            if old is not None and old.get("path") not in (None, path):
                self.ctx.remove(marker(str(old["path"])), count=False)
            self.records[item_id] = record
            self._touched.add(item_id)
        body = json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False).encode()
        self.ctx.add_file(
            marker(path),
            body,
            version=f"failed:{record['last_seen']}",
            attrs={"type": "failedItem", "id": item_id, "code": exc.code},
            count=False,
        )
        self.ctx.report.failed_item(record, new=new)

    def retried(self, item_id: str) -> None:
        """A retry of ``item_id`` could not tell (a server error before its content was
        reached): the record keeps its code, one retry spent. Idempotent per run."""
        with self._lock:
            old = self.records.get(item_id)
            if old is None or item_id in self._touched:
                return
            stored = GraphError(
                int(old.get("status") or 0), str(old.get("code")), str(old.get("message"))
            )
        self.record(item_id, str(old["path"]), stored)

    def resolved(self, item_id: str) -> None:
        """The item was read (or is gone): its record and marker go. Idempotent."""
        with self._lock:
            old = self.records.pop(item_id, None)
            self._touched.add(item_id)
        if old is not None:
            self.ctx.remove(marker(str(old.get("path"))), count=False)

    def due(self) -> list[dict[str, Any]]:
        """Known failed items not yet met this run that are still worth a retry."""
        with self._lock:
            return [
                dict(r)
                for iid, r in sorted(self.records.items())
                if iid not in self._touched and int(r.get("retries", 0)) < RETRY_RUNS
            ]

    def known(self, item_id: str) -> bool:
        with self._lock:
            return item_id in self.records

    def finish(self) -> None:
        """List the known items not met this run, and keep their markers (a full
        enumeration would otherwise drop them)."""
        with self._lock:
            rest = [r for iid, r in self.records.items() if iid not in self._touched]
        for record in rest:
            path = marker(str(record.get("path")))
            self._keep(path, f"failed:{record.get('last_seen')}")
            self.ctx.report.failed_item(record, new=False)
