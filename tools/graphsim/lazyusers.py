"""Lazy users: a large tenant's per-user content generated on first access.

A tenant generated with ``lazy=True`` (``serve --lazy``) stores its licensed users
without content, so 10,000 users start in seconds instead of minutes. The first request
that needs a user's mailbox or OneDrive (`Tenant.require_mailbox`, the drive service's
``user_drive``) calls `LazyUsers.materialize`, which writes the rows the eager generator
would have written for that user (generator `lazy_content`: every value derives from
the seed and the user's index) and fills the user's ``_wk`` and ``_drive``. Listing or
reading user objects does not materialize anything.

This is a simulator implementation detail, not a Microsoft behaviour (docs/simulator.md).
"""

from __future__ import annotations

import threading

from .generator import LazyPlan, lazy_content
from .store import Item, Store


class LazyUsers:
    """Materializes lazy users once each. Thread-safe; `materialize` is idempotent."""

    def __init__(self, store: Store, plan: LazyPlan) -> None:
        self._store = store
        self._plan = plan
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def materialize(self, user: Item) -> Item:
        """`user` with its content in the store; the stored (updated) item.

        A user that is not lazy (or no longer) is returned as it is. Two threads asking
        for the same user generate it once (a per-user lock); different users generate
        in parallel. The user's ``seq`` is kept, so users delta does not see a change.
        """
        if not user.data.get("_lazy"):
            return user
        with self._guard:
            lock = self._locks.setdefault(user.key, threading.Lock())
        with lock:
            current = self._store.get(user.key)
            if current is None or not current.data.get("_lazy"):
                return current or user
            rows, fields = lazy_content(self._plan, current.key)
            current.data.pop("_lazy")
            current.data.update(fields)
            with self._store.transaction() as tx:
                tx.insert_many(rows)
                tx.update(current, bump=False)
        with self._guard:
            self._locks.pop(user.key, None)
        return current
