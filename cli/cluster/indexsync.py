"""A worker learns, while its jobs run, the blobs other workers committed.

A job's repository run (store/backup/session.py) merges the index objects that
exist when it starts; blobs other workers commit later are stored again by
this one (the index merge keeps one copy, prune frees the other). While at
least one job runs, this thread merges the index objects written since it last
looked, every ``period`` seconds (``[cluster] index_refresh``), with
``Repository.refresh_index``: one listing of ``index/`` and the new objects.

Why this is safe (store/FORMAT.md §6, §9, §11): an index object is written after
the packs it names are uploaded, so a blob it names exists; a refresh only
makes the view newer than the session marker the run wrote at its start, which
is all prune's protection asks (a pack that prune condemns after that marker
is not swept while the session lives, and is revived once a snapshot names
it); an index a prune replaced makes the refresh start the local index over,
as at a run's start. Workers on one machine share the local index (LMDB in the
cache directory), so they see each other's index objects as soon as they are
written; the refresh matters for workers on other machines.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from store import Repository, StoreError

log = logging.getLogger(__name__)


class IndexRefresher:
    """Refreshes ``repo``'s blob index every ``period`` seconds while a job holds
    it (:meth:`running`). Thread-safe; :meth:`stop` is idempotent."""

    def __init__(self, repo: Repository, period: float) -> None:
        self._repo = repo
        self._period = period
        self._lock = threading.Lock()
        self._jobs = 0
        self._stop = threading.Event()
        self.refreshes = 0
        self._thread = threading.Thread(target=self._loop, name="coffer-index", daemon=True)
        self._thread.start()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Count a running job (no refresh, and no listing, while none runs)."""
        with self._lock:
            self._jobs += 1
        try:
            yield
        finally:
            with self._lock:
                self._jobs -= 1

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            with self._lock:
                busy = self._jobs > 0
            if not busy:
                continue
            try:
                self._repo.refresh_index()
                self.refreshes += 1
            except StoreError as exc:  # an outage: the next period tries again
                log.info("refreshing the blob index: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
