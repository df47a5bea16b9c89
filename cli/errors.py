"""Errors of the command line and the exit codes every command shares.

0  success                    3  partial success (some items skipped or failed)
1  error                      2  usage error (bad options)
10 repository missing         11 wrong password
12 repository locked / owner busy
13 repository damaged        14 repository format too new
15 backend unreachable       16 configuration error
17 FUSE unavailable or mountpoint unusable
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure the command reports in one line."""

    exit_code = EXIT_ERROR


class ConfigError(CliError):
    """The configuration (file, environment or options) is unusable."""

    exit_code = 16


class PasswordMissing(CliError):
    """No password source is set and there is no terminal to ask on."""
