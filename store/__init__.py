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

The layout that mount, ls and restore share (store/browse/layout.py)::

    vfs = VirtualFS(repo)
    node = vfs.resolve("owners/folders/host:%2Fsrv/latest/a/b.txt")

The format is in store/FORMAT.md; the map of the sub-packages (what each
owns, what it may import) is in docs/engine.md. This module is a plain
re-export: callers never reach into the sub-packages.
"""

from store.backend import (
    Backend,
    LocalBackend,
    ObjectInfo,
    is_remote,
    open_backend,
    redact_text,
    redact_url,
)
from store.backup.session import BackupRun, Content, OwnerSession, SessionStats, symlink_version
from store.backup.sink import ContentSink
from store.browse.diff import Change, diff_trees, pair_moves
from store.browse.layout import Layout, owner_component
from store.browse.safetext import defang, is_hidden, printable
from store.browse.selection import owner_matches, select_snapshots
from store.browse.vfs import NotCached, SnapshotItem, VirtualDir, VirtualFS, VirtualLink, VNode
from store.cache.cachedir import default_cache_root
from store.cache.checkstate import CheckState
from store.copy.copier import (
    CopyProgress,
    CopyResult,
    CopyStats,
    SnapshotCopier,
    copy_snapshots,
    missing_snapshots,
    snapshot_identity,
)
from store.errors import (
    AlreadyExists,
    BackendError,
    BackendFull,
    BackendNotInstalled,
    BlobMissing,
    CacheUnusable,
    ExitCode,
    FormatTooNew,
    IntegrityError,
    KeySlotDamaged,
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
from store.format.config import ChunkerParams, RepoConfig, TreeSplitParams
from store.format.keys import KdfParams, Keyring, KeySlot, load_private_key
from store.format.paths import safe_component
from store.format.snapshot import OWNER_KINDS, Owner, Snapshot, format_time, latest_per_owner
from store.format.tree import DIRECTORY, FILE, SYMLINK, Entry, TreeReader
from store.ids import DATA, TREE, BlobId, IndexId, PackId, SnapshotId
from store.maintenance.check.read_data import validate_subset
from store.maintenance.check.result import CheckResult, Problem
from store.maintenance.check.run import check_repository, record_check
from store.maintenance.forget import (
    ForgetPlan,
    OwnerPlan,
    execute_forget,
    forget_snapshots,
    plan_forget,
)
from store.maintenance.keyops import (
    MAX_SLOTS,
    Rotation,
    SlotStatus,
    add_escrow_slot,
    add_password_slot,
    change_password,
    current_kdf,
    recover_with_escrow,
    remove_slot,
    rotate_master_key,
    slot_statuses,
)
from store.maintenance.prune.pruning import DEFAULT_GRACE_NS, PruneOptions, PruneResult, prune
from store.maintenance.repair.index import IndexRepair, repair_index
from store.maintenance.repair.snapshots import SnapshotRepair, repair_snapshots
from store.maintenance.retention import UNLIMITED, Decision, Duration, RetentionPolicy, apply_policy
from store.maintenance.stats import RepoStats, repository_stats
from store.names import REPORTS
from store.pipeline.pool import FileResult, WorkerFailed, WorkerPool
from store.repository.reader import ChunkCache, ChunkPayload, ItemReader, SnapshotReader
from store.repository.repository import Repository

__all__ = [
    "DATA",
    "DEFAULT_GRACE_NS",
    "DIRECTORY",
    "FILE",
    "MAX_SLOTS",
    "OWNER_KINDS",
    "REPORTS",
    "SYMLINK",
    "TREE",
    "UNLIMITED",
    "AlreadyExists",
    "Backend",
    "BackendError",
    "BackendFull",
    "BackendNotInstalled",
    "BackupRun",
    "BlobId",
    "BlobMissing",
    "CacheUnusable",
    "Change",
    "CheckResult",
    "CheckState",
    "ChunkCache",
    "ChunkPayload",
    "ChunkerParams",
    "Content",
    "ContentSink",
    "CopyProgress",
    "CopyResult",
    "CopyStats",
    "Decision",
    "Duration",
    "Entry",
    "ExitCode",
    "FileResult",
    "ForgetPlan",
    "FormatTooNew",
    "IndexId",
    "IndexRepair",
    "IntegrityError",
    "ItemReader",
    "KdfParams",
    "KeySlot",
    "KeySlotDamaged",
    "Keyring",
    "Layout",
    "LocalBackend",
    "NotCached",
    "ObjectInfo",
    "ObjectNotFound",
    "Owner",
    "OwnerBusy",
    "OwnerPlan",
    "OwnerSession",
    "PackId",
    "PathNotFound",
    "Problem",
    "PruneOptions",
    "PruneResult",
    "RepoConfig",
    "RepoStats",
    "Repository",
    "RepositoryLocked",
    "RepositoryNotFound",
    "RetentionPolicy",
    "Rotation",
    "SessionStats",
    "SlotStatus",
    "Snapshot",
    "SnapshotCopier",
    "SnapshotId",
    "SnapshotItem",
    "SnapshotNotFound",
    "SnapshotReader",
    "SnapshotRepair",
    "StoreError",
    "TransientBackendError",
    "TreeReader",
    "TreeSplitParams",
    "VNode",
    "VirtualDir",
    "VirtualFS",
    "VirtualLink",
    "WorkerFailed",
    "WorkerPool",
    "WrongPassword",
    "add_escrow_slot",
    "add_password_slot",
    "apply_policy",
    "change_password",
    "check_repository",
    "copy_snapshots",
    "current_kdf",
    "defang",
    "default_cache_root",
    "diff_trees",
    "execute_forget",
    "forget_snapshots",
    "format_time",
    "is_hidden",
    "is_remote",
    "latest_per_owner",
    "load_private_key",
    "missing_snapshots",
    "open_backend",
    "owner_component",
    "owner_matches",
    "pair_moves",
    "plan_forget",
    "printable",
    "prune",
    "record_check",
    "recover_with_escrow",
    "redact_text",
    "redact_url",
    "remove_slot",
    "repair_index",
    "repair_snapshots",
    "repository_stats",
    "rotate_master_key",
    "safe_component",
    "select_snapshots",
    "slot_statuses",
    "snapshot_identity",
    "symlink_version",
    "validate_subset",
]
