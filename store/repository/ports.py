"""The parts of an open repository that the pieces beneath Repository use.

:mod:`~store.repository.blobwriter`, :mod:`~store.repository.blobread` and
:mod:`~store.repository.marks` work on an open repository, and
:class:`~store.repository.repository.Repository` uses all three (its
``blob_writer``, its batched chunk loads, the marked-pack fallback of
``locate``). Each of them names here, as a protocol, the part of a repository
it needs and imports this module, not the Repository's: the imports point one
way, and a Repository is each of these protocols (mypy checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from store.backend import Backend
from store.cache.blobindex import BlobIndex, BlobLocation
from store.format.config import RepoConfig
from store.format.index import PackRecord
from store.format.keys import Keyring
from store.ids import BlobId, IndexId


class SealedObjects(Protocol):
    """Sealed objects of one repository (what marks need)."""

    @property
    def backend(self) -> Backend: ...

    def save_object(self, kind: str, key: str, plaintext: bytes) -> None:
        """Seal ``plaintext`` under the current key and store it at ``key``."""
        ...

    def load_object(self, kind: str, key: str) -> bytes:
        """Read and open a sealed object. Raises ObjectNotFound, IntegrityError."""
        ...

    def object_id(self, plaintext: bytes) -> bytes:
        """The keyed hash naming ``plaintext``."""
        ...


class BlobSource(Protocol):
    """Where blobs are and the keys to open them (what the batched reader needs)."""

    @property
    def backend(self) -> Backend: ...

    @property
    def keyring(self) -> Keyring: ...

    def locate(self, blob_id: BlobId) -> BlobLocation:
        """Where a blob is. Raises BlobMissing when no index names it."""
        ...

    def locate_many(self, blob_ids: Sequence[BlobId]) -> list[BlobLocation]:
        """:meth:`locate` of each, in order. Raises BlobMissing."""
        ...


class PackSink(Protocol):
    """Where new packs and their index objects go (what the blob writer needs)."""

    @property
    def backend(self) -> Backend: ...

    @property
    def config(self) -> RepoConfig: ...

    @property
    def keyring(self) -> Keyring: ...

    @property
    def blob_index(self) -> BlobIndex: ...

    def write_index(
        self, records: list[PackRecord], supersedes: list[IndexId] | None = None
    ) -> IndexId:
        """Write an index object for uploaded packs and merge it locally."""
        ...


__all__ = ["BlobSource", "PackSink", "SealedObjects"]
