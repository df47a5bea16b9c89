"""The local-folder source: back up a directory tree (restoring one: sources/localdir/).

The backup is loaded on first use (PEP 562), not on import of the package:
the stat-ahead helper (``python -P -m sources.folder.statwalker``) imports
this package and must start in milliseconds, without the repository engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sources.folder.backup import FolderBackupResult, backup_folder, folder_owner

__all__ = [
    "FolderBackupResult",
    "backup_folder",
    "folder_owner",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("sources.folder.backup"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
