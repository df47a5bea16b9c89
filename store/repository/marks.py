"""Prune marks (FORMAT.md §11): packs condemned, but not yet deleted.

Phase one of garbage collection writes a mark naming packs that nothing
referenced, and drops them from the index so new backups stop deduplicating
against them. Phase two, a grace period later, deletes them unless something
came to need them in between (then they are revived: indexed again). Until
then their blobs stay readable through :func:`find_marked_blob`, so a snapshot
written by a backup that overlapped the mark is never unreadable.

Marks are immutable sealed objects; "unmarking" writes a smaller mark and
deletes the old one.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from store.cache.blobindex import BlobLocation
from store.errors import IntegrityError, ObjectNotFound
from store.format.codec import (
    I64_MAX,
    U32_MAX,
    decode_map,
    encode,
    field_bytes,
    field_int,
    field_list,
    field_str,
)
from store.format.index import PackRecord
from store.format.pack import BlobEntry
from store.ids import ID_SIZE, PACK_DATA, PACK_TREE, BlobId, PackId
from store.names import MARKS
from store.repository.ports import SealedObjects

MARK_VERSION = 1


@dataclass(frozen=True)
class MarkedPack:
    """A condemned pack. ``entries`` is None when no index named it (an orphan)."""

    pack_id: PackId
    kind: int
    epoch: int | None
    entries: tuple[BlobEntry, ...] | None

    def record(self) -> PackRecord | None:
        """The index record to revive it with, when its content is known."""
        if self.entries is None or self.epoch is None:
            return None
        return PackRecord(self.pack_id, self.kind, self.epoch, list(self.entries))


@dataclass(frozen=True)
class Mark:
    """One ``marks/<id>`` object."""

    key: str
    time_ns: int
    host: str
    packs: tuple[MarkedPack, ...]

    @property
    def pack_ids(self) -> set[PackId]:
        return {p.pack_id for p in self.packs}


def _encode(time_ns: int, host: str, packs: list[MarkedPack]) -> bytes:
    return encode(
        {
            "v": MARK_VERSION,
            "time": time_ns,
            "host": host,
            "packs": [
                [
                    p.pack_id,
                    p.kind,
                    p.epoch,
                    None if p.entries is None else [e.as_list() for e in p.entries],
                ]
                for p in packs
            ],
        }
    )


def _decode(plain: bytes, key: str) -> Mark:
    """Parse a mark plaintext. Raises FormatTooNew, IntegrityError."""
    data = decode_map(plain, key, MARK_VERSION)
    packs = []
    for item in field_list(data.get("packs"), key, "packs"):
        pack_id, kind, epoch, entries = field_list(item, key, "marked pack", 4)
        packs.append(
            MarkedPack(
                PackId(field_bytes(pack_id, key, "pack ID", ID_SIZE)),
                field_int(kind, key, "pack kind", PACK_DATA, PACK_TREE),
                None if epoch is None else field_int(epoch, key, "key epoch", 0, U32_MAX),
                None
                if entries is None
                else tuple(
                    BlobEntry.from_list(e, key) for e in field_list(entries, key, "pack entries")
                ),
            )
        )
    return Mark(
        key,
        field_int(data.get("time"), key, "time", 0, I64_MAX),
        field_str(data.get("host", ""), key, "host"),
        tuple(packs),
    )


def save_mark(repo: SealedObjects, time_ns: int, packs: list[MarkedPack]) -> Mark:
    """Write a mark (named by the keyed hash of its content) and return it."""
    plain = _encode(time_ns, socket.gethostname(), packs)
    key = MARKS + repo.object_id(plain).hex()
    repo.save_object("mark", key, plain)
    return Mark(key, time_ns, socket.gethostname(), tuple(packs))


def load_mark(repo: SealedObjects, key: str) -> Mark:
    """Read and verify a mark. Raises ObjectNotFound, IntegrityError."""
    plain = repo.load_object("mark", key)
    if MARKS + repo.object_id(plain).hex() != key:
        raise IntegrityError(f"{key}: content does not match its name")
    return _decode(plain, key)


def list_marks(repo: SealedObjects) -> list[Mark]:
    """Every mark, oldest first (marks deleted while listing are skipped)."""
    marks = []
    for info in repo.backend.list(MARKS):
        try:
            marks.append(load_mark(repo, info.key))
        except ObjectNotFound:
            continue
    return sorted(marks, key=lambda m: (m.time_ns, m.key))


def find_marked_blob(repo: SealedObjects, blob_id: BlobId) -> BlobLocation | None:
    """Where a blob is inside a marked (not yet deleted) pack, or None.

    The fallback of :meth:`Repository.locate`: it costs one listing, and is
    only reached for blobs no index names.
    """
    for info in repo.backend.list(MARKS):
        try:
            mark = load_mark(repo, info.key)
        except (ObjectNotFound, IntegrityError):
            continue
        for marked in mark.packs:
            if marked.entries is None or marked.epoch is None:
                continue
            for entry in marked.entries:
                if entry.blob_id == blob_id:
                    return BlobLocation(
                        marked.pack_id,
                        entry.offset,
                        entry.length,
                        entry.raw_length,
                        entry.type,
                        marked.epoch,
                    )
    return None
