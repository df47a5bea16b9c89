"""Which owners of a run have no job anywhere: not done, not in hand, not queued.

Every owner of a run is, at every moment, done (its outcome in the run's hash,
runstate.py), in a live worker's hands (inhand.py), or queued (a message in
the broker's list). An owner in none of them was lost: Redis lost the list
(deleted, restored from a snapshot taken before the enqueue, a replica
without it), or Celery lost the message (popped just before the broker went
down, held by a consumer whose connection broke, a retry that could not be
published), and nothing brings it back before Celery's visibility timeout
(an hour by default), if at all.

A message is briefly in none of these places between the worker's pop and
the start of its task, so one look is not proof: :class:`Accounting` calls an
owner lost only when two looks ``settle`` seconds apart both miss it (and it
is not done at the second). Enqueueing an owner again when it was not lost
costs a redelivery, nothing more: jobs are idempotent and the owner lease
keeps two of one owner apart (jobs.py).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis

from cli.cluster.inhand import in_hand
from cli.cluster.runstate import owner_field

CHUNK = 500


def _field_of(raw: str, run: str) -> str | None:
    """The owner field of a queued Celery message of run ``run``, or None (another
    run's, or not ours: anything may be in a shared queue)."""
    try:
        envelope = json.loads(raw)
        args = json.loads(base64.b64decode(envelope["body"]))[0]
        body = args[0]
        if body.get("run") != run:
            return None
        owner = body["owner"]
        return owner_field(str(owner["kind"]), str(owner["key"]))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


def queued(client: redis.Redis, queue: str, run: str) -> set[str]:
    """The owners of run ``run`` with a message in ``queue`` (read in chunks; a
    message the workers take meanwhile may be missed: hence two looks).
    Raises redis.RedisError."""
    found: set[str] = set()
    start = 0
    while True:
        chunk: list[Any] = list(client.lrange(queue, start, start + CHUNK - 1))
        for raw in chunk:
            field = _field_of(raw if isinstance(raw, str) else raw.decode(), run)
            if field is not None:
                found.add(field)
        if len(chunk) < CHUNK:
            return found
        start += CHUNK


def unaccounted(
    client: redis.Redis, queue: str, run: str, fields: Iterable[str], done: Iterable[str]
) -> set[str]:
    """The owners of ``fields`` neither done, in hand nor queued, at one look.
    Raises redis.RedisError."""
    left = set(fields) - set(done)
    if not left:
        return set()
    left -= in_hand(client, run, sorted(left))
    if not left:
        return set()
    return left - queued(client, queue, run)


class Accounting:
    """Two looks ``settle`` seconds apart, for one run (not thread-safe: one caller).

    ``look(done)`` returns the owners missed by this look and the previous one
    (``settle`` seconds or more before) and not in ``done``: lost. After it
    returns some, they count as found again (the caller enqueues them), so an
    owner is enqueued again at most once per two looks."""

    def __init__(
        self,
        client: redis.Redis,
        queue: str,
        run: str,
        fields: Iterable[str],
        settle: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._queue = queue
        self._run = run
        self._fields = sorted(set(fields))
        self.settle = settle
        self._clock = clock
        self._last: float | None = None
        self._missed: set[str] = set()

    @property
    def suspects(self) -> set[str]:
        """The owners the last look missed (lost if the next one misses them too)."""
        return set(self._missed)

    def due(self) -> bool:
        """Whether a look is due (``settle`` seconds since the last)."""
        return self._last is None or self._clock() - self._last >= self.settle

    def look(self, done: Iterable[str]) -> set[str]:
        """One look (see the class docstring). Raises redis.RedisError."""
        finished = set(done)
        missed = unaccounted(self._client, self._queue, self._run, self._fields, finished)
        lost = (missed & self._missed) - finished
        self._missed = missed - lost
        self._last = self._clock()
        return lost
