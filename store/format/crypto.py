"""Cryptographic primitives of the format (FORMAT.md §2 and §7).

AES-256-GCM with single-use keys derived by BLAKE3, keyed BLAKE3 IDs, and the
codec byte that says whether a plaintext is zstd-compressed. All functions are
thread-safe (compressors are per thread: zstandard's are not thread-safe).
"""

from __future__ import annotations

import os
import struct
import threading
from typing import overload

import zstandard
from blake3 import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from store.errors import IntegrityError

KEY_SIZE = 32
TAG_SIZE = 16
ZERO_NONCE = bytes(12)
TRAILER_NONCE = b"\xff" * 12

CODEC_RAW = 0x00
CODEC_ZSTD = 0x01

# Compression must save at least 1/32 of the size to be kept: below that the
# CPU spent decompressing on every read is not worth the bytes.
_MIN_SAVING_SHIFT = 5

# Decompression bound of payloads whose plaintext length is not recorded
# (sealed objects, pack trailers; FORMAT.md §7): at most this many times the
# payload, and never less than the floor.
UNRECORDED_RATIO = 256
UNRECORDED_FLOOR = 64 * 1024 * 1024
# No zstd frame expands more: each block regenerates at most 128 KiB and
# takes at least 4 bytes (an RLE block: 3-byte header, 1 byte). 16 MiB of
# zeros compressed at level 22 expands 31,715-fold.
_MAX_FRAME_RATIO = 32768
# No blob is larger (FORMAT.md §5): data chunks stop at the chunker's maximum
# (2 MiB), tree pages at their byte bound plus one entry. A recorded raw length
# above it is damage, whatever the frame says.
MAX_RECORDED_SIZE = 256 * 1024 * 1024

# Sealed objects (FORMAT.md §7): magic, version, epoch u32, salt.
SEALED_MAGIC = b"CFOB"
SEALED_VERSION = 1
_SEALED_HEADER = struct.Struct(">4sBI32s")
SEALED_HEADER_SIZE = _SEALED_HEADER.size  # 41

_local = threading.local()


def derive(context: str, material: bytes) -> bytes:
    """BLAKE3 key derivation: a 32-byte key for ``context`` from ``material``."""
    return blake3(material, derive_key_context=context).digest()


def keyed_hash(key: bytes, data: bytes | memoryview) -> bytes:
    """Keyed BLAKE3-256 (blob, index, snapshot IDs)."""
    return blake3(data, key=key).digest()


def nonce_for_offset(offset: int) -> bytes:
    """A blob's nonce: its offset in the pack, 12 bytes big-endian."""
    return offset.to_bytes(12, "big")


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    compressor = cache.get(level)
    if compressor is None:
        compressor = cache[level] = zstandard.ZstdCompressor(level=level)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


# Chunks this large are probed before they are compressed whole: three samples
# of _PROBE_BYTES (start, middle, end) that together save less than 1/64 mark
# the chunk incompressible (photos, video, archives, Office files: most of a
# tenant's bytes). Compressing such a chunk whole wrote a chunk-sized output
# that was then thrown away: fresh pages, faulted in and unmapped, cost more
# than zstd's own work (docs/performance.md, "CPU and memory of a full backup
# (issue 14)"). Borg's "auto" compression decides the same way, by a cheap try.
_PROBE_FROM = 128 * 1024
_PROBE_BYTES = 16 * 1024


def _worth_compressing(plaintext: bytes | memoryview, level: int) -> bool:
    view = memoryview(plaintext)
    middle = (len(view) - _PROBE_BYTES) // 2
    total = packed = 0
    for start in (0, middle, len(view) - _PROBE_BYTES):
        sample = view[start : start + _PROBE_BYTES]
        total += len(sample)
        packed += len(_compressor(level).compress(sample))
    return packed < total - (total >> (_MIN_SAVING_SHIFT + 1))


def encode_payload(plaintext: bytes | memoryview, level: int | None) -> bytes:
    """Codec byte ‖ body: zstd when it saves at least 1/32, raw otherwise (and for
    chunks whose samples do not compress: see _PROBE_FROM)."""
    if level is not None and len(plaintext) >= 64:
        if len(plaintext) >= _PROBE_FROM and not _worth_compressing(plaintext, level):
            return bytes([CODEC_RAW]) + plaintext
        packed = _compressor(level).compress(plaintext)
        if len(packed) < len(plaintext) - (len(plaintext) >> _MIN_SAVING_SHIFT):
            return bytes([CODEC_ZSTD]) + packed
    return bytes([CODEC_RAW]) + plaintext


@overload
def decode_payload(payload: bytes, what: str, expected: int | None = None) -> bytes: ...
@overload
def decode_payload(
    payload: memoryview, what: str, expected: int | None = None
) -> bytes | memoryview: ...
def decode_payload(
    payload: bytes | memoryview, what: str, expected: int | None = None
) -> bytes | memoryview:
    """Inverse of encode_payload, with the output bounded before it is allocated.

    ``expected`` is the plaintext length the format records (a blob's raw
    length): the plaintext must be exactly that long, and at most
    ``MAX_RECORDED_SIZE``. Without it (sealed objects, pack trailers, which
    record no length) the plaintext may be at most :func:`unrecorded_limit` of
    the payload. A zstd frame must record its content size (every frame Coffer
    writes does), and that size is checked against the bound before anything
    is decompressed, so a few bytes can never make us allocate gigabytes.
    Raises IntegrityError on an unknown codec, a frame that does not
    decompress, or a length that breaks the bound (FORMAT.md §2, §7).
    """
    if not payload:
        raise IntegrityError(f"{what}: empty payload")
    if expected is not None and expected > MAX_RECORDED_SIZE:
        raise IntegrityError(f"{what}: recorded length {expected} exceeds {MAX_RECORDED_SIZE}")
    codec = payload[0]
    limit = expected if expected is not None else unrecorded_limit(len(payload))
    if codec == CODEC_RAW:
        plain = payload[1:]
    elif codec == CODEC_ZSTD:
        plain = _decompress_bounded(payload[1:], limit, expected, what)
    else:
        raise IntegrityError(f"{what}: unknown codec {codec}")
    if expected is not None and len(plain) != expected:
        raise IntegrityError(f"{what}: plaintext is {len(plain)} bytes, recorded {expected}")
    if len(plain) > limit:
        raise IntegrityError(f"{what}: plaintext larger than {limit} bytes")
    return plain


@overload
def verified_plaintext(
    id_key: bytes, blob_id: bytes, payload: bytes, raw_length: int, what: str
) -> bytes: ...
@overload
def verified_plaintext(
    id_key: bytes, blob_id: bytes, payload: memoryview, raw_length: int, what: str
) -> bytes | memoryview: ...
def verified_plaintext(
    id_key: bytes, blob_id: bytes, payload: bytes | memoryview, raw_length: int, what: str
) -> bytes | memoryview:
    """A blob's plaintext from its decrypted payload (codec byte ‖ body): decoded
    within its recorded ``raw_length`` (:func:`decode_payload`), then checked
    against its ID (keyed BLAKE3 under ``id_key``). A raw payload's plaintext
    is a view of it. Raises IntegrityError naming ``what``. Thread-safe."""
    plaintext = decode_payload(payload, what, raw_length)
    if keyed_hash(id_key, plaintext) != blob_id:
        raise IntegrityError(f"{what}: content does not match its ID")
    return plaintext


def unrecorded_limit(payload_size: int) -> int:
    """The largest plaintext accepted for a payload whose length is not recorded.

    ``UNRECORDED_RATIO`` times the payload, and never less than
    ``UNRECORDED_FLOOR`` (FORMAT.md §7): objects Coffer writes (msgpack full of
    random IDs, JSON reports) compress far less than that, while a zstd frame
    of repeated bytes would expand 30,000-fold.
    """
    return max(UNRECORDED_FLOOR, UNRECORDED_RATIO * payload_size)


def _decompress_bounded(
    frame: bytes | memoryview, limit: int, expected: int | None, what: str
) -> bytes:
    try:
        claimed = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what}: cannot decompress: {exc}") from exc
    if claimed < 0:
        # Without a recorded size zstandard would have to guess a buffer.
        raise IntegrityError(f"{what}: compressed frame does not record its size")
    if claimed > _MAX_FRAME_RATIO * len(frame):
        # More than any zstd frame of this size can hold: a lie that would
        # make zstandard allocate the claimed size for nothing.
        raise IntegrityError(f"{what}: compressed frame of {len(frame)} bytes claims {claimed}")
    if claimed > limit or (expected is not None and claimed != expected):
        raise IntegrityError(
            f"{what}: compressed frame claims {claimed} bytes, "
            + (f"recorded {expected}" if expected is not None else f"at most {limit}")
        )
    try:
        # zstandard allocates exactly the frame's content size (checked above)
        # and fails if the frame produces more or less.
        return _decompressor().decompress(frame, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what}: cannot decompress: {exc}") from exc


def encrypt(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """AES-256-GCM; the caller guarantees (key, nonce) is never reused."""
    return AESGCM(key).encrypt(nonce, plaintext, ad)


def decrypt(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes, what: str) -> bytes:
    """AES-256-GCM open. Raises IntegrityError naming ``what`` on any tampering."""
    return decrypt_with(AESGCM(key), nonce, ciphertext, ad, what)


AeadCipher = AESGCM


def cipher_for(key: bytes) -> AeadCipher:
    """AES-256-GCM with ``key`` set up once, to open many blobs of one pack."""
    return AESGCM(key)


def decrypt_with(
    cipher: AeadCipher, nonce: bytes, ciphertext: bytes, ad: bytes, what: str
) -> bytes:
    """:func:`decrypt` with a cipher from :func:`cipher_for` (set up once for
    many blobs: a bulk read opens a range's blobs with one). Raises
    IntegrityError naming ``what`` on any tampering."""
    try:
        return cipher.decrypt(nonce, ciphertext, ad)
    except InvalidTag as exc:
        raise IntegrityError(f"{what}: authentication failed (damaged or tampered)") from exc


def seal(
    epoch: int,
    epoch_key: bytes,
    kind: str,
    name: str,
    plaintext: bytes,
    level: int | None = 3,
    extra_ad: bytes = b"",
) -> bytes:
    """Build a sealed object (FORMAT.md §7) stored under backend key ``name``."""
    salt = os.urandom(32)
    header = _SEALED_HEADER.pack(SEALED_MAGIC, SEALED_VERSION, epoch, salt)
    key = derive("coffer v1 object key", epoch_key + salt)
    ad = header + kind.encode() + b"\x00" + name.encode() + extra_ad
    return header + encrypt(key, ZERO_NONCE, encode_payload(plaintext, level), ad)


def sealed_epoch(blob: bytes, name: str) -> int:
    """The key epoch a sealed object was written with (to pick the key)."""
    if len(blob) < SEALED_HEADER_SIZE + TAG_SIZE:
        raise IntegrityError(f"{name}: truncated ({len(blob)} bytes)")
    magic, version, epoch, _salt = _SEALED_HEADER.unpack_from(blob)
    if magic != SEALED_MAGIC:
        raise IntegrityError(f"{name}: not a Coffer object (bad magic)")
    if version > SEALED_VERSION:
        raise IntegrityError(f"{name}: unknown object version {version} (damaged)")
    return int(epoch)


def unseal(blob: bytes, epoch_key: bytes, kind: str, name: str, extra_ad: bytes = b"") -> bytes:
    """Open a sealed object; raises IntegrityError when anything was altered."""
    sealed_epoch(blob, name)
    header = blob[:SEALED_HEADER_SIZE]
    salt = header[9:41]
    key = derive("coffer v1 object key", epoch_key + salt)
    ad = header + kind.encode() + b"\x00" + name.encode() + extra_ad
    payload = decrypt(key, ZERO_NONCE, blob[SEALED_HEADER_SIZE:], ad, name)
    return decode_payload(payload, name)
