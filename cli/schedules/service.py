"""Wiring: the scheduler, runner and notifier of an invocation's configuration."""

from __future__ import annotations

import os
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
    """The scheduler of ``app``'s configuration, or None without ``[[schedule]]``.
    Raises ConfigError."""
    schedules = parse_schedules(app.config)
    if not schedules:
        return None
    state = state_of(app)
    notifier = Notifier(parse_notify(app.config))
    runner = Runner(coffer_command(app), state)
    if clock is None:
        return Scheduler(schedules, runner, notifier, state)
    return Scheduler(schedules, runner, notifier, state, clock)
