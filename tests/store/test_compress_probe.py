"""Chunks whose samples do not compress are stored raw without compressing them whole.

Most of a tenant's bytes (photos, video, archives, Office files) do not
compress; zstd over such a chunk wrote a chunk-sized output only to throw it
away, and those fresh pages cost more than zstd itself (docs/performance.md,
"CPU and memory of a full backup (issue 14)"). encode_payload probes three
samples first. What is stored must still decode to the plaintext, and a chunk
that compresses in any sampled part is still compressed whole.
"""

from __future__ import annotations

import random
import tracemalloc

from store.format.crypto import CODEC_RAW, CODEC_ZSTD, decode_payload, encode_payload

SIZE = 1 << 20


def _text(size: int) -> bytes:
    return b"".join(b"line %d of a message, words and more words\n" % i for i in range(size // 20))[
        :size
    ]


def test_an_incompressible_chunk_is_stored_raw_without_a_whole_compressed_copy() -> None:
    data = random.Random(1).randbytes(SIZE)
    tracemalloc.start()
    try:
        payload = encode_payload(data, 3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert payload[0] == CODEC_RAW
    assert payload[1:] == data
    # The raw payload itself, plus the samples' small outputs; compressing the
    # whole chunk first would add a second chunk-sized buffer.
    assert peak < SIZE + SIZE // 4


def test_a_compressible_chunk_is_compressed() -> None:
    data = _text(SIZE)
    payload = encode_payload(data, 3)
    assert payload[0] == CODEC_ZSTD
    assert len(payload) < SIZE // 4
    assert decode_payload(payload, "test", SIZE) == data


def test_a_chunk_compressible_in_one_sample_only_is_compressed_whole() -> None:
    # Random bytes with text in the middle (where the middle sample is taken):
    # the whole chunk saves more than 1/32, so it must be compressed.
    rng = random.Random(2)
    quarter = SIZE // 4
    data = rng.randbytes(quarter) + _text(2 * quarter) + rng.randbytes(quarter)
    payload = encode_payload(data, 3)
    assert payload[0] == CODEC_ZSTD
    assert decode_payload(payload, "test", SIZE) == data


def test_small_and_view_inputs_encode_as_bytes_would() -> None:
    rng = random.Random(3)
    for data in (rng.randbytes(100), _text(5000), rng.randbytes(200_000), _text(300_000)):
        assert decode_payload(encode_payload(memoryview(data), 3), "test", len(data)) == data
        assert encode_payload(memoryview(data), 3)[0] == encode_payload(data, 3)[0]
