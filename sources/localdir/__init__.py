"""Restoring any snapshot into a local directory, safely (``coffer restore --to-dir``).

Not part of the local-folder source (sources/folder/, which backs up a
directory tree): every kind of snapshot, a folder's or a Microsoft 365
owner's, is restored to disk by :func:`restore_to_dir`. What differs per kind
is only which files to write: a Microsoft 365 restore narrows it with the
``select`` argument that sources/m365/restore/localdir.py builds from the
item filters.
"""

from sources.localdir.owners import OWNER_POLICIES
from sources.localdir.restore import (
    CONFLICT_POLICIES,
    RestoreFailure,
    RestoreResult,
    restore_to_dir,
)

__all__ = [
    "CONFLICT_POLICIES",
    "OWNER_POLICIES",
    "RestoreFailure",
    "RestoreResult",
    "restore_to_dir",
]
