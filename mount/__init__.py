"""Read-only FUSE view of a repository (pyfuse3 + trio).

The command line calls :func:`mount_repository`; the layout and every name in
it come from :class:`store.VirtualFS` (shared with ``coffer ls`` and restore),
and :class:`Operations` is the thin FUSE layer over it. See docs/mount.md.
"""

from mount.errors import (
    FuseUnavailable,
    MountError,
    MountpointBusy,
    MountpointMissing,
    MountpointNotDirectory,
    MountpointNotEmpty,
    errno_for,
)
from mount.operations import Operations
from mount.runner import DEFAULT_REFRESH_SECONDS, check_mountpoint, mount_repository

__all__ = [
    "DEFAULT_REFRESH_SECONDS",
    "FuseUnavailable",
    "MountError",
    "MountpointBusy",
    "MountpointMissing",
    "MountpointNotDirectory",
    "MountpointNotEmpty",
    "Operations",
    "check_mountpoint",
    "errno_for",
    "mount_repository",
]
