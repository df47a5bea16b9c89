"""Short-lived keys kept alive by renewal: a worker's liveness (heartbeat.py)
and the jobs it has in hand (inhand.py).

A key renewed every ``period`` seconds lives ``3 * period``: two renewals may
be lost (a slow broker, a busy process) before it lapses, and a process killed
with -9 stops renewing, so its keys lapse within ``3 * period``. Redis expires
them: no clock is compared across machines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis

log = logging.getLogger(__name__)


def renew(client: redis.Redis, keys: Iterable[str], period: float, what: str) -> None:
    """Set each of ``keys`` to live ``3 * period`` seconds, in one round trip (not
    a transaction: each key stands alone). A broker error is logged as ``what``
    and not raised: the next renewal brings the keys back. Thread-safe as the
    client is."""
    try:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, "1", px=int(period * 3000))
            pipe.execute()
    except redis.RedisError as exc:
        log.info("%s: %s", what, exc)
