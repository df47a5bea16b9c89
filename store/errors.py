"""Errors raised by the repository engine, and the exit codes of every command.

Every error carries the process exit code the command line uses for it (a member
of :class:`ExitCode`, the one table of exit codes: README's "Exit codes" section is
checked against it), and its message is one line meant for an administrator. The
tree::

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
    ├── BackendNotInstalled (18)         the backend's SDK is not installed (names the extra)
    ├── SnapshotNotFound (1)             no snapshot matches the selector
    ├── PathNotFound (1)                 no item at that path in the snapshot
    ├── AlreadyExists (1)                init over an existing repository
    └── CacheUnusable (16)               the local cache directory cannot be created or used

Temporary errors (``TransientBackendError``) are kept apart from permanent ones so
retry wrappers retry exactly those.
"""

from __future__ import annotations

from enum import IntEnum, unique


@unique
class ExitCode(IntEnum):
    """The exit code of the ``coffer`` process, each with its meaning for an
    administrator. Every error class of every package takes its ``exit_code`` from
    here, and nothing else writes an exit number."""

    meaning: str

    def __new__(cls, value: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    OK = 0, "success"
    ERROR = 1, "error (one line on standard error; `--debug` adds the traceback)"
    USAGE = 2, "bad command-line usage"
    PARTIAL = (
        3,
        "partial success: some items were skipped, or an item Microsoft 365 will never "
        "hand out (malware, corrupt) was met for the first time (listed in the report; "
        "later runs exit 0 and keep listing it)",
    )
    REPOSITORY_NOT_FOUND = 10, "no repository at that location"
    WRONG_PASSWORD = 11, "wrong password (the message names the key slots tried)"
    LOCKED = 12, "repository locked, or a backup of the same owner is already running"
    DAMAGED = 13, "the repository is damaged (integrity error)"
    FORMAT_TOO_NEW = 14, "the repository was written by a newer Coffer"
    BACKEND_UNREACHABLE = (
        15,
        "the storage backend, or the scale-out broker, is unreachable (try again)",
    )
    CONFIG = (
        16,
        "configuration error: a configuration file that cannot be read or parsed (named "
        "in the message), a bad value, an unusable cache directory",
    )
    MOUNT_UNAVAILABLE = 17, "FUSE unavailable or the mountpoint is unusable"
    BACKEND_NOT_INSTALLED = (
        18,
        "the repository's storage backend is not installed (the message names the "
        "extra to install, for example `pip install 'coffer[s3]'`)",
    )
    STALLED = (
        19,
        "a scale-out run cannot finish by itself: it made no progress for `[cluster] "
        "stall_timeout` with owners left and no worker serving its queue (the jobs stay "
        "queued; `coffer report RUN` shows the run once workers have run them), or the "
        "broker lost the state of a detached run, or the jobs of some of its owners "
        "(`coffer backup --resume RUN` enqueues those owners again)",
    )
    INTERRUPTED = 130, "interrupted (Ctrl-C, or input ended at a prompt)"


class StoreError(Exception):
    """Root of every error the engine raises."""

    exit_code: int = ExitCode.ERROR


class RepositoryNotFound(StoreError):
    """There is no Coffer repository at the given location."""

    exit_code = ExitCode.REPOSITORY_NOT_FOUND


class WrongPassword(StoreError):
    """The password opened none of the repository's key slots."""

    exit_code = ExitCode.WRONG_PASSWORD


class RepositoryLocked(StoreError):
    """Another process holds a lock this operation needs."""

    exit_code = ExitCode.LOCKED


class OwnerBusy(RepositoryLocked):
    """A backup of the same owner is already running on this machine."""


class IntegrityError(StoreError):
    """Stored bytes failed authentication or hashing; the data is damaged."""

    exit_code = ExitCode.DAMAGED


class BlobMissing(IntegrityError):
    """A snapshot or index refers to a blob that cannot be found."""


class KeySlotDamaged(IntegrityError):
    """The password (or private key) matches a key slot whose sealed keyring is damaged."""


class FormatTooNew(StoreError):
    """The repository was written by a newer version of Coffer."""

    exit_code = ExitCode.FORMAT_TOO_NEW


class BackendError(StoreError):
    """The storage backend failed."""


class ObjectNotFound(BackendError):
    """The named object does not exist on the backend (not worth retrying)."""


class TransientBackendError(BackendError):
    """A temporary failure (network, throttling, server error): try again later."""

    exit_code = ExitCode.BACKEND_UNREACHABLE


class BackendFull(BackendError):
    """The backend has no space left."""


class BackendNotInstalled(StoreError):
    """The library the repository's backend needs (its cloud or SSH SDK) is not
    installed; the message names the extra that installs it."""

    exit_code = ExitCode.BACKEND_NOT_INSTALLED


class SnapshotNotFound(StoreError):
    """No snapshot matches the given selector."""


class PathNotFound(StoreError):
    """No item exists at the given path of the snapshot."""


class AlreadyExists(StoreError):
    """A repository already exists at the location."""


class CacheUnusable(StoreError):
    """The local cache directory cannot be created or used (its location is
    configuration: ``--cache-dir``, ``COFFER_CACHE_DIR``, ``XDG_CACHE_HOME``)."""

    exit_code = ExitCode.CONFIG
