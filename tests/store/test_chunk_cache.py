"""The decrypted-chunk cache keeps its memory bound, whatever the chunk sizes."""

from __future__ import annotations

import tracemalloc

from store import ChunkCache
from store.ids import BlobId


def test_tiny_chunks_stay_within_the_bound() -> None:
    capacity = 1024 * 1024
    cache = ChunkCache(lambda blob_id: bytes(blob_id)[:12], capacity=capacity)
    tracemalloc.start()
    try:
        for n in range(30_000):
            blob_id = BlobId(n.to_bytes(32, "big"))
            assert cache.get(blob_id) == bytes(blob_id)[:12]
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Counting only the chunks' bytes, 30,000 12-byte chunks "fit" in 1 MiB
    # and the cache held about 6 MiB.
    assert held < 2 * capacity, held
    assert cache.size <= capacity


def test_recent_chunks_are_served_from_the_cache() -> None:
    loads: list[BlobId] = []

    def load(blob_id: BlobId) -> bytes:
        loads.append(blob_id)
        return b"x" * 1000

    cache = ChunkCache(load, capacity=64 * 1024)
    ids = [BlobId(n.to_bytes(32, "big")) for n in range(40)]
    for blob_id in ids:
        cache.get(blob_id)
    for blob_id in ids:  # 40 * (1000 + overhead) fits in 64 KiB: no second load
        cache.get(blob_id)
    assert loads == ids
