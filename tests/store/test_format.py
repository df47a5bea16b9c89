"""Known-answer vectors and round trips of the format's building blocks.

The vectors pin the format: if one changes, repositories written before the
change can no longer be read, so such a change needs a new format version.
"""

from __future__ import annotations

import json
import os
import random
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import ChunkerParams, IntegrityError, Keyring
from store.format.chunker import Chunker
from store.format.crypto import (
    CODEC_RAW,
    CODEC_ZSTD,
    decode_payload,
    encode_payload,
    keyed_hash,
    seal,
    unseal,
)
from store.format.pack import HEADER_SIZE, PackBuilder, open_blob, read_trailer

ROOT = bytes(range(32))
EPOCH_KEY = bytes(range(32, 64))
KEYRING = Keyring(root=ROOT, epochs={0: EPOCH_KEY}, current=0)
DATA = Path(__file__).resolve().parent.parent / "data"


def test_key_derivation_vectors() -> None:
    # Computed once for format version 1; they must never change.
    assert KEYRING.chunker_seed == 1226728670495238037
    assert KEYRING.blob_id_key.hex() == (
        "fce49d520134dc43fd6477f71f528c2a695f514a1407544fb68531bf158438f0"
    )
    assert KEYRING.tree_split_key.hex() == (
        "2c6307309ef52fcca1c53c40cf3c2623cd73a5945010bfd3eae2962452baf82f"
    )
    assert keyed_hash(KEYRING.blob_id_key, b"hello").hex() == (
        "f521b9305fe0ceae7bbcf299ea6c115643e82017fdb8afa6a1be63d90b88433b"
    )


def test_chunker_vector() -> None:
    # A fixed input and seed give the committed cut points (pins pyfastcdc's
    # behaviour and our parameters; tests/data/vectors/v1.json).
    vectors = json.loads((DATA / "vectors" / "v1.json").read_text())
    data = bytes((i * 7919 + (i >> 8) * 31) % 251 for i in range(200_000))
    chunker = Chunker(ChunkerParams(min=1024, normal_size=4096, max=16384), KEYRING.chunker_seed)
    sizes = [len(c) for c in chunker.cut_bytes(data)]
    assert sizes == vectors["chunks"]["small"]
    other_seed = Chunker(ChunkerParams(min=1024, normal_size=4096, max=16384), 12345)
    assert [len(c) for c in other_seed.cut_bytes(data)] != sizes


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=120_000),
    st.integers(min_value=1, max_value=2**62),
    st.integers(min_value=1, max_value=255),
)
def test_chunks_respect_bounds_and_concatenate(size: int, seed: int, period: int) -> None:
    # Random bytes, and periodic runs (the chunker's worst case for max size).
    rng = random.Random(seed)
    data = rng.randbytes(size // 2) + bytes(range(period)) * (size // (2 * period))
    params = ChunkerParams(min=1024, normal_size=4096, max=16384)
    chunks = list(Chunker(params, seed | 1).cut_bytes(data))
    assert b"".join(chunks) == data
    for chunk in chunks[:-1]:
        assert params.min <= len(chunk) <= params.max
    if chunks:
        assert len(chunks[-1]) <= params.max


def test_compression_skipped_when_it_does_not_pay() -> None:
    random_bytes = os.urandom(100_000)
    text = b"the same line again and again\n" * 4000
    assert encode_payload(random_bytes, 3)[0] == CODEC_RAW
    packed = encode_payload(text, 3)
    assert packed[0] == CODEC_ZSTD
    assert len(packed) < len(text) // 10
    assert decode_payload(packed, "t") == text
    assert decode_payload(encode_payload(random_bytes, 3), "t") == random_bytes


def test_sealed_object_binds_kind_and_name() -> None:
    blob = seal(0, EPOCH_KEY, "snapshot", "snapshots/aa", b"plaintext")
    assert unseal(blob, EPOCH_KEY, "snapshot", "snapshots/aa") == b"plaintext"
    with pytest.raises(IntegrityError):
        unseal(blob, EPOCH_KEY, "index", "snapshots/aa")
    with pytest.raises(IntegrityError):
        unseal(blob, EPOCH_KEY, "snapshot", "snapshots/bb")
    for position in range(len(blob)):
        damaged = bytearray(blob)
        damaged[position] ^= 0x01
        with pytest.raises(IntegrityError):
            unseal(bytes(damaged), EPOCH_KEY, "snapshot", "snapshots/aa")


def _pack_with(blobs: list[bytes]) -> tuple[PackBuilder, bytes, list[object]]:
    builder = PackBuilder(1, 0, EPOCH_KEY)
    for data in blobs:
        builder.add(0, keyed_hash(KEYRING.blob_id_key, data), len(data), encode_payload(data, 3))
    pack_bytes, entries = builder.finish()
    return builder, pack_bytes, list(entries)


def test_pack_round_trip_and_every_byte_authenticated() -> None:
    blobs = [os.urandom(300), b"text " * 100, b"", os.urandom(50)]
    builder, pack_bytes, entries = _pack_with(blobs)
    trailer = read_trailer(pack_bytes, EPOCH_KEY, builder.pack_id, "pack")
    assert sorted(e.offset for e in trailer) == sorted(e.offset for e in entries)  # type: ignore[attr-defined]
    by_id = {keyed_hash(KEYRING.blob_id_key, d): d for d in blobs}
    for entry in trailer:
        sealed = pack_bytes[entry.offset : entry.offset + entry.length]
        assert open_blob(sealed, EPOCH_KEY, builder.pack_id, entry, "blob") == by_id[entry.blob_id]
    assert trailer[0].offset >= HEADER_SIZE
    # Flip one bit at every position: the trailer or the blob it hits must fail.
    for position in range(len(pack_bytes)):
        damaged = bytearray(pack_bytes)
        damaged[position] ^= 0x80
        with pytest.raises(IntegrityError):
            found = read_trailer(bytes(damaged), EPOCH_KEY, builder.pack_id, "pack")
            for entry in found:
                sealed = bytes(damaged[entry.offset : entry.offset + entry.length])
                open_blob(sealed, EPOCH_KEY, builder.pack_id, entry, "blob")


def test_pack_key_is_bound_to_pack_id() -> None:
    _builder, pack_bytes, _ = _pack_with([b"x" * 100])
    with pytest.raises(IntegrityError):
        read_trailer(pack_bytes, EPOCH_KEY, os.urandom(32), "pack")


def test_blob_nonces_are_offsets_and_unique() -> None:
    _, _, entries = _pack_with([os.urandom(100) for _ in range(50)])
    offsets = [e.offset for e in entries]  # type: ignore[attr-defined]
    assert len(set(offsets)) == len(offsets)


def test_finishing_a_pack_lets_each_payload_go_once_it_is_encrypted() -> None:
    # A pack in upload held its payloads, their ciphertexts and the joined pack
    # at once (three packs' worth, twice over with two uploads in flight): the
    # largest part of a Microsoft 365 backup's peak memory.
    size, count = 1024 * 1024, 8
    tracemalloc.start()
    try:
        builder = PackBuilder(1, 0, EPOCH_KEY)
        for _ in range(count):
            payload = bytes([0]) + os.urandom(size)  # held by the builder alone
            builder.add(0, keyed_hash(KEYRING.blob_id_key, payload), size, payload)
        del payload
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        pack_bytes, entries = builder.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(entries) == count
    assert len(pack_bytes) > count * size
    # Finishing adds one pack (the joined bytes) to what the builder held: the
    # ciphertexts replace the payloads as they come, instead of adding to them.
    assert peak - before < 1.5 * count * size
    assert len(builder) == 0
