"""The storage backend interface: raw objects, no cryptography.

A backend stores immutable objects under slash-separated keys such as
``data/3f/3f9a...``. Everything above it (encryption, packing, indexes) is the
engine's business; everything below it (files, S3, Azure, ...) is the backend's.

Contract shared by every implementation (checked by the conformance suite in
``tests/store/support/backend_conformance.py``):

- ``put`` is atomic: a reader sees either no object or the whole object, never
  a prefix. Writing a key that exists replaces it atomically. Safe to retry.
- ``get`` returns exactly the requested range; a range running past the end is
  cut at the end. Missing keys raise :class:`ObjectNotFound`.
- ``list`` yields every key that starts with ``prefix`` (recursively), with its
  size, in no particular order. It never yields partially written objects.
- ``delete`` is idempotent: deleting a missing key is not an error.
- ``stat`` returns the size, or raises :class:`ObjectNotFound`.
- Temporary failures raise :class:`TransientBackendError` (the retry wrapper
  retries exactly those); a full destination raises :class:`BackendFull`.

Optional capabilities (a backend that lacks one says so; a wrapper exposes
the backend it wraps as ``inner``, and these pass through to it unless the
wrapper overrides them):

- ``create`` stores an object only if its name is free, atomically against
  other creators (the maintenance lock, store/maintenance/maintlock.py). A backend that
  cannot promise it raises :class:`ConditionalWriteUnsupported`; remote ones
  check once per instance that the server really refuses the second create
  (:class:`CreateProbe`), since some S3-compatible servers and emulators
  ignore the precondition.
- ``temporaries`` lists the temporary objects that writes leave behind when
  killed (``.tmp-<random>`` on local disks, SFTP and rclone), which ``list``
  never shows; ``delete_temporary`` removes one (prune reclaims stale ones).

Implementations must be safe to call from several threads at once.
"""

from __future__ import annotations

import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from store.errors import BackendError, ObjectNotFound
from store.names import LOCK_PROBE

# Temporary objects of interrupted writes start with this (local, SFTP, rclone).
TEMP_PREFIX = ".tmp-"


class ConditionalWriteUnsupported(BackendError):
    """This backend cannot create an object only if its name is free."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object: its key and size in bytes."""

    key: str
    size: int


@dataclass(frozen=True, slots=True)
class TempObject:
    """A temporary object a killed write left: its key, size and modification
    time (ns since the epoch; None when the backend does not say)."""

    key: str
    size: int
    mtime_ns: int | None


class Backend(ABC):
    """Raw object storage. No crypto here. Every method is safe to retry."""

    @property
    @abstractmethod
    def location(self) -> str:
        """A human-readable location (never containing credentials)."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (replacing any previous object)."""

    def put_buffer(self, key: str, data: bytearray) -> None:
        """:meth:`put` of a buffer the caller hands over: it neither changes
        nor reads it until this returns, and may drop it afterwards.

        For packs (store/format/pack.py builds them in one bytearray). A
        backend that can write the buffer as it is overrides this and saves
        the copy to ``bytes`` that this default makes for the client
        libraries that want bytes: a 16 MiB pack held twice was a quarter of
        a backup's peak RSS (docs/performance.md, "A backup's memory").
        Same guarantees and errors as :meth:`put`.
        """
        self.put(key, bytes(data))

    @abstractmethod
    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """Return ``length`` bytes of the object from ``offset`` (all the rest if None).

        Raises ObjectNotFound when the key does not exist.
        """

    @abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix``, in no given order."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error (idempotent)."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Return the object's size. Raises ObjectNotFound when missing."""

    def exists(self, key: str) -> bool:
        """True when the object exists."""
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections; the backend must not be used afterwards."""

    def _wrapped(self) -> Backend | None:
        inner = getattr(self, "inner", None)
        return inner if isinstance(inner, Backend) else None

    def create(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key`` only if no object has that name.

        True when this call created it; False when an object was already
        there (left unchanged). Of several concurrent creators of one name, at
        most one gets True. A retry after a transient failure may answer False
        for the object the failed attempt did create: callers that must know
        read it back. Raises ConditionalWriteUnsupported when the backend (or
        its server) cannot promise this.
        """
        inner = self._wrapped()
        if inner is not None:
            return inner.create(key, data)
        raise ConditionalWriteUnsupported(
            f"{self.location} offers no create-if-absent (conditional) writes"
        )

    def temporaries(self) -> Iterator[TempObject]:
        """Yield the temporary objects killed writes left (none on object stores,
        whose uploads appear whole or not at all)."""
        inner = self._wrapped()
        if inner is not None:
            yield from inner.temporaries()

    def delete_temporary(self, key: str) -> None:
        """Remove a temporary object (idempotent). Raises ValueError for a key
        that does not name a temporary object."""
        if not key.rpartition("/")[2].startswith(TEMP_PREFIX):
            raise ValueError(f"{key!r} is not a temporary object")
        inner = self._wrapped()
        if inner is not None:
            inner.delete_temporary(key)
        else:
            self.delete(key)


class CreateProbe:
    """Checks once per backend instance that its server honours create-if-absent.

    Some servers accept a conditional write and ignore the condition (several
    S3-compatible stores, the GCS emulator): the probe creates one object
    twice and must see the second refused. Thread-safe; a transient error
    during the probe propagates and the next call probes again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._honoured: bool | None = None

    def require(
        self,
        create_once: Callable[[str, bytes], bool],
        delete: Callable[[str], None],
        where: str,
    ) -> None:
        """Raise ConditionalWriteUnsupported unless ``create_once`` is honoured."""
        with self._lock:
            if self._honoured is None:
                # Three levels deep: if a crash leaves it, check shows it as an
                # unknown object (a warning), not as a damaged lock.
                key = f"{LOCK_PROBE}create-{secrets.token_hex(8)}"
                try:
                    first = create_once(key, b"first")
                    second = create_once(key, b"second")
                finally:
                    delete(key)
                self._honoured = first and not second
        if not self._honoured:
            raise ConditionalWriteUnsupported(
                f"{where} accepted a create-if-absent write over an existing object: "
                "its server ignores the precondition"
            )


def validate_key(key: str) -> None:
    """Refuse keys that could escape a backend's namespace.

    Keys are produced by the engine, never by users, so a bad key is a bug:
    raises ValueError.
    """
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or "\x00" in key
        or any(part in ("", ".", "..") for part in key.split("/"))
    ):
        raise ValueError(f"invalid object key {key!r}")
