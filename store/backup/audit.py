"""Which blobs an owner's base (the snapshot a backup builds on) names that no index has.

A backup reuses what its base holds without reading it again: items the source
finds unchanged keep their chunks, untouched directories keep their tree pages,
and a delta source continues from the base's sync state. If the base names a
blob that is in no index (a checkpoint written by the blob writer of before
docs/engine.md's "Checkpoint durability" fix, or storage that lost a pack or an
index object), reusing it would fail the owner on every later run ("blob ... is
not in any index") or commit a snapshot naming a blob that is not there. The
session asks :func:`audit_base` first and reuses none of it (FORMAT.md §10,
"Resuming from a base").

The audit reads the owner's catalogue (its cache of the base's entries) and asks
the blob index (LMDB) about each chunk, each directory's root page and each
sync-state blob: about as much work as one pass over the catalogue. Blobs in a
pack that prune has marked but not yet deleted count as present (they are
readable, and the next prune revives them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from store.cache.catalogue import OwnerStore
from store.errors import IntegrityError, ObjectNotFound
from store.format.codec import decode
from store.format.tree import DIRECTORY
from store.ids import BlobId
from store.names import MARKS
from store.repository.marks import load_mark
from store.repository.repository import Repository


@dataclass
class BaseAudit:
    """What of a base cannot be reused. Empty when every blob it names is indexed."""

    # Distinct blob IDs the base names that no index (nor marked pack) has.
    missing: set[bytes] = field(default_factory=set)
    # Catalogue keys of files (and symlinks) with a chunk among them.
    items: list[bytes] = field(default_factory=list)
    # Catalogue keys of directories whose root tree page is among them.
    directories: list[bytes] = field(default_factory=list)
    # The base's sync state names one of them.
    sync: bool = False

    @property
    def clean(self) -> bool:
        return not self.missing


def audit_base(repo: Repository, store: OwnerStore, sync: Iterable[BlobId]) -> BaseAudit:
    """Check every blob the catalogue in ``store`` and the sync state ``sync`` name.

    Read-only. A blob the local index lacks is looked for again after one
    refresh of the index (another process may have written it since) and in
    prune's marked packs before it counts as missing. Raises StoreError only
    when the repository cannot be listed.
    """
    index = repo.blob_index
    audit = BaseAudit()
    unknown: set[bytes] = set()

    def all_known(blob_ids: Iterable[bytes]) -> bool:
        # Every one is asked (no short cut): ``unknown`` must hold them all.
        absent = [blob_id for blob_id in blob_ids if not index.contains(blob_id)]
        unknown.update(absent)
        return not absent

    sync_ids = [bytes(blob_id) for blob_id in sync]
    audit.sync = not all_known(sync_ids)
    for key, raw in store.iter_catalogue():
        entry = decode(raw, "catalogue entry")
        if entry.get("t") == DIRECTORY:
            subtree = entry.get("x")
            if isinstance(subtree, bytes) and not all_known((subtree,)):
                audit.directories.append(key)
            continue
        chunks = entry.get("c") or []
        if not all_known(bytes(chunk[0]) for chunk in chunks):
            audit.items.append(key)
    if not unknown:
        return audit
    # Rare from here on: look again before calling anything missing.
    repo.refresh_index()
    marked = _marked_blobs(repo)
    audit.missing = {b for b in unknown if not index.contains(b) and b not in marked}
    if audit.missing == unknown:
        return audit
    still: Callable[[bytes], bool] = audit.missing.__contains__
    audit.sync = any(still(b) for b in sync_ids)
    audit.items = [k for k in audit.items if _names_any(store, k, still)]
    audit.directories = [k for k in audit.directories if _names_any(store, k, still)]
    return audit


def _names_any(store: OwnerStore, key: bytes, missing: Callable[[bytes], bool]) -> bool:
    raw = store.get_catalogue(key)
    if raw is None:
        return False
    entry = decode(raw, "catalogue entry")
    subtree = entry.get("x")
    if isinstance(subtree, bytes) and missing(subtree):
        return True
    return any(missing(bytes(chunk[0])) for chunk in entry.get("c") or [])


def _marked_blobs(repo: Repository) -> set[bytes]:
    """Every blob in a pack that prune has marked and not yet deleted."""
    out: set[bytes] = set()
    for info in repo.backend.list(MARKS):
        try:
            mark = load_mark(repo, info.key)
        except (ObjectNotFound, IntegrityError):
            continue  # deleted since the listing, or damaged: its packs are no help
        for pack in mark.packs:
            out.update(entry.blob_id for entry in pack.entries or ())
    return out


__all__ = ["BaseAudit", "audit_base"]
