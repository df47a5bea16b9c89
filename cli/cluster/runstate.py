"""A run's live counters in Redis: owners done, items, bytes, throttled time, per worker.

Only counters and ids live here (owner ids, snapshot ids, report keys, worker
names ``host:pid``), with an expiry; the full report, with item names, is in
the repository. Keys (``R`` the run id)::

    coffer:run:R          hash  total, epoch, items, bytes, throttled_ms, requests
    coffer:run:R:owners   hash  "kind:key" -> JSON outcome of a finished owner
    coffer:run:R:workers  hash  worker -> owners it finished
    coffer:run:R:active   hash  "kind:key" -> worker running it now
    coffer:run:R:started  hash  "kind:key" -> worker that first started it

``owner_done`` is idempotent: the first outcome recorded for an owner stays
(HSETNX), so a redelivered job that finds its owner finished changes nothing.
``epoch`` is written by the coordinator only (``start``), never by a worker:
when it is missing or another, Redis lost the run's state (restarted without
persistence, flushed, evicted, failed over to an empty replica), even if a
worker's counters have since made the hash again (watch.py).
Every method may raise redis.RedisError (the caller retries).
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis


def owner_field(kind: str, key: str) -> str:
    return f"{kind}:{key}"


class RunState:
    """The counters of run ``run_id`` (thread-safe: Redis serialises)."""

    def __init__(self, client: redis.Redis, run_id: str, expiry_seconds: float) -> None:
        self.client = client
        self.run_id = run_id
        self.key = f"coffer:run:{run_id}"
        self._expiry = int(expiry_seconds)

    def _keys(self) -> tuple[str, ...]:
        return (
            self.key,
            f"{self.key}:owners",
            f"{self.key}:workers",
            f"{self.key}:active",
            f"{self.key}:started",
        )

    def _touch(self, pipe: Any) -> None:
        for key in self._keys():
            pipe.expire(key, self._expiry)

    def start(self, total: int) -> str:
        """Mark the run as started (again, after a loss) with a new epoch; returns it."""
        epoch = os.urandom(8).hex()
        with self.client.pipeline() as pipe:
            pipe.hset(self.key, mapping={"total": total, "epoch": epoch})
            self._touch(pipe)
            pipe.execute()
        return epoch

    def known(self) -> bool:
        """Whether Redis holds the run's state (its epoch): False once Redis lost
        it (or the run's keys expired after ``result_expiry``)."""
        return bool(self.client.hexists(self.key, "epoch"))

    def claim(self, total: int) -> str | None:
        """Mark a run whose state Redis lost as started again with a new epoch,
        unless another process did first (HSETNX: of two concurrent claims, one
        wins). Returns the epoch, or None if the run has one already."""
        epoch = os.urandom(8).hex()
        if not self.client.hsetnx(self.key, "epoch", epoch):
            return None
        with self.client.pipeline() as pipe:
            pipe.hset(self.key, "total", total)
            self._touch(pipe)
            pipe.execute()
        return epoch

    def progress(self, items: int, size: int, throttled: float, requests: int = 0) -> None:
        """Add to the live counters (workers call this about once a second)."""
        with self.client.pipeline() as pipe:
            if items:
                pipe.hincrby(self.key, "items", items)
            if size:
                pipe.hincrby(self.key, "bytes", size)
            if throttled:
                pipe.hincrby(self.key, "throttled_ms", int(throttled * 1000))
            if requests:
                pipe.hincrby(self.key, "requests", requests)
            pipe.expire(self.key, self._expiry)
            pipe.execute()

    def owner_started(self, field: str, worker: str) -> bool:
        """Record that ``worker`` runs the owner now; True if no start of it was
        recorded before in this run (``:started`` keeps the first start for the
        run's lifetime, when ``:active`` and even the outcome are gone)."""
        with self.client.pipeline() as pipe:
            pipe.hset(f"{self.key}:active", field, worker)
            pipe.hsetnx(f"{self.key}:started", field, worker)
            self._touch(pipe)
            first = pipe.execute()[1]
        return bool(first)

    def done(self, field: str) -> dict[str, Any] | None:
        """The recorded outcome of an owner, or None."""
        raw = self.client.hget(f"{self.key}:owners", field)
        return json.loads(raw) if raw else None

    def owner_done(self, field: str, outcome: dict[str, Any]) -> bool:
        """Record an owner's outcome (ids and counters only); False if one was
        recorded already (idempotent)."""
        new = bool(self.client.hsetnx(f"{self.key}:owners", field, json.dumps(outcome)))
        with self.client.pipeline() as pipe:
            pipe.hdel(f"{self.key}:active", field)
            if new:
                pipe.hincrby(f"{self.key}:workers", str(outcome.get("worker", "?")), 1)
            self._touch(pipe)
            pipe.execute()
        return new

    def snapshot(self) -> dict[str, Any]:
        """Everything at once: counters, finished owners, workers, active owners."""
        with self.client.pipeline() as pipe:
            pipe.hgetall(self.key)
            pipe.hgetall(f"{self.key}:owners")
            pipe.hgetall(f"{self.key}:workers")
            pipe.hgetall(f"{self.key}:active")
            counters, owners, workers, active = pipe.execute()
        return {
            "total": int(counters.get("total", 0)),
            "epoch": str(counters.get("epoch", "")),
            "items": int(counters.get("items", 0)),
            "bytes": int(counters.get("bytes", 0)),
            "throttled": int(counters.get("throttled_ms", 0)) / 1000,
            "requests": int(counters.get("requests", 0)),
            "owners": {k: json.loads(v) for k, v in owners.items()},
            "workers": {k: int(v) for k, v in workers.items()},
            "active": dict(active),
        }
