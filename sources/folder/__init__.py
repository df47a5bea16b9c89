"""The local-folder source: back up a directory tree (restoring one: sources/localdir/).

The backup is loaded on first use (PEP 562, sources/lazy.py), not on import
of the package: the stat-ahead helper (``python -P -m
sources.folder.statwalker``) imports this package and must start in
milliseconds, without the repository engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sources.lazy import resolve

if TYPE_CHECKING:
    from sources.folder.backup import FolderBackupResult, backup_folder, folder_owner

_LAZY: dict[str, str] = {
    "FolderBackupResult": "sources.folder.backup",
    "backup_folder": "sources.folder.backup",
    "folder_owner": "sources.folder.backup",
}


def __getattr__(name: str) -> Any:
    return resolve(__name__, _LAZY, globals(), name)


__all__ = [
    "FolderBackupResult",
    "backup_folder",
    "folder_owner",
]
