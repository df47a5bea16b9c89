"""Coffer's repository engine: deduplicated, compressed, encrypted snapshots.

Knows nothing of Microsoft 365. Callers import from this package only::

    repo = Repository.open(open_backend(url), password)
    with BackupRun(repo) as run:
        with run.owner(Owner("folders", "host:/srv", "host:/srv")) as session:
            session.full_scope()
            session.add_item("a/b.txt", b"content", mtime_ns=...)
            session.commit()
    snapshot = select_snapshots(repo.list_snapshots(), "latest")[0]
    data = repo.reader(snapshot).open("a/b.txt").read()

The layout that mount, ls and restore share (store/layout.py)::

    vfs = VirtualFS(repo)
    node = vfs.resolve("owners/folders/host:%2Fsrv/latest/a/b.txt")

The format is in store/FORMAT.md.
"""

from store.backend import Backend, LocalBackend, ObjectInfo, open_backend
from store.config import ChunkerParams, RepoConfig, TreeSplitParams
from store.errors import (
    AlreadyExists,
    BackendError,
    BackendFull,
    BlobMissing,
    FormatTooNew,
    IntegrityError,
    ObjectNotFound,
    OwnerBusy,
    PathNotFound,
    RepositoryLocked,
    RepositoryNotFound,
    SnapshotNotFound,
    StoreError,
    TransientBackendError,
    WrongPassword,
)
from store.ids import DATA, TREE, BlobId, IndexId, PackId, SnapshotId
from store.keys import KdfParams, Keyring, KeySlot
from store.layout import Layout, owner_component
from store.packscan import PackProblem, list_packs, read_pack, records_from_packs, scan_pack
from store.reader import ChunkCache, ItemReader, SnapshotReader
from store.repository import Repository
from store.selection import owner_matches, select_snapshots
from store.session import BackupRun, Content, OwnerSession, SessionStats, symlink_version
from store.snapshot import OWNER_KINDS, Owner, Snapshot, format_time, latest_per_owner
from store.tree import DIRECTORY, FILE, SYMLINK, Entry, TreeReader
from store.vfs import NotCached, SnapshotItem, VirtualDir, VirtualFS, VirtualLink, VNode

__all__ = [
    "DATA",
    "DIRECTORY",
    "FILE",
    "OWNER_KINDS",
    "SYMLINK",
    "TREE",
    "AlreadyExists",
    "Backend",
    "BackendError",
    "BackendFull",
    "BackupRun",
    "BlobId",
    "BlobMissing",
    "ChunkCache",
    "ChunkerParams",
    "Content",
    "Entry",
    "FormatTooNew",
    "IndexId",
    "IntegrityError",
    "ItemReader",
    "KdfParams",
    "KeySlot",
    "Keyring",
    "Layout",
    "LocalBackend",
    "NotCached",
    "ObjectInfo",
    "ObjectNotFound",
    "Owner",
    "OwnerBusy",
    "OwnerSession",
    "PackId",
    "PackProblem",
    "PathNotFound",
    "RepoConfig",
    "Repository",
    "RepositoryLocked",
    "RepositoryNotFound",
    "SessionStats",
    "Snapshot",
    "SnapshotId",
    "SnapshotItem",
    "SnapshotNotFound",
    "SnapshotReader",
    "StoreError",
    "TransientBackendError",
    "TreeReader",
    "TreeSplitParams",
    "VNode",
    "VirtualDir",
    "VirtualFS",
    "VirtualLink",
    "WrongPassword",
    "format_time",
    "latest_per_owner",
    "list_packs",
    "open_backend",
    "owner_component",
    "owner_matches",
    "read_pack",
    "records_from_packs",
    "scan_pack",
    "select_snapshots",
    "symlink_version",
]
