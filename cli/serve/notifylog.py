"""Notification deliveries stored in the repository, beside the runs they are about:
one report of kind ``notify`` per message and channel, written when the message
was sent or given up (cli/schedules/notify.py ``Delivery.to_record``): the
channel, ``sent`` or ``failed``, the number of attempts and retries, each
attempt's time and error class, and the schedule, run ID, run report and run
outcome the message was about. Never a recipient's secret, a webhook URL or
a password.

Reading is bounded: a run's deliveries are looked up among the ``notify``
reports stored after the run began (report keys start with their UTC time),
at most ``SCAN`` of them. Thread-safe: every repository use holds ``lock``.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from store import Repository, StoreError

log = logging.getLogger(__name__)

KIND = "notify"
SCAN = 200  # notify reports read at most per lookup


def _stamp(key: str) -> str:
    """The UTC time a report key starts with (sortable text)."""
    return key.rpartition("/")[2]


def stamp_of(ts: float) -> str:
    """POSIX seconds as the sortable UTC text report keys start with."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H-%M-%S")


class NotificationLog:
    """Stores and finds delivery records in ``repo``."""

    def __init__(self, repo: Repository, lock: threading.RLock) -> None:
        self.repo = repo
        self.lock = lock

    def record(self, entry: dict[str, Any]) -> str | None:
        """Store one delivery record; its key, or None when storing failed (logged)."""
        try:
            with self.lock:
                return self.repo.save_report(KIND, entry)
        except StoreError as exc:
            log.error(  # noqa: TRY400 (a storage error, not a bug: no traceback)
                "cannot store the notification record of %s: %s", entry.get("channel"), exc
            )
            return None

    def _after(self, stamp: str) -> list[dict[str, Any]]:
        with self.lock:
            keys = [k for k in self.repo.list_reports(KIND) if _stamp(k) >= stamp][:SCAN]
            out = []
            for key in keys:
                try:
                    out.append(self.repo.load_report(key))
                except StoreError as exc:
                    out.append({"channel": "?", "outcome": "unreadable", "error": str(exc)})
            return out

    def for_report(self, report_key: str) -> list[dict[str, Any]]:
        """The deliveries about the run whose report is ``report_key``. Raises StoreError."""
        return [e for e in self._after(_stamp(report_key)) if e.get("report") == report_key]

    def for_run(self, run_id: str, since: str) -> list[dict[str, Any]]:
        """The deliveries about run ``run_id`` stored at or after the UTC time text
        ``since`` (a report key's form, e.g. ``2026-12-06T17-54-50``). Raises StoreError."""
        return [e for e in self._after(since) if run_id and e.get("run") == run_id]

    def recent(self, count: int = 50) -> list[dict[str, Any]]:
        """The newest ``count`` records, newest first. Raises StoreError."""
        with self.lock:
            keys = self.repo.list_reports(KIND)[-count:]
            out = []
            for key in reversed(keys):
                try:
                    out.append(self.repo.load_report(key))
                except StoreError as exc:
                    out.append({"channel": "?", "outcome": "unreadable", "error": str(exc)})
            return out
