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
  expires: a holder renews its holds every third of SLOT_SECONDS, so a worker
  killed while holding some loses them within SLOT_SECONDS, and a request may
  hold its slot as long as it runs);
  at most ``per_key`` members (4 per mailbox).
- ``coffer:rate:T:BUCKET``: a token bucket (Lua, Redis's clock) per tenant-wide
  rate: the app's global rate, SharePoint's resource units (one per request, a
  floor of what Graph counts), Teams' channel reads.

Each request costs two round trips to Redis: one script checks the pauses of
its scopes, takes the mailbox slot and the tenant's rate tokens at once
(``_ADMIT``), and one gives the slot back. Asking Redis separately for each
(five round trips a request) made a restore job, whose requests are small,
spend more time waiting for Redis than for Graph (issue 15's benchmark, on a
loaded machine). A request that finds a bucket empty reserves the next
token and sleeps until it is due, still one round trip however long it waits.
``remaining`` answers from what this process learnt less
than ``PAUSES_FRESH_SECONDS`` ago: a pause another worker starts is seen at
once by the next admission anyway, since the script checks the pauses.

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

# A mailbox slot whose holder stops renewing it (a worker killed with -9) is
# free again after this long. It was 300 s without renewal, which left the
# mailbox of a killed worker's owner at a standstill for up to five minutes
# when the killed worker held all four slots, just as its job was redelivered.
SLOT_SECONDS = 30.0
POLL_SECONDS = 0.02
# After a failure, Redis is not asked again for this long.
DOWN_SECONDS = 5.0
# How long ``remaining`` trusts what it learnt of a scope's pause.
PAUSES_FRESH_SECONDS = 0.25

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
# Extend holds still held (KEYS: slot keys; ARGV: lifetime ms, then each
# key's token); a hold that has gone (lapsed, or Redis lost it) is not made again.
_RENEW = """
local t = redis.call('time')
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
for i = 1, #KEYS do
  if redis.call('zadd', KEYS[i], 'XX', 'CH', now_ms + tonumber(ARGV[1]), ARGV[i + 1]) > 0 then
    redis.call('pexpire', KEYS[i], ARGV[1])
  end
end
return 1
"""


# One admission (module docstring). KEYS: the pause keys of the request's
# scopes, then its slot key if it has one, then its rate buckets. ARGV: the
# number of pause keys, whether there is a slot key, slots per key, a slot's
# lifetime (ms), the holder's token, the number of buckets, then each
# bucket's rate and burst. Returns {0} (admitted: slot and tokens taken),
# {1, pttl...} (paused: nothing taken; each scope's pause in ms), {2} (no
# free slot: nothing taken) or {3, wait} (admitted, but the request may go
# only ``wait`` seconds from now). A bucket's tokens go below zero: a request
# that finds none reserves the next one to come, so a waiting request asks
# Redis once and sleeps until its turn. It polled before, and with four
# workers waiting for SharePoint's budget the polling cost more than twice the
# CPU of the work itself (docs/performance.md, the 600-user run). A bucket
# holds at most one minute of debt: a request that would wait longer takes
# nothing and is told to come back ({4, wait}), so a queue of waiters cannot
# push the tokens of requests that have not been made yet far into the future.
_ADMIT = """
local np = tonumber(ARGV[1])
local left = {}
local paused = false
for i = 1, np do
  left[i] = redis.call('pttl', KEYS[i])
  if left[i] > 0 then paused = true end
end
if paused then return {1, left} end
local t = redis.call('time')
local k = np
if ARGV[2] == '1' then
  k = k + 1
  local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
  redis.call('zremrangebyscore', KEYS[k], '-inf', now_ms)
  if redis.call('zcard', KEYS[k]) >= tonumber(ARGV[3]) then return {2} end
  redis.call('zadd', KEYS[k], now_ms + tonumber(ARGV[4]), ARGV[5])
  redis.call('pexpire', KEYS[k], ARGV[4])
end
local now = t[1] + t[2] / 1000000
local nb = tonumber(ARGV[6])
local after = {}
local wait = 0
for j = 1, nb do
  local rate = tonumber(ARGV[5 + 2 * j])
  local burst = tonumber(ARGV[6 + 2 * j])
  local state = redis.call('hmget', KEYS[k + j], 'tokens', 'ts')
  local tokens = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now
  after[j] = math.min(burst, tokens + (now - ts) * rate) - 1
  if after[j] < 0 then wait = math.max(wait, -after[j] / rate) end
end
if wait > 60 then
  if ARGV[2] == '1' then redis.call('zrem', KEYS[np + 1], ARGV[5]) end
  return {4, tostring(wait - 60)}
end
for j = 1, nb do
  redis.call('hset', KEYS[k + j], 'tokens', tostring(after[j]), 'ts', tostring(now))
  redis.call('expire', KEYS[k + j], 120)
end
if wait > 0 then return {3, tostring(wait)} end
return {0}
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
        slot_seconds: float = SLOT_SECONDS,
    ) -> None:
        self._client = client
        self._slot_seconds = slot_seconds
        self._renew = client.register_script(_RENEW)
        # The slots this process holds (token -> slot key), renewed by a thread.
        self._held: dict[str, str] = {}
        self._renewer: threading.Thread | None = None
        self._prefix = f"coffer:%s:{tenant}:"
        self._per_key = per_key
        self._rates = RATES if rates is None else rates
        self._warned = threading.Event()
        self._down_until = 0.0
        self._admit = client.register_script(_ADMIT)
        self._lock = threading.Lock()
        # scope -> (when learnt, monotonic; until when it is paused, monotonic)
        self._pauses: dict[str, tuple[float, float]] = {}

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

    def _learn(self, scopes: tuple[str, ...], left_ms: list[int]) -> None:
        now = time.monotonic()
        with self._lock:
            for scope, ms in zip(scopes, left_ms, strict=True):
                self._pauses[scope] = (now, now + max(0, int(ms)) / 1000)

    def remaining(self, scopes: tuple[str, ...]) -> float:
        now = time.monotonic()
        with self._lock:
            known = {s: self._pauses.get(s) for s in scopes}
        stale = tuple(
            s for s, seen in known.items() if seen is None or now - seen[0] > PAUSES_FRESH_SECONDS
        )
        if stale and self._up():
            try:
                with self._client.pipeline(transaction=False) as pipe:
                    for scope in stale:
                        pipe.pttl(self._key("pause", scope))
                    self._learn(stale, [int(ms) for ms in pipe.execute()])
            except redis.RedisError as exc:
                self._down(exc)
        with self._lock:
            until = max((self._pauses.get(s, (0.0, 0.0))[1] for s in scopes), default=0.0)
        return max(0.0, until - time.monotonic())

    def _buckets(self, resource: Resource) -> list[str]:
        return [APP] + [s for s in resource.scopes if s in self._rates and s != APP]

    def acquire(self, resource: Resource) -> object:
        """One ``_ADMIT`` round trip in the usual case. Returns None, holding
        nothing, when a scope is paused (the pause is learnt: ``remaining`` says
        how long); Gates.admit then waits and asks again."""
        token = f"{os.getpid()}:{threading.get_ident()}:{os.urandom(6).hex()}"
        if not self._up():
            return token
        buckets = [b for b in self._buckets(resource) if b in self._rates]
        slot = resource.concurrency is not None
        keys = [self._key("pause", s) for s in resource.scopes]
        if slot:
            keys.append(self._key("slots", str(resource.concurrency)))
        keys += [self._key("rate", b) for b in buckets]
        args: list[str | int | float] = [
            len(resource.scopes), "1" if slot else "0", self._per_key,
            int(self._slot_seconds * 1000), token, len(buckets),
        ]  # fmt: skip
        for bucket in buckets:
            args += list(self._rates[bucket])
        try:
            while True:
                answer = self._admit(keys=keys, args=args)
                code = int(answer[0])
                if code == 1:
                    self._learn(resource.scopes, [int(ms) for ms in answer[1]])
                    return None
                if code == 2:
                    time.sleep(POLL_SECONDS)
                    continue
                if code == 4:  # a minute of debt already: come back when it has shrunk
                    time.sleep(min(float(answer[1]), 30.0))
                    continue
                self._learn(resource.scopes, [0] * len(resource.scopes))  # none paused
                if slot:
                    self._hold(token, keys[len(resource.scopes)])
                if code == 3:
                    wait = float(answer[1])
                    time.sleep(wait)
                    if wait > 1.0:  # a 429 another worker saw while this one waited
                        time.sleep(self.remaining(resource.scopes))
                return token
        except redis.RedisError as exc:
            self._down(exc)
        return token

    def _hold(self, token: str, key: str) -> None:
        with self._lock:
            self._held[token] = key
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew_holds, name="coffer-slot-renewer", daemon=True
                )
                self._renewer.start()

    def _renew_holds(self) -> None:
        """Extend this process's holds every third of their lifetime, for as long
        as the process lives (a daemon: a killed process renews nothing)."""
        while True:
            time.sleep(self._slot_seconds / 3)
            with self._lock:
                held = list(self._held.items())
            if not held or not self._up():
                continue
            try:
                self._renew(
                    keys=[key for _, key in held],
                    args=[int(self._slot_seconds * 1000), *(token for token, _ in held)],
                )
            except redis.RedisError as exc:
                self._down(exc)

    def release(self, resource: Resource, token: object) -> None:
        if token is not None:
            with self._lock:
                self._held.pop(str(token), None)
        if token is None or resource.concurrency is None or not self._up():
            return  # a slot taken before an outage lapses after the slot lifetime
        try:
            self._client.zrem(self._key("slots", resource.concurrency), str(token))
        except redis.RedisError as exc:
            self._down(exc)
