"""Attributing new repository bytes to the service that stored them.

The engine shares one blob writer between all owners of a run. This proxy
stands in for it (``BackupRun(repo, writer=...)``) and adds the size of every
data blob not yet in the repository to the service report of the thread that
saved it (set with :func:`attributed_to`). The run's total comes from the
writer's own statistics; per-service figures are exact except when two owners
store the same new blob at the same instant (both are credited).

"Not yet in the repository" is asked of the writer itself (the blobs it has in
flight, then the blob index), not of a set of every blob this run saved: such
a set grew with the run (about 90 bytes a blob), so memory was not bounded by
the tenant's size (docs/performance.md, "Microsoft 365 backup").
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from sources.m365.backup.report import ServiceReport
from store import DATA, Repository

_local = threading.local()


@contextlib.contextmanager
def attributed_to(report: ServiceReport) -> Iterator[None]:
    previous = getattr(_local, "report", None)
    _local.report = report
    try:
        yield
    finally:
        _local.report = previous


class AttributingWriter:
    """Delegates to the repository's blob writer; see the module docstring."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._inner = repo.blob_writer()

    @property
    def stats(self) -> Any:
        return self._inner.stats

    def blob_id(self, data: bytes | memoryview) -> Any:
        return self._inner.blob_id(data)

    def save(self, blob_type: int, data: bytes | memoryview, blob_id: Any = None) -> Any:
        if blob_id is None:
            blob_id = self._inner.blob_id(data)
        report: ServiceReport | None = getattr(_local, "report", None)
        new = report is not None and blob_type == DATA and not self._inner.contains(blob_id)
        result = self._inner.save(blob_type, data, blob_id)
        if new and report is not None:
            report.add("bytes_added", len(data))
        return result

    def save_data(self, data: bytes) -> Any:
        return self.save(DATA, data)

    def save_tree(self, data: bytes) -> Any:
        return self._inner.save_tree(data)

    def flush(self) -> None:
        self._inner.flush()

    def close(self, *, flush: bool = True) -> None:
        self._inner.close(flush=flush)
