"""The local-folder source: back up a directory tree, restore a snapshot into one."""

from sources.folder.backup import FolderBackupResult, backup_folder, folder_owner
from sources.folder.restore import RestoreResult, restore_to_dir

__all__ = [
    "FolderBackupResult",
    "RestoreResult",
    "backup_folder",
    "folder_owner",
    "restore_to_dir",
]
