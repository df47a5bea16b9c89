"""Wiring: the scheduler, runner and notifier of an invocation's configuration."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from cli.app import App
from cli.schedules.config import parse_notify, parse_schedules
from cli.schedules.notify import Notifier
from cli.schedules.runner import CofferCommand, Runner
from cli.schedules.scheduler import Scheduler
from cli.schedules.state import StateFile, state_dir


def coffer_command(app: App) -> CofferCommand:
    """How children of this invocation start: its configuration file, cache
    directory and repository option; the password read once, handed over by pipe."""
    password: bytes | None = None

    def get_password() -> bytes:
        nonlocal password
        if password is None:
            password = app.password(target=app.target())
        return password

    return CofferCommand(
        config=app.config.path,
        cache_dir=app.cache_root(),
        repo=app.repo_option or os.environ.get("COFFER_REPO"),
        password=get_password,
    )


def state_of(app: App) -> StateFile:
    return StateFile(state_dir(app.cache_root()))


def build_scheduler(app: App, clock: Callable[[], float] | None = None) -> Scheduler | None:
    """The scheduler of ``app``'s configuration, or None without ``[[schedule]]``
    or ``[notify.summary]``.
    Raises ConfigError."""
    schedules = parse_schedules(app.config)
    settings = parse_notify(app.config)
    if not schedules and settings.summary is None:
        return None
    state = state_of(app)
    command = coffer_command(app)
    # Read now, in the foreground: a prompt (no file, a terminal) must not come
    # from a scheduler thread in the middle of the night. Raises PasswordMissing.
    command.password()
    runner = Runner(command, state)
    return Scheduler(
        schedules, runner, Notifier(settings), state, clock or time.time, settings.summary
    )
