"""Pack files (FORMAT.md §5): building them and reading them back.

A :class:`PackBuilder` collects compressed blob plaintexts in memory (bounded
by the target pack size plus one chunk) and, when finished, shuffles them,
encrypts each with the pack's single-use key and its offset as nonce, and
appends the encrypted trailer. Not thread-safe: the caller serialises access.
"""

from __future__ import annotations

import functools
import os
import random
import struct
from dataclasses import dataclass

from store.errors import IntegrityError
from store.format.codec import U32_MAX, decode, encode, field_bytes, field_int, field_list
from store.format.crypto import (
    TAG_SIZE,
    TRAILER_NONCE,
    cipher_for,
    decode_payload,
    decrypt,
    derive,
    encode_payload,
    encrypt,
    nonce_for_offset,
)
from store.format.zeros import zeros
from store.ids import DATA, ID_SIZE, TREE, BlobId, PackId

PACK_MAGIC = b"CFPK"
PACK_VERSION = 1
# magic(4) version(1) kind(1) epoch(4)
_HEADER = struct.Struct(">4sBBI")
HEADER_SIZE = _HEADER.size  # 10
_LENGTH = struct.Struct(">I")
LENGTH_SIZE = _LENGTH.size  # the trailer length field that ends a pack


@dataclass(frozen=True, slots=True)
class BlobEntry:
    """Where one blob lives inside a pack."""

    type: int
    blob_id: BlobId
    offset: int
    length: int
    raw_length: int

    def as_list(self) -> list[object]:
        return [self.type, self.blob_id, self.offset, self.length, self.raw_length]

    @classmethod
    def from_list(cls, item: object, what: str) -> BlobEntry:
        """Parse ``[type, blob ID, offset, length, raw length]``. Raises IntegrityError.

        Explicit checks (not ``assert``: ``python -O`` strips those): offsets
        and lengths are u32 (a pack is far smaller than 4 GiB), the type is a
        known blob type.
        """
        fields = field_list(item, what, "blob entry", 5)
        blob_type, blob_id, offset, length, raw_length = fields
        return cls(
            field_int(blob_type, what, "blob type", DATA, TREE),
            BlobId(field_bytes(blob_id, what, "blob ID", ID_SIZE)),
            field_int(offset, what, "blob offset", 0, U32_MAX),
            field_int(length, what, "blob length", TAG_SIZE, U32_MAX),
            field_int(raw_length, what, "blob raw length", 0, U32_MAX),
        )


@functools.lru_cache(maxsize=1024)
def pack_aead_key(epoch_key: bytes, pack_id: bytes) -> bytes:
    """The single-use AES key of a pack (cached: reads hit the same packs often)."""
    return derive("coffer v1 pack key", epoch_key + pack_id)


def blob_ad(blob_type: int, blob_id: bytes) -> bytes:
    return b"blob" + bytes([blob_type]) + blob_id


class PackBuilder:
    """Accumulates blobs for one pack."""

    def __init__(self, kind: int, epoch: int, epoch_key: bytes) -> None:
        self.kind = kind
        self.pack_id = PackId(os.urandom(32))
        self._epoch = epoch
        self._key = pack_aead_key(epoch_key, self.pack_id)
        # (type, id, raw length, codec payload)
        self._pending: list[tuple[int, BlobId, int, bytes]] = []
        self.size = HEADER_SIZE
        self._ids: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._ids

    def add(self, blob_type: int, blob_id: BlobId, raw_length: int, payload: bytes) -> None:
        """Queue a blob; ``payload`` is codec ‖ body (see crypto.encode_payload)."""
        if blob_id in self._ids:
            return
        self._ids.add(blob_id)
        self._pending.append((blob_type, blob_id, raw_length, payload))
        self.size += len(payload) + TAG_SIZE

    def finish(self) -> tuple[bytearray, list[BlobEntry]]:
        """Encrypt everything and return the pack's bytes and its entries.

        Each payload is let go once it is encrypted into the one buffer that
        becomes the pack, so finishing holds about one pack's worth of memory
        (the payloads left, the buffer so far) and never two: sealed blobs
        joined at the end held the pack twice, 16 MiB of a backup's peak RSS
        (docs/performance.md, "A backup's memory"). The buffer grows by
        ``+=`` of shared zeros (store/format/zeros.py): the allocator extends
        a large block in place or remaps it, without copying. The builder is
        empty afterwards.
        """
        order: list[tuple[int, BlobId, int, bytes] | None] = list(self._pending)
        self._pending.clear()
        random.SystemRandom().shuffle(order)
        header = _HEADER.pack(PACK_MAGIC, PACK_VERSION, self.kind, self._epoch)
        out = bytearray(header)
        entries: list[BlobEntry] = []
        cipher = cipher_for(self._key)
        for index, item in enumerate(order):
            assert item is not None
            order[index] = None  # the last reference to this payload
            blob_type, blob_id, raw_length, payload = item
            del item
            offset = len(out)
            sealed_length = len(payload) + TAG_SIZE
            # Room for the sealed blob, filled in place: no sealed copy to add.
            out += zeros(sealed_length)
            with memoryview(out) as view:
                cipher.encrypt_into(
                    nonce_for_offset(offset),
                    payload,
                    blob_ad(blob_type, blob_id),
                    view[offset : offset + sealed_length],
                )
            del payload
            entries.append(BlobEntry(blob_type, blob_id, offset, sealed_length, raw_length))
        trailer_plain = encode_payload(encode([entry.as_list() for entry in entries]), None)
        trailer_length = len(trailer_plain) + TAG_SIZE
        length_bytes = _LENGTH.pack(trailer_length)
        out += encrypt(self._key, TRAILER_NONCE, trailer_plain, header + length_bytes)
        out += length_bytes
        return out, entries


def read_header(data: bytes, what: str) -> tuple[int, int]:
    """(kind, epoch) from the first bytes of a pack. Raises IntegrityError."""
    if len(data) < HEADER_SIZE:
        raise IntegrityError(f"{what}: truncated pack")
    magic, version, kind, epoch = _HEADER.unpack_from(data)
    if magic != PACK_MAGIC:
        raise IntegrityError(f"{what}: not a Coffer pack (bad magic)")
    if version > PACK_VERSION:
        raise IntegrityError(f"{what}: unknown pack version {version} (damaged)")
    return int(kind), int(epoch)


def check_pack_size(size: int, what: str) -> None:
    """Raise IntegrityError if a pack of ``size`` bytes cannot hold a header, an
    empty trailer and its length field (checked before any of them is read)."""
    if size < HEADER_SIZE + _LENGTH.size + TAG_SIZE:
        raise IntegrityError(f"{what}: truncated pack ({size} bytes)")


def trailer_start(size: int, length_bytes: bytes, what: str) -> int:
    """Where the sealed trailer begins in a pack of ``size`` bytes (already
    :func:`check_pack_size`-checked) whose last four bytes are ``length_bytes``.
    Raises IntegrityError when the length leaves no room for the header."""
    if len(length_bytes) != _LENGTH.size:
        raise IntegrityError(f"{what}: trailer length out of range")
    (trailer_length,) = _LENGTH.unpack(length_bytes)
    start: int = size - _LENGTH.size - trailer_length
    if start < HEADER_SIZE:
        raise IntegrityError(f"{what}: trailer length out of range")
    return start


def blobs_end(entries: list[BlobEntry], what: str) -> int:
    """Where the blobs of ``entries`` end when they tile the pack from its header
    on, in offset order, with no gap or overlap. Raises IntegrityError otherwise."""
    position = HEADER_SIZE
    for entry in sorted(entries, key=lambda e: e.offset):
        if entry.offset != position:
            raise IntegrityError(f"{what}: blobs do not tile the pack at offset {position}")
        position += entry.length
    return position


def open_trailer(
    header: bytes,
    sealed: bytes,
    length_bytes: bytes,
    start: int,
    epoch_key: bytes,
    pack_id: bytes,
    what: str,
) -> list[BlobEntry]:
    """Authenticate and parse a pack's trailer from its pieces: the header's
    bytes, the sealed trailer found at ``start`` (:func:`trailer_start`) and
    the length field. The tag covers the header and the length field; the
    entries must tile the pack up to ``start``, so no byte of it goes
    unauthenticated. Raises IntegrityError. Pure; thread-safe.

    The one trailer parser: :func:`read_trailer` (a whole pack in memory) and
    the ranged reader of ``repair index`` (store/maintenance/packverify.py) use it.
    """
    key = pack_aead_key(epoch_key, pack_id)
    plain = decrypt(key, TRAILER_NONCE, sealed, header + length_bytes, what)
    raw = decode(decode_payload(plain, what), what)
    if not isinstance(raw, list):
        raise IntegrityError(f"{what}: malformed trailer")
    entries = [BlobEntry.from_list(item, what) for item in raw]
    if blobs_end(entries, what) != start:
        raise IntegrityError(f"{what}: unaccounted bytes before the trailer")
    return entries


def read_trailer(data: bytes, epoch_key: bytes, pack_id: bytes, what: str) -> list[BlobEntry]:
    """Authenticate and parse the trailer of a whole pack held in ``data``
    (:func:`open_trailer`). Raises IntegrityError."""
    check_pack_size(len(data), what)
    length_bytes = data[-_LENGTH.size :]
    start = trailer_start(len(data), length_bytes, what)
    sealed = data[start : len(data) - _LENGTH.size]
    return open_trailer(data[:HEADER_SIZE], sealed, length_bytes, start, epoch_key, pack_id, what)


def open_blob(
    sealed: bytes, epoch_key: bytes, pack_id: bytes, entry: BlobEntry, what: str
) -> bytes:
    """Decrypt and decompress one blob read from a pack (no ID check here).

    The plaintext is bounded by, and must match, the recorded raw length.
    Raises IntegrityError.
    """
    key = pack_aead_key(epoch_key, pack_id)
    payload = decrypt(
        key, nonce_for_offset(entry.offset), sealed, blob_ad(entry.type, entry.blob_id), what
    )
    return decode_payload(payload, what, entry.raw_length)
