"""Schedules, hooks and notifications of ``coffer serve`` (docs/operations.md).

Modules, one job each: config (the ``[[schedule]]`` and ``[notify]`` tables),
crontimes (next fire times, by croniter), state (the persisted last runs, the
per-schedule run lock), hooks (pre/post commands), runner (one run: a
``coffer`` child process), notify (e-mail and webhooks from a queue), scheduler
(the background service), service (wiring them from an App).
"""

from cli.schedules.config import NotifySettings, Schedule, parse_notify, parse_schedules
from cli.schedules.notify import Message, Notifier
from cli.schedules.runner import CofferCommand, Runner, RunResult
from cli.schedules.scheduler import Scheduler
from cli.schedules.state import StateFile, state_dir

__all__ = [
    "CofferCommand",
    "Message",
    "Notifier",
    "NotifySettings",
    "RunResult",
    "Runner",
    "Schedule",
    "Scheduler",
    "StateFile",
    "parse_notify",
    "parse_schedules",
    "state_dir",
]
