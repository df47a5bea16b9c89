"""Errors of the mount, and the one place engine errors become errno values.

::

    MountError (17)                  the mount could not start; one line for the administrator
    ├── MountpointMissing (17)       the mountpoint does not exist
    ├── MountpointNotDirectory (17)  it is not a directory
    ├── MountpointNotEmpty (17)      it holds files
    ├── MountpointBusy (17)          something is mounted there already (or a dead mount)
    └── FuseUnavailable (17)         no /dev/fuse, no fusermount3, or the kernel refused

While mounted, nothing raises to the kernel but ``pyfuse3.FUSEError``:
:func:`errno_for` maps every other exception (and logs what an administrator
needs to see).
"""

from __future__ import annotations

import errno
import logging

from store import (
    BackendError,
    ExitCode,
    IntegrityError,
    PathNotFound,
    SnapshotNotFound,
    StoreError,
    TransientBackendError,
)

log = logging.getLogger("mount")


class MountError(Exception):
    """The filesystem could not be mounted."""

    exit_code: int = ExitCode.MOUNT_UNAVAILABLE


class MountpointMissing(MountError):
    """The mountpoint does not exist."""


class MountpointNotDirectory(MountError):
    """The mountpoint is not a directory."""


class MountpointNotEmpty(MountError):
    """The mountpoint is not empty."""


class MountpointBusy(MountError):
    """Something is already mounted at the mountpoint."""


class FuseUnavailable(MountError):
    """FUSE cannot be used on this machine (or by this user)."""


def errno_for(exc: BaseException, what: str) -> int:
    """The errno for ``exc``, raised while handling ``what`` (a path or an inode).

    Not found -> ENOENT (not logged: tools probe for names all the time);
    damaged or missing data -> EIO, logged with the engine's message, which
    names the blob and pack; a backend failure -> EIO (EAGAIN would make some
    tools spin), logged; anything unexpected -> EIO, logged with its traceback.
    """
    if isinstance(exc, PathNotFound | SnapshotNotFound):
        return errno.ENOENT
    if isinstance(exc, IntegrityError):
        log.error("%s: damaged repository data: %s", what, exc)
        return errno.EIO
    if isinstance(exc, TransientBackendError | BackendError):
        log.error("%s: storage failed: %s", what, exc)
        return errno.EIO
    if isinstance(exc, StoreError):
        log.error("%s: %s", what, exc)
        return errno.EIO
    log.error("%s: unexpected error", what, exc_info=exc)
    return errno.EIO
