"""A progress display on standard error: live on a terminal, silent in scripts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cli.ui.liveline import LiveLine
from cli.ui.output import human_duration, human_size, shown, stderr_is_terminal

if TYPE_CHECKING:
    from rich.text import Text


class Progress(LiveLine):
    """Counts items and bytes from any thread and shows them (thread-safe)."""

    def __init__(self, title: str, *, enabled: bool = True, group_label: str = "owners") -> None:
        self.title = title
        self.group_label = group_label
        self.items = 0
        self.bytes = 0
        self.owners_done = 0
        self.owners_total = 0
        self.throttled_seconds = 0.0
        self.items_total = 0  # known in advance (restore): shown as done/total
        self.eta_source: Callable[[], float | None] | None = None
        self.current = ""
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._enabled = enabled and stderr_is_terminal()
        observer = getattr(_observers, "callback", None)
        if observer is not None:
            observer(self)

    def item(self, name: str, size: int) -> None:
        with self._lock:
            self.items += 1
            self.bytes += size
            self.current = name

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def render(self) -> Text:
        # Imported on first draw (start-up cost: a run that shows no progress
        # never loads rich; cli/ui/liveline.py).
        from rich.text import Text

        elapsed = max(self.elapsed, 1e-6)
        owners = (
            f"{self.group_label} {self.owners_done}/{self.owners_total}  "
            if self.owners_total
            else ""
        )
        waits = f"  throttled {self.throttled_seconds:.0f}s" if self.throttled_seconds else ""
        items = f"{self.items}/{self.items_total}" if self.items_total else f"{self.items}"
        eta = self.eta_source() if self.eta_source is not None else None
        left = f"  ETA {human_duration(eta)}" if eta is not None else ""
        current = shown(self.current[-60:], path=True)
        line = (
            f"{self.title}: {owners}{items} items, {human_size(self.bytes)} "
            f"({human_size(self.bytes / elapsed)}/s){left}{waits}  {current}"
        )
        # Text, not a markup string: "[bold]" in a name stays as it is.
        return Text(line)


# Progress displays made on this thread are announced to the callback set by
# watching(): how the web console follows a restore it runs through the CLI's code.
_observers = threading.local()


@contextmanager
def watching(callback: Callable[[Progress], None]) -> Iterator[None]:
    """Call ``callback`` with every Progress created on this thread inside the block."""
    previous = getattr(_observers, "callback", None)
    _observers.callback = callback
    try:
        yield
    finally:
        _observers.callback = previous
