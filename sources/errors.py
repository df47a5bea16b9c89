"""Errors of the sources package (Microsoft 365 and local folders).

SourceError (1)
├── SourceUnavailable (1)     the source cannot be read at all (missing folder, ...)
├── RestoreTargetError (1)    the restore target is unusable (not a directory, ...)
└── RestoreWriterFailed (1)   the restore's writer process died (the restore stopped)
"""

from __future__ import annotations

from store import ExitCode


class SourceError(Exception):
    """Root of the errors raised by sources."""

    exit_code: int = ExitCode.ERROR


class SourceUnavailable(SourceError):
    """The source cannot be read at all."""


class RestoreTargetError(SourceError):
    """The restore target cannot be used."""


class RestoreWriterFailed(SourceError):
    """The restore's writer process died or broke its protocol: the restore
    stopped (what it wrote stays; running it again finishes it)."""
