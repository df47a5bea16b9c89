"""Reading whole packs: verification and index reconstruction.

Used by ``check --read-data``, ``repair index`` and the tests: a pack is read
whole, its trailer authenticated (which covers the header), and every blob
decrypted, decompressed and re-hashed against its ID.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from store.crypto import keyed_hash
from store.errors import IntegrityError, ObjectNotFound
from store.ids import PACK_DATA, PACK_PREFIX, PACK_TREE, PackId, from_hex, pack_key
from store.index import PackRecord
from store.pack import BlobEntry, open_blob, read_header, read_trailer
from store.repository import Repository


@dataclass
class PackProblem:
    """A pack that failed verification, and the blobs that could still be read."""

    pack_id: PackId
    kind: int
    reason: str
    good: list[BlobEntry] = field(default_factory=list)
    bad: list[BlobEntry] = field(default_factory=list)


def list_packs(repo: Repository) -> Iterator[tuple[PackId, int, int]]:
    """(pack ID, kind, size) of every pack file in the repository."""
    for kind in (PACK_DATA, PACK_TREE):
        for info in repo.backend.list(f"{PACK_PREFIX[kind]}/"):
            name = info.key.rsplit("/", 1)[-1]
            try:
                yield PackId(from_hex(name)), kind, info.size
            except ValueError:
                continue  # not a pack (stray file); check reports it


def read_pack(repo: Repository, pack_id: PackId, kind: int) -> PackRecord:
    """Read and verify a whole pack. Raises IntegrityError naming the first fault.

    Also raises ObjectNotFound when the pack is gone.
    """
    record, problem = scan_pack(repo, pack_id, kind)
    if problem is not None:
        raise IntegrityError(f"pack {pack_id.hex()}: {problem.reason}")
    return record


def scan_pack(
    repo: Repository, pack_id: PackId, kind: int
) -> tuple[PackRecord, PackProblem | None]:
    """Verify a pack blob by blob. Returns the record of its readable blobs and,
    if anything is wrong, a problem listing the good and bad blobs."""
    key = pack_key(pack_id, kind)
    what = f"pack {pack_id.hex()}"
    data = repo.backend.get(key)
    try:
        header_kind, epoch = read_header(data, what)
        if header_kind != kind:
            raise IntegrityError(f"{what}: header says kind {header_kind}, stored as {kind}")
        epoch_key = repo.keyring.epoch_key(epoch, what)
        entries = read_trailer(data, epoch_key, pack_id, what)
    except IntegrityError as exc:
        return PackRecord(pack_id, kind, 0, []), PackProblem(pack_id, kind, str(exc))
    good: list[BlobEntry] = []
    bad: list[BlobEntry] = []
    for entry in entries:
        try:
            sealed = data[entry.offset : entry.offset + entry.length]
            plain = open_blob(sealed, epoch_key, pack_id, entry, what)
            if keyed_hash(repo.keyring.blob_id_key, plain) != entry.blob_id:
                raise IntegrityError(
                    f"{what}: blob {entry.blob_id.hex()[:8]} does not match its ID"
                )
            if len(plain) != entry.raw_length:
                raise IntegrityError(f"{what}: blob {entry.blob_id.hex()[:8]} has the wrong length")
            good.append(entry)
        except IntegrityError:
            bad.append(entry)
    record = PackRecord(pack_id, kind, epoch, good)
    if bad:
        reason = f"{len(bad)} of {len(entries)} blobs damaged"
        return record, PackProblem(pack_id, kind, reason, good, bad)
    return record, None


def records_from_packs(repo: Repository) -> Iterator[PackRecord | PackProblem]:
    """Every pack's verified record (or its problem), for rebuilding the index."""
    for pack_id, kind, _size in list_packs(repo):
        try:
            record, problem = scan_pack(repo, pack_id, kind)
        except ObjectNotFound:
            continue
        yield problem if problem is not None else record


__all__ = ["PackProblem", "list_packs", "read_pack", "records_from_packs", "scan_pack"]
