"""One live status line on standard error (rich), shared by the progress displays.

The line is a :class:`rich.text.Text` built from escaped names (cli/ui/output.py
``shown``), drawn by a console with markup, emoji codes and highlighting off:
a name such as ``[link=...]`` or ``:smile:`` is shown as it is, never
interpreted.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from rich.live import Live
    from rich.text import Text


class LiveLine:
    """A context manager that redraws ``render()`` four times a second on a
    terminal and leaves nothing behind; does nothing when ``_enabled`` is False.
    Subclasses set ``_enabled`` and implement ``render``."""

    _enabled: bool = False
    _live: Live | None = None

    def render(self) -> Text:
        raise NotImplementedError

    def __enter__(self) -> Self:
        if self._enabled:
            # Imported here for start-up cost, not a cycle: rich is about a
            # tenth of a command's imports and scripts (and -q) never draw.
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                self.render(),
                console=Console(stderr=True, markup=False, emoji=False, highlight=False),
                refresh_per_second=4,
                transient=True,
            )
            self._live.__enter__()
            self._live.get_renderable = self.render  # type: ignore[method-assign]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None
