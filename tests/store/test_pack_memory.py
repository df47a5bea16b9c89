"""A pack is held once while it is finished and stored (store/format/pack.py,
Backend.put_buffer): the memory a backup's packs cost (docs/performance.md,
"A backup's memory")."""

from __future__ import annotations

import os
import random
import tracemalloc
from pathlib import Path

from store import LocalBackend
from store.backend.cache import CachingBackend
from store.backend.ratelimit import RateLimitedBackend
from store.backend.retry import RetryingBackend
from store.format.crypto import encode_payload
from store.format.pack import PackBuilder, open_blob, read_trailer
from store.ids import DATA, BlobId

MIB = 1024 * 1024
KEY = bytes(range(32))


def _builder(sizes: list[int], seed: int = 1) -> PackBuilder:
    rng = random.Random(seed)
    builder = PackBuilder(DATA, 0, KEY)
    for number, size in enumerate(sizes):
        payload = encode_payload(rng.randbytes(size), None)
        builder.add(DATA, BlobId(number.to_bytes(32, "big")), size, payload)
    return builder


def test_finishing_holds_the_pack_once() -> None:
    """While a 16 MiB pack is sealed, the payloads it drops and the pack it
    grows together stay near one pack's size. Sealing each blob apart and
    joining them at the end held it twice (the peak was 2x)."""
    builder = _builder([2 * MIB] * 6 + [200_000] * 20 + [3000] * 300)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        data, entries = builder.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data) > 15 * MIB
    assert peak - before < 1.25 * len(data), (peak - before) / len(data)
    # The pack is whole: its trailer names every blob where it lies, and each opens.
    pack = bytes(data)
    assert read_trailer(pack, KEY, builder.pack_id, "pack") == entries
    for entry in entries[:40]:
        sealed = pack[entry.offset : entry.offset + entry.length]
        assert len(open_blob(sealed, KEY, builder.pack_id, entry, "blob")) == entry.raw_length


def test_a_blob_larger_than_the_zero_area_is_sealed_too() -> None:
    builder = _builder([5 * MIB, 10])
    data, entries = builder.finish()
    pack = bytes(data)
    for entry in entries:
        sealed = pack[entry.offset : entry.offset + entry.length]
        assert len(open_blob(sealed, KEY, builder.pack_id, entry, "blob")) == entry.raw_length


def test_put_buffer_through_the_wrappers_stores_the_bytes(tmp_path: Path) -> None:
    local = LocalBackend(tmp_path / "repo", durable=False)
    chain = RetryingBackend(
        CachingBackend(RateLimitedBackend(local, upload_kib=1e9), tmp_path / "cache")
    )
    for key in ("data/ab/" + "ab" * 32, "tree/cd/" + "cd" * 32):
        payload = bytearray(os.urandom(300_000))
        chain.put_buffer(key, payload)
        assert local.get(key) == payload
        assert chain.get(key) == payload  # a tree pack is served from the cache


def test_put_buffer_goes_through_a_local_subclass_put(tmp_path: Path) -> None:
    """A subclass watching put() (the crash tests' backends) sees packs too."""
    seen: list[str] = []

    class Watching(LocalBackend):
        def put(self, key: str, data: bytes | bytearray) -> None:
            seen.append(key)
            super().put(key, data)

    Watching(tmp_path, durable=False).put_buffer("data/00/x", bytearray(b"pack"))
    assert seen == ["data/00/x"]
