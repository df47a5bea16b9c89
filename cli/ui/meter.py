"""A progress line with rate and ETA for long reads (check --read-data, repair).

Live on a terminal (standard error), silent otherwise; callbacks may come
from any thread.
"""

from __future__ import annotations

import threading
import time

from rich.text import Text

from cli.ui.liveline import LiveLine
from cli.ui.output import human_duration, human_size, stderr_is_terminal


class Meter(LiveLine):
    """Counts units (packs) and bytes towards known totals; shows rate and ETA."""

    def __init__(self, title: str, unit: str = "packs", *, enabled: bool = True) -> None:
        self.title = title
        self.unit = unit
        self.done = 0
        self.total = 0
        self.bytes_done = 0
        self.bytes_total = 0
        self._first_bytes: int | None = None
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._enabled = enabled and stderr_is_terminal()

    def update(self, done: int, total: int, bytes_done: int = 0, bytes_total: int = 0) -> None:
        with self._lock:
            if self._first_bytes is None:
                # Bytes already done when we start (a resumed run) do not count for the rate.
                self._first_bytes = bytes_done
                self._start = time.monotonic()
            self.done, self.total = done, total
            self.bytes_done, self.bytes_total = bytes_done, bytes_total

    def eta_seconds(self) -> float | None:
        with self._lock:
            elapsed = time.monotonic() - self._start
            moved = self.bytes_done - (self._first_bytes or 0)
            if moved <= 0 or elapsed <= 0:
                return None
            return (self.bytes_total - self.bytes_done) / (moved / elapsed)

    def render(self) -> Text:
        elapsed = max(time.monotonic() - self._start, 1e-6)
        moved = self.bytes_done - (self._first_bytes or 0)
        eta = self.eta_seconds()
        percent = 100.0 * self.bytes_done / self.bytes_total if self.bytes_total else 100.0
        line = (
            f"{self.title}: {self.done}/{self.total} {self.unit}, "
            f"{human_size(self.bytes_done)} of {human_size(self.bytes_total)} ({percent:.0f}%), "
            f"{human_size(moved / elapsed)}/s"
        )
        if eta is not None and self.done < self.total:
            line += f", ETA {human_duration(eta)}"
        return Text(line)
