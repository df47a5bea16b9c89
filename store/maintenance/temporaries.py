"""Temporary objects that killed writes left on the backend (``.tmp-*``).

Local directories, SFTP and rclone write an object under a temporary name and
rename it into place; ``kill -9`` between the two leaves the temporary behind,
invisible to listings and to every other command. ``prune`` reclaims those
older than its grace period (a write in progress is seconds old; one a day old
belongs to a process that died; never one younger than an hour, whatever
the grace period), and ``check`` reports them
(store/maintenance/check/structure.py) (a warning: they
waste space, they harm nothing).

Object stores have none: their uploads appear whole or not at all (an
interrupted S3 multipart upload is the bucket's lifecycle rule's business).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from store.backend import Backend, TempObject
from store.errors import ObjectNotFound

DEFAULT_GRACE_NS = 24 * 3600 * 10**9
# Whatever the grace period (prune accepts 0), a temporary younger than this
# may be a write in progress (a slow upload of a pack): never touched.
MIN_AGE_NS = 3600 * 10**9


@dataclass
class Temporaries:
    """Temporary objects found: the stale ones, and how many are recent."""

    stale: list[TempObject] = field(default_factory=list)
    recent: int = 0

    @property
    def stale_bytes(self) -> int:
        return sum(t.size for t in self.stale)


def find_temporaries(
    backend: Backend,
    *,
    grace_ns: int = DEFAULT_GRACE_NS,
    clock: Callable[[], int] = time.time_ns,
) -> Temporaries:
    """List the backend's temporary objects, split by age.

    Stale means older than ``grace_ns`` and at least MIN_AGE_NS. A temporary
    whose backend gives no modification time counts as recent (never deleted
    on doubt). ``clock`` is wall-clock time: the times compared are the
    storage's own.
    """
    now = clock()
    grace_ns = max(grace_ns, MIN_AGE_NS)
    found = Temporaries()
    for temp in backend.temporaries():
        if temp.mtime_ns is not None and now - temp.mtime_ns > grace_ns:
            found.stale.append(temp)
        else:
            found.recent += 1
    return found


def reclaim_temporaries(
    backend: Backend,
    *,
    grace_ns: int = DEFAULT_GRACE_NS,
    clock: Callable[[], int] = time.time_ns,
) -> list[TempObject]:
    """Delete the stale temporary objects; returns those deleted. Idempotent."""
    found = find_temporaries(backend, grace_ns=grace_ns, clock=clock)
    for temp in found.stale:
        try:
            backend.delete_temporary(temp.key)
        except ObjectNotFound:
            continue
    return found.stale


__all__ = ["Temporaries", "find_temporaries", "reclaim_temporaries"]
