"""Background services of ``coffer serve``: what runs beside the web pages (restore
jobs today; schedules and notifications register here too).

A service is started once when the server starts and stopped once when it
stops (SIGTERM, Ctrl-C); ``stop`` must return within a few seconds and may be
called without ``start`` having run. Services are started in registration
order and stopped in reverse.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class BackgroundService(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Services:
    """The registry. Not thread-safe: register before the server starts."""

    def __init__(self) -> None:
        self._services: list[BackgroundService] = []
        self._started: list[BackgroundService] = []

    def register(self, service: BackgroundService) -> None:
        if any(s.name == service.name for s in self._services):
            raise ValueError(f"service {service.name!r} is registered twice")
        self._services.append(service)

    def get(self, name: str) -> BackgroundService | None:
        return next((s for s in self._services if s.name == name), None)

    def names(self) -> list[str]:
        return [s.name for s in self._services]

    def start_all(self) -> None:
        for service in self._services:
            service.start()
            self._started.append(service)

    def stop_all(self) -> None:
        while self._started:
            service = self._started.pop()
            try:
                service.stop()
            except Exception:  # one service's failure must not keep the others running
                log.exception("stopping %s failed", service.name)
