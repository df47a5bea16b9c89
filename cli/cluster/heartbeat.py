"""Which workers are alive: each ``coffer worker`` keeps a key with a short life.

Celery's own liveness (remote control, heartbeats, gossip) is switched off
(broker.py: fewer moving parts, nothing broadcast), so a worker says it is
alive itself: ``coffer:worker:QUEUE:HOST:PID`` set every ``PERIOD`` seconds to
live ``3 * PERIOD`` (renewal.py). A worker killed with -9 drops out of :func:`live_workers`
within ``3 * PERIOD``; a broker that lost its data has the keys back within
``PERIOD``. No clock is compared across machines: Redis expires the keys.

The coordinator's stall detector (watch.py) reads them: no progress, owners
left and no live worker means nobody will run the jobs.
"""

from __future__ import annotations

import logging
import threading

import redis

from cli.cluster.renewal import renew

log = logging.getLogger(__name__)

PERIOD = 10.0
PREFIX = "coffer:worker"


def _key(queue: str, name: str) -> str:
    return f"{PREFIX}:{queue}:{name}"


class Heartbeat:
    """A thread that keeps this worker's keys alive until :meth:`stop`
    (idempotent; a broker outage is ridden out and the keys come back)."""

    def __init__(
        self, client: redis.Redis, queues: tuple[str, ...], name: str, period: float = PERIOD
    ) -> None:
        self._client = client
        self._keys = tuple(_key(q, name) for q in queues)
        self._period = period
        self._stop = threading.Event()
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="coffer-heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        renew(self._client, self._keys, self._period, "heartbeat")

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            self.beat()

    def stop(self) -> None:
        """Stop beating and drop the keys (a worker that stopped is not alive)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self._client.delete(*self._keys)
        except redis.RedisError as exc:
            log.info("heartbeat: %s (the keys expire by themselves)", exc)


def live_workers(client: redis.Redis, queue: str) -> list[str]:
    """The names (``host:pid``) of the workers serving ``queue`` now. Raises
    redis.RedisError."""
    prefix = f"{PREFIX}:{queue}:"
    return sorted(str(k)[len(prefix) :] for k in client.scan_iter(match=prefix + "*", count=1000))
