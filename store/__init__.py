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

import importlib
from typing import TYPE_CHECKING

from store.backend import (
    Backend,
    LocalBackend,
    ObjectInfo,
    is_remote,
    open_backend,
    redact_text,
    redact_url,
)
from store.cachedir import default_cache_root
from store.config import ChunkerParams, RepoConfig, TreeSplitParams
from store.copy import (
    CopyProgress,
    CopyResult,
    CopyStats,
    SnapshotCopier,
    copy_snapshots,
    missing_snapshots,
    snapshot_key,
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
from store.ids import DATA, TREE, BlobId, IndexId, PackId, SnapshotId
from store.keys import KdfParams, Keyring, KeySlot, load_private_key
from store.layout import Layout, owner_component
from store.packscan import PackProblem, list_packs, read_pack, records_from_packs, scan_pack
from store.paths import safe_component
from store.reader import ChunkCache, ItemReader, SnapshotReader
from store.repository import Repository
from store.safetext import defang, is_hidden, printable
from store.selection import owner_matches, select_snapshots
from store.session import BackupRun, Content, OwnerSession, SessionStats, symlink_version
from store.snapshot import OWNER_KINDS, Owner, Snapshot, format_time, latest_per_owner
from store.tree import DIRECTORY, FILE, SYMLINK, Entry, TreeReader
from store.vfs import NotCached, SnapshotItem, VirtualDir, VirtualFS, VirtualLink, VNode

if TYPE_CHECKING:
    from store.check import check_repository, record_check
    from store.checkdata import validate_subset
    from store.checkresult import CheckResult, Problem
    from store.checkstate import CheckState
    from store.diff import Change, diff_trees, pair_moves
    from store.forget import ForgetPlan, OwnerPlan, execute_forget, forget_snapshots, plan_forget
    from store.indexrepair import IndexRepair, repair_index
    from store.keyops import (
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
    from store.pruning import DEFAULT_GRACE_NS, PruneOptions, PruneResult, prune
    from store.retention import UNLIMITED, Decision, Duration, RetentionPolicy, apply_policy
    from store.snapshotrepair import SnapshotRepair, repair_snapshots
    from store.stats import RepoStats, repository_stats

# Repository operations (check, forget, prune, repair, keys, stats) are
# imported on first use: most commands never need them, and every import
# costs start-up time.
_LAZY: dict[str, str] = {
    "Change": "store.diff",
    "CheckResult": "store.checkresult",
    "CheckState": "store.checkstate",
    "DEFAULT_GRACE_NS": "store.pruning",
    "Decision": "store.retention",
    "Duration": "store.retention",
    "ForgetPlan": "store.forget",
    "IndexRepair": "store.indexrepair",
    "MAX_SLOTS": "store.keyops",
    "OwnerPlan": "store.forget",
    "Problem": "store.checkresult",
    "PruneOptions": "store.pruning",
    "PruneResult": "store.pruning",
    "RepoStats": "store.stats",
    "RetentionPolicy": "store.retention",
    "Rotation": "store.keyops",
    "SlotStatus": "store.keyops",
    "SnapshotRepair": "store.snapshotrepair",
    "UNLIMITED": "store.retention",
    "add_escrow_slot": "store.keyops",
    "add_password_slot": "store.keyops",
    "apply_policy": "store.retention",
    "change_password": "store.keyops",
    "check_repository": "store.check",
    "current_kdf": "store.keyops",
    "diff_trees": "store.diff",
    "execute_forget": "store.forget",
    "forget_snapshots": "store.forget",
    "pair_moves": "store.diff",
    "plan_forget": "store.forget",
    "prune": "store.pruning",
    "record_check": "store.check",
    "recover_with_escrow": "store.keyops",
    "remove_slot": "store.keyops",
    "repair_index": "store.indexrepair",
    "repair_snapshots": "store.snapshotrepair",
    "repository_stats": "store.stats",
    "rotate_master_key": "store.keyops",
    "slot_statuses": "store.keyops",
    "validate_subset": "store.checkdata",
}


def __getattr__(name: str) -> object:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'store' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    # Bind every name of that module at once. (No exported name may equal a
    # submodule's: importing store.x sets the package attribute x.)
    for export, source in _LAZY.items():
        if source == module_name:
            globals()[export] = getattr(module, export)
    return globals()[name]


__all__ = [
    "DATA",
    "DEFAULT_GRACE_NS",
    "DIRECTORY",
    "FILE",
    "MAX_SLOTS",
    "OWNER_KINDS",
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
    "ChunkerParams",
    "Content",
    "CopyProgress",
    "CopyResult",
    "CopyStats",
    "Decision",
    "Duration",
    "Entry",
    "ExitCode",
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
    "PackProblem",
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
    "list_packs",
    "load_private_key",
    "missing_snapshots",
    "open_backend",
    "owner_component",
    "owner_matches",
    "pair_moves",
    "plan_forget",
    "printable",
    "prune",
    "read_pack",
    "record_check",
    "records_from_packs",
    "recover_with_escrow",
    "redact_text",
    "redact_url",
    "remove_slot",
    "repair_index",
    "repair_snapshots",
    "repository_stats",
    "rotate_master_key",
    "safe_component",
    "scan_pack",
    "select_snapshots",
    "slot_statuses",
    "snapshot_key",
    "symlink_version",
    "validate_subset",
]
