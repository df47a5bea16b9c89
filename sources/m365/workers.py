"""A bounded pool of download workers for one owner.

Tasks are submitted from the owner's thread; at most ``workers + 1`` are
queued or running, so memory stays bounded however large the collection.
:meth:`Workers.drain` waits for every task submitted so far and re-raises the
first error a task let escape (item-level problems are handled inside the
tasks). Thread-safe for one submitting thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class Workers:
    def __init__(self, workers: int, name: str = "coffer-m365") -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(workers + 1)
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()

    def submit(self, task: Callable[[], None]) -> None:
        self._slots.acquire()

        def run() -> None:
            try:
                task()
            finally:
                self._slots.release()

        future = self._executor.submit(run)
        with self._lock:
            self._futures.append(future)
            if len(self._futures) > 256:
                self._reap()

    def _reap(self) -> None:
        done = [f for f in self._futures if f.done()]
        for f in done:
            f.result()  # re-raise early
        self._futures = [f for f in self._futures if not f.done()]

    def drain(self) -> None:
        """Wait for every task so far; re-raise the first escaped error (after all end)."""
        with self._lock:
            futures, self._futures = self._futures, []
        first: BaseException | None = None
        for future in futures:
            try:
                future.result()
            except BaseException as exc:
                if first is None:
                    first = exc
        if first is not None:
            raise first

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
