"""The decrypted-chunk cache keeps its memory bound, whatever the chunk sizes,
and chunks it holds undecoded are verified before their plaintext is used."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from sources.folder import backup_folder
from store import BackupRun, ChunkCache, ChunkPayload, IntegrityError, Repository
from store.format.crypto import encode_payload
from store.ids import BlobId
from tests.store.support.helpers import make_repo


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


def _cache_of_three() -> tuple[ChunkCache, list[BlobId], list[BlobId]]:
    """A cache with room for three 1,000-byte chunks, the loads it makes, and
    four chunk IDs."""
    loads: list[BlobId] = []

    def load_many(ids: list[BlobId], _threads: int) -> Iterator[tuple[BlobId, bytes]]:
        loads.extend(ids)
        return ((blob_id, b"x" * 1000) for blob_id in ids)

    def load(blob_id: BlobId) -> bytes:
        loads.append(blob_id)
        return b"x" * 1000

    cache = ChunkCache(load, capacity=3 * (1000 + 256), load_many=load_many)
    return cache, loads, [BlobId(bytes([n]) * 32) for n in range(4)]


def test_a_prefetch_keeps_the_chunks_it_asks_for_that_are_cached() -> None:
    """A chunk cached before, asked for again by a prefetch (a batch sharing
    it with an earlier one), becomes recent: the prefetch's loads evict
    others, not it, and reading it after the prefetch loads nothing."""
    cache, loads, (old, other, new, newer) = _cache_of_three()
    cache.prefetch([old, other])  # old is now the least recently used
    cache.prefetch([old, new, newer])  # loads two: one of the first two goes
    assert loads == [old, other, new, newer]
    assert cache.contains(old)
    assert not cache.contains(other)
    for blob_id in (old, new, newer):
        cache.get(blob_id)
    assert loads == [old, other, new, newer]


def test_demoted_chunks_are_evicted_first() -> None:
    cache, loads, (first, second, third, fourth) = _cache_of_three()
    cache.prefetch([first, second, third])
    cache.demote([third, BlobId(b"z" * 32)])  # an uncached one is ignored
    cache.prefetch([fourth])
    assert not cache.contains(third)
    assert all(cache.contains(b) for b in (first, second, fourth))
    assert loads == [first, second, third, fourth]


def _repo_with_text(tmp_path: Path) -> tuple[Repository, list[tuple[BlobId, int]], bytes]:
    text = b"The quarterly figures are attached; regards, the office.\n" * 4000
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "minutes.txt").write_bytes(text)
    repo = make_repo(tmp_path / "repo", small=True)
    with BackupRun(repo) as run:
        snapshot = backup_folder(run, folder).snapshot
    entry = repo.reader(snapshot).stat("minutes.txt")
    assert len(entry.chunks) > 1
    return repo, list(entry.chunks), text


def test_chunks_loaded_undecoded_are_decoded_and_verified_on_first_read(
    tmp_path: Path,
) -> None:
    repo, chunks, text = _repo_with_text(tmp_path)
    cache = repo.chunk_cache.fresh(4 * 1024 * 1024, read_threads=0)
    ids = [chunk_id for chunk_id, _size in chunks]
    cache.prefetch(ids, decoded=False)
    payloads = [cache.payload(chunk_id) for chunk_id in ids]
    assert all(
        p is not None and p.raw_length == size
        for p, (_, size) in zip(payloads, chunks, strict=True)
    )
    # Held at their compressed size: far less than the text.
    assert cache.size < len(text) / 4
    assert b"".join(cache.get(chunk_id) for chunk_id in ids) == text
    assert [cache.payload(chunk_id) for chunk_id in ids] == [None] * len(ids)  # now plaintext
    assert cache.size > len(text)


def test_an_undecoded_chunk_that_is_not_its_id_is_refused(tmp_path: Path) -> None:
    repo, chunks, _text = _repo_with_text(tmp_path)
    (first, size), (second, _) = chunks[0], chunks[1]
    planted = ChunkPayload(encode_payload(b"p" * size, 3), size)

    def swapped(blob_ids: list[BlobId], _threads: int) -> Iterator[tuple[BlobId, ChunkPayload]]:
        for blob_id in blob_ids:  # authenticated, but another chunk's content
            yield blob_id, planted

    cache = ChunkCache(
        lambda blob_id: b"",
        load_payloads=swapped,
        codec=repo.chunk_cache.codec,
    )
    cache.prefetch([first, second], decoded=False)
    with pytest.raises(IntegrityError, match="does not match its ID"):
        cache.get(first)
    assert cache.payload(second) is planted  # untouched until it is read
