"""The audit log: every sign-in (ok or failed), download and restore, stored in the
repository as reports of kind ``audit`` (``coffer report --kind`` lists them;
docs/console.md says what an entry holds).

One report per event: reports are append-only objects, so entries cannot be
edited by the console afterwards and a crash loses at most the event in
flight. Never records a password, a session or a CSRF token.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from store import Repository, StoreError

log = logging.getLogger(__name__)

FORMAT = "coffer-audit"


class AuditLog:
    """Writes audit events into ``repo``. Thread-safe."""

    def __init__(self, repo: Repository, lock: threading.RLock) -> None:
        self.repo = repo
        self.lock = lock

    def record(self, event: str, user: str, address: str, **fields: Any) -> str | None:
        """Store one event; return its report key, or None if storing failed (logged:
        the action it records has already happened or been refused)."""
        entry = {
            "format": FORMAT,
            "version": 1,
            "kind": "audit",
            "event": event,
            "user": user,
            "address": address,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            **fields,
        }
        try:
            with self.lock:
                return self.repo.save_report("audit", entry)
        except StoreError as exc:
            log.error(  # noqa: TRY400 (a storage error, not a bug: no traceback)
                "audit: cannot store the %s event of %s: %s", event, user, exc
            )
            return None
