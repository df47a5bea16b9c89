"""Index objects (FORMAT.md §6): which blob is in which pack, and where."""

from __future__ import annotations

from dataclasses import dataclass, field

from store.format.codec import U32_MAX, decode_map, encode, field_bytes, field_int, field_list
from store.format.pack import BlobEntry
from store.ids import ID_SIZE, PACK_DATA, PACK_TREE, IndexId, PackId

INDEX_VERSION = 1


@dataclass
class PackRecord:
    """One pack and the blobs in it."""

    pack_id: PackId
    kind: int
    epoch: int
    entries: list[BlobEntry] = field(default_factory=list)

    @classmethod
    def from_list(cls, item: object, what: str) -> PackRecord:
        """Parse ``[pack ID, kind, epoch, [entry, ...]]``. Raises IntegrityError."""
        pack_id, kind, epoch, entries = field_list(item, what, "pack record", 4)
        return cls(
            PackId(field_bytes(pack_id, what, "pack ID", ID_SIZE)),
            field_int(kind, what, "pack kind", PACK_DATA, PACK_TREE),
            field_int(epoch, what, "key epoch", 0, U32_MAX),
            [BlobEntry.from_list(e, what) for e in field_list(entries, what, "pack entries")],
        )


@dataclass
class IndexObject:
    """The plaintext of an ``index/<id>`` object."""

    packs: list[PackRecord]
    supersedes: list[IndexId] = field(default_factory=list)

    def encode(self) -> bytes:
        return encode(
            {
                "v": INDEX_VERSION,
                "packs": [
                    [rec.pack_id, rec.kind, rec.epoch, [e.as_list() for e in rec.entries]]
                    for rec in self.packs
                ],
                "supersedes": list(self.supersedes),
            }
        )

    @classmethod
    def decode(cls, raw: bytes, what: str) -> IndexObject:
        """Parse an index plaintext. Raises FormatTooNew, IntegrityError."""
        data = decode_map(raw, what, INDEX_VERSION)
        items = field_list(data.get("packs"), what, "packs")
        packs = [PackRecord.from_list(item, what) for item in items]
        supersedes = [
            IndexId(field_bytes(x, what, "superseded index ID", ID_SIZE))
            for x in field_list(data.get("supersedes", []), what, "supersedes")
        ]
        return cls(packs, supersedes)
