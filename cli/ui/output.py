"""Output helpers: JSON for scripts, tables and sizes for people.

Everything for people goes through :func:`echo` (standard output) or
:func:`note` (standard error), which defang the whole line
(:func:`store.defang`): whatever a name smuggles in, no control sequence
reaches the terminal, whether or not it is one. Listings escape each name
with :func:`shown` first, so the name reads unambiguously (docs/security.md).
JSON (:func:`print_json`) carries names exactly: ``json.dump`` writes non-ASCII
and control characters as ``\\uXXXX`` escapes, so it is terminal-safe too.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from store import defang, printable


def print_json(value: Any) -> None:
    """Write ``value`` as JSON to standard output (nothing else goes there with --json)."""
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def shown(name: str, *, path: bool = False) -> str:
    """``name`` (or a ``/`` path of names, with ``path``) escaped for people
    (:func:`store.printable`): no hidden character, backslashes doubled."""
    return printable(name, path=path)


def echo(line: str = "") -> None:
    """A line for people on standard output, defanged (:func:`store.defang`)."""
    click.echo(defang(line))


def note(message: str) -> None:
    """A line for people, on standard error (never mixed into JSON output),
    defanged (:func:`store.defang`)."""
    print(defang(message), file=sys.stderr, flush=True)


class SafeFormatter(logging.Formatter):
    """Log records defanged: a name in a message cannot drive the terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return defang(super().format(record))
