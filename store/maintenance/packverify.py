"""Reading one whole pack and authenticating every byte of it (FORMAT.md §5).

The header and trailer-length field are authenticated by the trailer's tag,
each blob by its own tag and its keyed hash, and the trailer proves the blobs
tile the pack with no gap. Used by ``check --read-data`` and ``repair index``.
Pure apart from the one read of the pack; thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from store.errors import IntegrityError, ObjectNotFound, StoreError
from store.format.codec import encode
from store.format.crypto import TAG_SIZE, keyed_hash
from store.format.index import PackRecord
from store.format.pack import (
    HEADER_SIZE,
    LENGTH_SIZE,
    BlobEntry,
    blobs_end,
    check_pack_size,
    open_blob,
    open_trailer,
    read_header,
    read_trailer,
    trailer_start,
)
from store.ids import PACK_KIND_FOR_TYPE, BlobId, PackId
from store.maintenance.inventory import PackFile

if TYPE_CHECKING:
    from store.format.keys import Keyring


@dataclass
class PackVerdict:
    """What reading a pack found. ``ok`` only if every byte is authentic."""

    pack_id: PackId
    kind: int
    size: int = 0
    missing: bool = False
    epoch: int | None = None
    problems: list[str] = field(default_factory=list)
    # From the trailer when it authenticates, else from the index (if any).
    entries: list[BlobEntry] | None = None
    trailer_ok: bool = False
    good: list[BlobEntry] = field(default_factory=list)
    bad: dict[BlobId, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.bad and not self.missing


def _entry_key(entry: BlobEntry) -> tuple[int, bytes, int, int, int]:
    return (entry.type, entry.blob_id, entry.offset, entry.length, entry.raw_length)


def verify_pack_bytes(
    data: bytes,
    pack: PackFile,
    keyring: Keyring,
    indexed: PackRecord | None,
) -> PackVerdict:
    """Authenticate ``data``, the whole content of ``pack``.

    ``indexed`` is what the index says about the pack: it must agree with the
    trailer, and if the trailer is damaged its entries are used to salvage
    what blobs can still be authenticated one by one.
    """
    what = pack.key
    verdict = PackVerdict(pack.pack_id, pack.kind, len(data))
    header_epoch: int | None = None
    try:
        kind, header_epoch = read_header(data, what)
        if kind != pack.kind:
            verdict.problems.append(f"header says kind {kind}, directory says {pack.kind}")
    except StoreError as exc:
        verdict.problems.append(str(exc))
    epoch = header_epoch
    if indexed is not None and header_epoch != indexed.epoch:
        if header_epoch is not None:
            verdict.problems.append(
                f"header says key epoch {header_epoch}, the index says {indexed.epoch}"
            )
        epoch = indexed.epoch
    verdict.epoch = epoch
    entries: list[BlobEntry] | None = None
    if epoch is not None:
        try:
            epoch_key = keyring.epoch_key(epoch, what)
            entries = read_trailer(data, epoch_key, pack.pack_id, what)
            verdict.trailer_ok = True
        except StoreError as exc:
            verdict.problems.append(str(exc))
    if indexed is not None:
        indexed_set = {_entry_key(e) for e in indexed.entries}
        if entries is None:
            entries = list(indexed.entries)
        else:
            trailer_set = {_entry_key(e) for e in entries}
            strays = indexed_set - trailer_set
            if strays:
                verdict.problems.append(
                    f"the index names {len(strays)} blob(s) the pack's trailer does not hold"
                )
                for stray in strays:
                    verdict.bad[BlobId(stray[1])] = "named by the index, not in the pack"
            if trailer_set - indexed_set:
                verdict.problems.append(
                    f"the pack holds {len(trailer_set - indexed_set)} blob(s) the index omits"
                )
    verdict.entries = entries
    if entries is None or epoch is None:
        return verdict
    try:
        epoch_key = keyring.epoch_key(epoch, what)
    except StoreError as exc:
        verdict.problems.append(str(exc))
        for entry in entries:
            verdict.bad[entry.blob_id] = str(exc)
        return verdict
    id_key = keyring.blob_id_key
    for entry in entries:
        if entry.blob_id in verdict.bad:
            continue
        label = f"blob {entry.blob_id.hex()[:8]} in {what}"
        if PACK_KIND_FOR_TYPE.get(entry.type) != pack.kind:
            verdict.bad[entry.blob_id] = f"{label}: blob type {entry.type} in the wrong pack kind"
            continue
        end = entry.offset + entry.length
        if entry.offset < 0 or end > len(data):
            verdict.bad[entry.blob_id] = f"{label}: beyond the end of the pack"
            continue
        try:
            plain = open_blob(data[entry.offset : end], epoch_key, pack.pack_id, entry, label)
        except StoreError as exc:
            verdict.bad[entry.blob_id] = str(exc)
            continue
        if len(plain) != entry.raw_length:
            verdict.bad[entry.blob_id] = (
                f"{label}: length {len(plain)}, expected {entry.raw_length}"
            )
        elif keyed_hash(id_key, plain) != entry.blob_id:
            verdict.bad[entry.blob_id] = f"{label}: content does not match its ID"
        else:
            verdict.good.append(entry)
    return verdict


def expected_pack_size(entries: list[BlobEntry]) -> int | None:
    """The exact size of a pack holding ``entries``, or None if they do not tile.

    The trailer is the codec byte, the msgpack of the entries in offset order
    and a tag, then its 4-byte length: all computable from the index alone,
    so ``check`` verifies pack sizes without reading any pack.
    """
    try:
        position = blobs_end(entries, "pack")
    except IntegrityError:
        return None
    ordered = sorted(entries, key=lambda e: e.offset)
    trailer = 1 + len(encode([e.as_list() for e in ordered])) + TAG_SIZE
    return position + trailer + LENGTH_SIZE


def verify_pack(
    backend_get: Callable[[str], bytes],
    pack: PackFile,
    keyring: Keyring,
    indexed: PackRecord | None,
) -> PackVerdict:
    """Read ``pack`` whole through ``backend_get(key)`` and verify it."""
    try:
        data = backend_get(pack.key)
    except ObjectNotFound:
        verdict = PackVerdict(pack.pack_id, pack.kind, missing=True)
        verdict.problems.append(f"{pack.key} is missing")
        return verdict
    return verify_pack_bytes(data, pack, keyring, indexed)


def read_pack_trailer(
    backend_get: Callable[[str, int, int | None], bytes], pack: PackFile, keyring: Keyring
) -> tuple[int, list[BlobEntry]]:
    """(key epoch, entries) of a pack from its header and trailer alone.

    Reads three small ranges instead of the whole pack; the trailer's tag
    authenticates the header and length field, and the entries must tile the
    pack as listed. Raises IntegrityError (or ObjectNotFound).
    """
    what = pack.key
    head = backend_get(pack.key, 0, HEADER_SIZE)
    _kind, epoch = read_header(head, what)
    check_pack_size(pack.size, what)
    length_bytes = backend_get(pack.key, pack.size - LENGTH_SIZE, LENGTH_SIZE)
    start = trailer_start(pack.size, length_bytes, what)
    sealed = backend_get(pack.key, start, pack.size - LENGTH_SIZE - start)
    epoch_key = keyring.epoch_key(epoch, what)
    return epoch, open_trailer(head, sealed, length_bytes, start, epoch_key, pack.pack_id, what)
