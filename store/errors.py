"""Errors raised by the repository engine.

Every error carries the process exit code the command line uses for it, and its
message is one line meant for an administrator. The tree::

    StoreError (1)
    ├── RepositoryNotFound (10)          no repository at that location
    ├── WrongPassword (11)               no key slot opened with the password
    ├── RepositoryLocked (12)            another process holds what we need
    │   └── OwnerBusy (12)               a backup of the same owner is running
    ├── IntegrityError (13)              stored bytes fail authentication or hashing
    │   ├── BlobMissing (13)             an index or tree names a blob that is gone
    │   └── KeySlotDamaged (13)          the secret opened a slot whose keyring box is damaged
    ├── FormatTooNew (14)                written by a newer Coffer
    ├── BackendError (1)                 storage failed
    │   ├── ObjectNotFound (1)           the named object does not exist (permanent)
    │   ├── TransientBackendError (15)   try again: network, throttling, 5xx
    │   └── BackendFull (1)              no space left at the destination
    ├── SnapshotNotFound (1)             no snapshot matches the selector
    ├── PathNotFound (1)                 no item at that path in the snapshot
    ├── AlreadyExists (1)                init over an existing repository
    └── CacheUnusable (16)               the local cache directory cannot be created or used

Temporary errors (``TransientBackendError``) are kept apart from permanent ones so
retry wrappers retry exactly those.
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of every error the engine raises."""

    exit_code = 1


class RepositoryNotFound(StoreError):
    """There is no Coffer repository at the given location."""

    exit_code = 10


class WrongPassword(StoreError):
    """The password opened none of the repository's key slots."""

    exit_code = 11


class RepositoryLocked(StoreError):
    """Another process holds a lock this operation needs."""

    exit_code = 12


class OwnerBusy(RepositoryLocked):
    """A backup of the same owner is already running on this machine."""


class IntegrityError(StoreError):
    """Stored bytes failed authentication or hashing; the data is damaged."""

    exit_code = 13


class BlobMissing(IntegrityError):
    """A snapshot or index refers to a blob that cannot be found."""


class KeySlotDamaged(IntegrityError):
    """The password (or private key) matches a key slot whose sealed keyring is damaged."""


class FormatTooNew(StoreError):
    """The repository was written by a newer version of Coffer."""

    exit_code = 14


class BackendError(StoreError):
    """The storage backend failed."""


class ObjectNotFound(BackendError):
    """The named object does not exist on the backend (not worth retrying)."""


class TransientBackendError(BackendError):
    """A temporary failure (network, throttling, server error): try again later."""

    exit_code = 15


class BackendFull(BackendError):
    """The backend has no space left."""


class SnapshotNotFound(StoreError):
    """No snapshot matches the given selector."""


class PathNotFound(StoreError):
    """No item exists at the given path of the snapshot."""


class AlreadyExists(StoreError):
    """A repository already exists at the location."""


class CacheUnusable(StoreError):
    """The local cache directory cannot be created or used (its location is
    configuration: ``--cache-dir``, ``COFFER_CACHE_DIR``, ``XDG_CACHE_HOME``)."""

    exit_code = 16
