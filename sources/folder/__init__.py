"""The local-folder source: back up a directory tree (restoring one: sources/localdir/)."""

from sources.folder.backup import FolderBackupResult, backup_folder, folder_owner

__all__ = [
    "FolderBackupResult",
    "backup_folder",
    "folder_owner",
]
