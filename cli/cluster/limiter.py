"""Graph's throttling, shared by every worker through Redis (the SharedGates of
sources/m365/graph/throttle.py).

Graph's limits are per app and tenant, not per process
(learn.microsoft.com/graph/throttling-limits): a mailbox takes at most 4
concurrent requests from the app, SharePoint counts resource units per app
and tenant, Teams' channel messages 20 requests per second per app and
tenant, and a 429 whose scope is the app concerns every request of the app.
So their state lives in Redis, keyed by tenant:

- ``coffer:pause:T:SCOPE``: a pause, as a key whose time to live is the pause
  (extended by a Lua script, never shortened). Every worker's requests in the
  scope wait it out: one 429 with Retry-After pauses the whole cluster.
- ``coffer:slots:T:KEY``: a sorted set of slot holders (score: when the hold
  expires, so a worker killed while holding one loses it after SLOT_SECONDS);
  at most ``per_key`` members (4 per mailbox).
- ``coffer:rate:T:BUCKET``: a token bucket (Lua, Redis's clock) per tenant-wide
  rate: the app's global rate, SharePoint's resource units (one per request, a
  floor of what Graph counts), Teams' channel reads.

When Redis cannot be reached the limiter admits (the local gates still hold
the per-process limits) and logs once: a broker outage must not stall a run
that Graph itself is not throttling.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import redis

from sources.m365.graph.throttle import APP, MAILBOX_CONCURRENCY, Resource

log = logging.getLogger(__name__)

# A request holding a mailbox slot longer than this (a stalled download) loses
# it; long enough for any single Graph request Coffer sends.
SLOT_SECONDS = 300.0
POLL_SECONDS = 0.02
# After a failure, Redis is not asked again for this long.
DOWN_SECONDS = 5.0

# Tenant-wide rates (requests per second, burst) from throttling-limits.md:
# global 130,000 per 10 s per app; SharePoint 1,200 resource units per minute
# for tenants up to 1,000 licences (the smallest tier; [cluster]
# sharepoint_units_per_minute sets a larger tenant's); Teams channel messages
# 20 per second per app and tenant.
RATES: dict[str, tuple[float, float]] = {
    APP: (13_000.0, 13_000.0),
    "sharepoint": (20.0, 100.0),
    "teams": (20.0, 20.0),
}


def rates_for(sharepoint_units_per_minute: float) -> dict[str, tuple[float, float]]:
    """RATES with the tenant's SharePoint budget (burst: five seconds' worth)."""
    per_second = sharepoint_units_per_minute / 60
    return {**RATES, "sharepoint": (per_second, max(1.0, per_second * 5))}


_PAUSE = """
local left = redis.call('pttl', KEYS[1])
if left < tonumber(ARGV[1]) then
  redis.call('set', KEYS[1], '1', 'px', ARGV[1])
end
return 1
"""
_SLOT = """
local t = redis.call('time')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
if redis.call('zcard', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_BUCKET = """
local t = redis.call('time')
local now = t[1] + t[2] / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('hmget', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('hset', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('expire', KEYS[1], 60)
return tostring(wait)
"""


class RedisGates:
    """The shared gates of one tenant (see the module docstring). Thread-safe."""

    def __init__(
        self,
        client: redis.Redis,
        tenant: str,
        *,
        per_key: int = MAILBOX_CONCURRENCY,
        rates: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        self._client = client
        self._prefix = f"coffer:%s:{tenant}:"
        self._per_key = per_key
        self._rates = RATES if rates is None else rates
        self._warned = threading.Event()
        self._down_until = 0.0

    def _key(self, kind: str, name: str) -> str:
        return (self._prefix % kind) + name

    def _up(self) -> bool:
        """False while a recent failure says Redis is away: requests are not
        delayed by a connection attempt each (a circuit breaker)."""
        return time.monotonic() >= self._down_until

    def _down(self, exc: redis.RedisError) -> None:
        self._down_until = time.monotonic() + DOWN_SECONDS
        if not self._warned.is_set():
            self._warned.set()
            log.warning("shared throttling unavailable (%s): limiting this worker only", exc)

    def pause(self, scope: str, seconds: float) -> None:
        if seconds <= 0 or not self._up():
            return
        try:
            self._client.eval(_PAUSE, 1, self._key("pause", scope), int(seconds * 1000) + 1)
        except redis.RedisError as exc:
            self._down(exc)

    def remaining(self, scopes: tuple[str, ...]) -> float:
        if not self._up():
            return 0.0
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for scope in scopes:
                    pipe.pttl(self._key("pause", scope))
                left = pipe.execute()
        except redis.RedisError as exc:
            self._down(exc)
            return 0.0
        return max((int(ms) for ms in left), default=0) / 1000 if left else 0.0

    def _rate(self, resource: Resource) -> None:
        buckets = [APP] + [s for s in resource.scopes if s in self._rates and s != APP]
        for bucket in buckets:
            if bucket not in self._rates:
                continue
            rate, burst = self._rates[bucket]
            while True:
                wait = float(self._client.eval(_BUCKET, 1, self._key("rate", bucket), rate, burst))
                if wait <= 0:
                    break
                time.sleep(min(wait, 1.0))

    def acquire(self, resource: Resource) -> object:
        token = f"{os.getpid()}:{threading.get_ident()}:{os.urandom(6).hex()}"
        if not self._up():
            return token
        try:
            if resource.concurrency is not None:
                key = self._key("slots", resource.concurrency)
                ms = int(SLOT_SECONDS * 1000)
                while not self._client.eval(_SLOT, 1, key, self._per_key, ms, token):
                    time.sleep(POLL_SECONDS)
            self._rate(resource)
        except redis.RedisError as exc:
            self._down(exc)
        return token

    def release(self, resource: Resource, token: object) -> None:
        if resource.concurrency is None or not self._up():
            return  # a slot taken before an outage lapses after SLOT_SECONDS
        try:
            self._client.zrem(self._key("slots", resource.concurrency), str(token))
        except redis.RedisError as exc:
            self._down(exc)
