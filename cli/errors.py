"""Errors of the command line. Their exit codes, like every command's, are members of
``store.ExitCode`` (store/errors.py gives each its meaning; README's "Exit codes" lists them).

CliError (1)
├── ConfigError (16)          the configuration (file, environment, options) is unusable
└── PasswordMissing (1)       no password source is set and there is no terminal to ask on
"""

from __future__ import annotations

from store import ExitCode


class CliError(Exception):
    """A failure the command reports in one line."""

    exit_code: int = ExitCode.ERROR


class ConfigError(CliError):
    """The configuration (file, environment or options) is unusable."""

    exit_code = ExitCode.CONFIG


class PasswordMissing(CliError):
    """No password source is set and there is no terminal to ask on."""
