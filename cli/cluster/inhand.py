"""Which owners' jobs a live worker has in hand: one short-lived key per job.

A job is somewhere at every moment of a run: queued (in the broker's list),
in a worker's hands (from the moment its task starts until it ends, retries
and lease waits included), or done (its outcome in the run's hash). What is
in none of these was lost: by Redis (the list deleted, restored from a
snapshot older than the enqueue, failed over), or by Celery (a message
popped while the broker went down, a message held by a consumer whose
connection broke, a retry that could not be published). Celery's own answer
for a lost delivery is the visibility timeout (an hour by default); the
coordinator's is to look (accounting.py) and enqueue the owner again.

The worker marks a job ``coffer:run:RUN:hand:KIND:KEY`` for as long as the
task runs: set when it starts, renewed every ``PERIOD`` seconds to live
``3 * PERIOD`` (renewal.py), deleted when it ends. A worker killed with -9 stops renewing;
its keys lapse within ``3 * PERIOD``. No clock is compared across machines:
Redis expires the keys.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator

import redis

from cli.cluster.renewal import renew

log = logging.getLogger(__name__)

PERIOD = 10.0


def hand_key(run: str, field: str) -> str:
    return f"coffer:run:{run}:hand:{field}"


class InHand:
    """The jobs this worker process has in hand, kept alive in Redis by one
    thread until :meth:`stop`. Thread-safe; broker outages are ridden out (the
    keys come back at the next renewal)."""

    def __init__(self, client: redis.Redis, period: float = PERIOD) -> None:
        self._client = client
        self._period = period
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}  # key -> jobs holding it (a redelivery beside)
        # Held across a renewal (copy and set) and across a job's end (pop and
        # delete), so a renewal that copied a key before its job ended never
        # sets it again after the delete: the ended job would look in hand
        # until the key lapsed (3 periods: 30 s in production).
        self._renewing = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="coffer-inhand", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def holding(self, run: str, field: str) -> Iterator[None]:
        """Mark the job of ``field`` in run ``run`` in hand while the block runs."""
        key = hand_key(run, field)
        with self._lock:
            self._held[key] = self._held.get(key, 0) + 1
        self._set([key])
        try:
            yield
        finally:
            with self._renewing:
                with self._lock:
                    left = self._held.pop(key) - 1
                    if left:
                        self._held[key] = left
                if not left:
                    try:
                        self._client.delete(key)
                    except redis.RedisError as exc:
                        log.info("in hand: %s (the key expires by itself)", exc)

    def _set(self, keys: Iterable[str]) -> None:
        renew(self._client, keys, self._period, "in hand")

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            with self._renewing:
                with self._lock:
                    keys = list(self._held)
                if keys:
                    self._set(keys)

    def stop(self) -> None:
        """Stop renewing (idempotent; the keys of jobs still held lapse)."""
        self._stop.set()
        self._thread.join(timeout=5)


def in_hand(client: redis.Redis, run: str, fields: Iterable[str]) -> set[str]:
    """Which of ``fields`` some live worker has in hand in run ``run``.
    Raises redis.RedisError."""
    wanted = list(fields)
    if not wanted:
        return set()
    with client.pipeline(transaction=False) as pipe:
        for field in wanted:
            pipe.exists(hand_key(run, field))
        found = pipe.execute()
    return {field for field, there in zip(wanted, found, strict=True) if there}
