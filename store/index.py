"""Index objects (FORMAT.md §6): which blob is in which pack, and where."""

from __future__ import annotations

from dataclasses import dataclass, field

from store.codec import pack, unpack
from store.errors import IntegrityError
from store.ids import IndexId, PackId
from store.pack import BlobEntry


@dataclass
class PackRecord:
    """One pack and the blobs in it."""

    pack_id: PackId
    kind: int
    epoch: int
    entries: list[BlobEntry] = field(default_factory=list)


@dataclass
class IndexObject:
    """The plaintext of an ``index/<id>`` object."""

    packs: list[PackRecord]
    supersedes: list[IndexId] = field(default_factory=list)

    def encode(self) -> bytes:
        return pack(
            {
                "v": 1,
                "packs": [
                    [rec.pack_id, rec.kind, rec.epoch, [e.as_list() for e in rec.entries]]
                    for rec in self.packs
                ],
                "supersedes": list(self.supersedes),
            }
        )

    @classmethod
    def decode(cls, raw: bytes, what: str) -> IndexObject:
        data = unpack(raw, what)
        try:
            if int(data["v"]) > 1:
                raise IntegrityError(f"{what}: index version {data['v']} is too new")
            packs = [
                PackRecord(
                    PackId(bytes(pack_id)),
                    int(kind),
                    int(epoch),
                    [BlobEntry.from_list(item, what) for item in entries],
                )
                for pack_id, kind, epoch, entries in data["packs"]
            ]
            supersedes = [IndexId(bytes(x)) for x in data.get("supersedes", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{what}: malformed index ({exc})") from exc
        return cls(packs, supersedes)
