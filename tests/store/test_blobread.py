"""Bulk reads grouped by pack (store/repository/blobread.py) and the restore prefetch on them."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Backend, IntegrityError, LocalBackend, ObjectInfo, Repository
from store.cache.blobindex import BlobLocation
from store.ids import BlobId, PackId
from store.repository.blobread import MERGE_GAP, plan_ranges, read_blobs
from tests.store.support.helpers import PASSWORD, make_repo, snapshot_of


class CountingBackend(Backend):
    """Counts the reads that reach the backend."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.gets = 0
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return self.inner.location

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._lock:
            self.gets += 1
        return self.inner.get(key, offset, length)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)


def files(seed: int, count: int = 300) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"mail/{i:04d}.eml": rng.randbytes(rng.randrange(100, 3000)) for i in range(count)}


def test_ranges_merge_neighbours_and_split_at_gaps() -> None:
    pack = PackId(b"p" * 32)

    def at(offset: int, length: int) -> tuple[BlobId, BlobLocation]:
        blob = BlobId(offset.to_bytes(32, "big"))
        return blob, BlobLocation(pack, offset, length, length, 0, 0)

    far = 250 + MERGE_GAP + 1  # just beyond the gap worth reading through
    ranges = plan_ranges([at(200, 50), at(10, 100), at(far, 10), at(110, 40)])
    assert [(r.start, r.end, len(r.blobs)) for r in ranges] == [(10, 250, 3), (far, far + 10, 1)]


def test_read_blobs_reads_each_pack_once_and_verifies(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    snapshot = snapshot_of(repo, files(1))
    chunks = [c for _, e in repo.reader(snapshot).walk() if e.is_file for c, _ in e.chunks]
    repo.close()
    counting = CountingBackend(LocalBackend(tmp_path / "repo", durable=False))
    with Repository.open(counting, PASSWORD, cache_root=tmp_path / "repo-cache") as again:
        counting.gets = 0
        loaded = {b.blob_id: b.plaintext for b in read_blobs(again, chunks)}
        assert set(loaded) == set(chunks)
        packs = {again.locate(c).pack_id for c in chunks}
        assert counting.gets == len(packs) < len(chunks) / 50
        assert sorted(loaded.values()) == sorted(files(1).values())
        # One flipped byte in a pack: the blob fails authentication.
        location = again.locate(chunks[0])
        name = location.pack_id.hex()
        with open(tmp_path / "repo" / "data" / name[:2] / name, "r+b") as pack:
            pack.seek(location.offset + 3)
            byte = pack.read(1)
            pack.seek(location.offset + 3)
            pack.write(bytes([byte[0] ^ 1]))
        with pytest.raises(IntegrityError, match="authentication failed"):
            list(read_blobs(again, [chunks[0]]))


def test_prefetched_restores_read_packs_not_chunks(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    snapshot = snapshot_of(repo, files(2))
    repo.close()
    counting = CountingBackend(LocalBackend(tmp_path / "repo", durable=False))
    with Repository.open(counting, PASSWORD, cache_root=tmp_path / "repo-cache") as again:
        reader = again.reader(snapshot)
        entries = [e for _, e in reader.walk() if e.is_file]
        counting.gets = 0
        reader.prefetch(entries)
        prefetch_gets = counting.gets
        contents = sorted(reader.open(e).read() for e in entries)
        assert counting.gets == prefetch_gets  # everything came from the cache
        assert prefetch_gets < 10
        assert contents == sorted(files(2).values())
