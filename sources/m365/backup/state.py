"""The per-owner sync state: delta links and the few maps the services keep.

Stored by the engine with every snapshot (OwnerSession.set_sync_state), so a
new machine continues incrementally from the repository alone. A JSON object
with one member per service, each owned by that service's module::

    {"format": "coffer-m365-state", "version": 1,
     "mail": {...}, "contacts": {...}, "calendar": {...},
     "onedrive": {...}, "sharepoint": {...}, "teams": {...}}

A service changes its part only for collections whose items were all added
(items that can never be read are recorded under a ``"failed"`` member,
failures.py, and do not count as missing), then calls
:meth:`SyncState.publish`, which hands the whole state to the session (a
checkpoint stores the last published state with the items added so far).
Thread-safe.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

FORMAT = "coffer-m365-state"
VERSION = 1


class _Session(Protocol):
    def set_sync_state(self, state: bytes | None) -> None: ...


class SyncState:
    def __init__(self, raw: bytes | None) -> None:
        self._lock = threading.Lock()
        data: dict[str, Any] = {}
        if raw:
            try:
                loaded = json.loads(raw)
            except ValueError:
                loaded = None  # unreadable: start afresh (a full enumeration)
            if (
                isinstance(loaded, dict)
                and loaded.get("format") == FORMAT
                and loaded.get("version") == VERSION
            ):
                data = loaded
        self._data = data

    def service(self, name: str) -> dict[str, Any]:
        """The mutable part of ``name`` (created empty)."""
        with self._lock:
            part = self._data.get(name)
            if not isinstance(part, dict):
                part = self._data[name] = {}
            return part

    def encode(self) -> bytes:
        with self._lock:
            body = {**self._data, "format": FORMAT, "version": VERSION}
            return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def publish(self, session: _Session) -> None:
        session.set_sync_state(self.encode())
