"""An owner lease in Redis: no two jobs of one owner run at once, on any machine.

The repository's owner lock is a ``flock`` in the local cache (store/locks.py):
it keeps two processes of one machine apart, not two machines. The lease
spans machines: ``SET key token NX PX ttl`` takes it, a thread renews it every
third of its lifetime while the job runs, and it is released by comparing the
token (a Lua script, so a lease that expired and was taken by someone else is
never released by its old holder). A holder killed with -9 stops renewing; the
lease expires ``lease_seconds`` later and a redelivered job takes it.

This is the single-instance Redis lock pattern of the Redis documentation
("Distributed Locks with Redis", the correct implementation with a single
instance); Redlock's multi-master variant is not needed: one Redis is the
broker already, and a broker outage stops the run anyway.
"""

from __future__ import annotations

import logging
import os
import threading
from types import TracebackType

import redis

log = logging.getLogger(__name__)

# Renew, or take back a lease that is gone (Redis lost its data: flushed,
# restarted without persistence, failed over): nobody else holds it then, and
# taking it back at once keeps a job enqueued again (watch.py) from running the
# same owner beside this one. A lease someone else holds is lost (0).
_RENEW = """
local held = redis.call('get', KEYS[1])
if held == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
if not held then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


# Leases whose release failed (the broker was down), by key: the lease stays
# in Redis until it lapses, and nobody but this process holds it then. The next
# job of that owner in this process takes it over with its token instead of
# waiting ``lease_seconds`` for it to lapse: a job retried after a broker outage
# would otherwise find its own lease and wait for itself.
_UNRELEASED: dict[str, str] = {}
_UNRELEASED_LOCK = threading.Lock()


class LeaseBusy(Exception):
    """Another job holds this owner's lease."""


def lease_key(tenant: str, kind: str, key: str) -> str:
    return f"coffer:lease:{tenant}:{kind}:{key}"


class OwnerLease:
    """A held lease (context manager). A renewal that finds the lease gone (Redis
    lost its data, or it expired under a stalled process and nobody took it)
    takes it back; ``lost`` is set when someone else holds it. A lease this
    process could not release is taken over by its next lease of that key.
    Raises LeaseBusy when another holds it, redis.RedisError. Thread-safe."""

    def __init__(self, client: redis.Redis, key: str, holder: str, seconds: float) -> None:
        self._client = client
        self.key = key
        self.token = f"{holder}:{os.urandom(8).hex()}"
        self._ms = max(1000, int(seconds * 1000))
        self._stop = threading.Event()
        self.lost = threading.Event()
        with _UNRELEASED_LOCK:
            leftover = _UNRELEASED.pop(key, None)
        if leftover is None:
            if not client.set(key, self.token, nx=True, px=self._ms):
                raise LeaseBusy(key)
        else:
            try:
                taken = client.eval(_RENEW, 1, key, leftover, self._ms)
            except redis.RedisError:
                with _UNRELEASED_LOCK:
                    _UNRELEASED.setdefault(key, leftover)
                raise
            if not taken:
                raise LeaseBusy(key)
            self.token = leftover
        self._thread = threading.Thread(target=self._renew, name="coffer-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self._ms / 3000):
            try:
                renewed = self._client.eval(_RENEW, 1, self.key, self.token, self._ms)
                if not renewed:
                    log.warning("lease %s was lost", self.key)
                    self.lost.set()
                    return
                if renewed == 2:
                    log.warning("lease %s was gone from the broker; taken back", self.key)
            except redis.RedisError as exc:
                # The broker is down or restarting: keep trying; if it stays away
                # longer than the lease, the next renewal finds the lease gone.
                log.info("renewing lease %s: %s", self.key, exc)

    def release(self) -> None:
        """Stop renewing and give the lease back (idempotent; a broker outage
        leaves it to expire)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self._client.eval(_RELEASE, 1, self.key, self.token)
        except redis.RedisError as exc:
            log.info("releasing lease %s: %s (it expires by itself)", self.key, exc)
            with _UNRELEASED_LOCK:
                _UNRELEASED[self.key] = self.token

    def __enter__(self) -> OwnerLease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
