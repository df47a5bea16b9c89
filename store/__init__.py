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

The format is in store/FORMAT.md.
"""

from store.backend import Backend, LocalBackend, ObjectInfo, open_backend
from store.check import CheckResult, Problem, check_repository, record_check
from store.checkdata import validate_subset
from store.checkstate import CheckState
from store.config import ChunkerParams, RepoConfig, TreeSplitParams
from store.diff import Change, diff_trees, pair_moves
from store.errors import (
    AlreadyExists,
    BackendError,
    BackendFull,
    BlobMissing,
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
from store.forget import ForgetPlan, OwnerPlan, execute_forget, forget_snapshots, plan_forget
from store.ids import DATA, TREE, BlobId, IndexId, PackId, SnapshotId
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
from store.keys import KdfParams, Keyring, KeySlot, load_private_key
from store.packscan import PackProblem, list_packs, read_pack, records_from_packs, scan_pack
from store.prune import DEFAULT_GRACE_NS, PruneOptions, PruneResult, prune
from store.reader import ChunkCache, ItemReader, SnapshotReader
from store.repair_index import IndexRepair, repair_index
from store.repair_snapshots import SnapshotRepair, repair_snapshots
from store.repository import Repository
from store.retention import UNLIMITED, Decision, Duration, RetentionPolicy, apply_policy
from store.selection import owner_matches, select_snapshots
from store.session import BackupRun, Content, OwnerSession, SessionStats, symlink_version
from store.snapshot import OWNER_KINDS, Owner, Snapshot, format_time, latest_per_owner
from store.stats import RepoStats, repository_stats
from store.tree import DIRECTORY, FILE, SYMLINK, Entry, TreeReader

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
    "BackupRun",
    "BlobId",
    "BlobMissing",
    "Change",
    "CheckResult",
    "CheckState",
    "ChunkCache",
    "ChunkerParams",
    "Content",
    "Decision",
    "Duration",
    "Entry",
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
    "LocalBackend",
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
    "SnapshotId",
    "SnapshotNotFound",
    "SnapshotReader",
    "SnapshotRepair",
    "StoreError",
    "TransientBackendError",
    "TreeReader",
    "TreeSplitParams",
    "WrongPassword",
    "add_escrow_slot",
    "add_password_slot",
    "apply_policy",
    "change_password",
    "check_repository",
    "current_kdf",
    "diff_trees",
    "execute_forget",
    "forget_snapshots",
    "format_time",
    "latest_per_owner",
    "list_packs",
    "load_private_key",
    "open_backend",
    "owner_matches",
    "pair_moves",
    "plan_forget",
    "prune",
    "read_pack",
    "record_check",
    "records_from_packs",
    "recover_with_escrow",
    "remove_slot",
    "repair_index",
    "repair_snapshots",
    "repository_stats",
    "rotate_master_key",
    "scan_pack",
    "select_snapshots",
    "slot_statuses",
    "symlink_version",
    "validate_subset",
]
