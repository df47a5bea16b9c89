"""The storage backend interface: raw objects, no cryptography.

A backend stores immutable objects under slash-separated keys such as
``data/3f/3f9a...``. Everything above it (encryption, packing, indexes) is the
engine's business; everything below it (files, S3, Azure, ...) is the backend's.

Contract shared by every implementation (checked by the conformance suite in
``tests/store/backend_conformance.py``):

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

Implementations must be safe to call from several threads at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from store.errors import ObjectNotFound


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object: its key and size in bytes."""

    key: str
    size: int


class Backend(ABC):
    """Raw object storage. No crypto here. Every method is safe to retry."""

    @property
    @abstractmethod
    def location(self) -> str:
        """A human-readable location (never containing credentials)."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (replacing any previous object)."""

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
