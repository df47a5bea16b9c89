"""Bulk reads grouped by pack (store/repository/blobread.py) and the restore prefetch on them."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Backend, IntegrityError, LocalBackend, ObjectInfo, Repository
from store.backend import CachingBackend, RateLimitedBackend, RetryingBackend, reads_locally
from store.cache.blobindex import BlobLocation
from store.ids import BlobId, PackId
from store.repository.blobread import LOCAL_MAX_RANGE, MERGE_GAP, plan_ranges, read_blobs
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


def test_ranges_stay_within_max_range() -> None:
    pack = PackId(b"p" * 32)
    kib = 1024

    def at(offset: int, length: int) -> tuple[BlobId, BlobLocation]:
        blob = BlobId(offset.to_bytes(32, "big"))
        return blob, BlobLocation(pack, offset, length, length, 0, 0)

    blobs = [at(i * 300 * kib, 300 * kib) for i in range(7)] + [at(3 * 1024 * kib, 1536 * kib)]
    ranges = plan_ranges(blobs, max_range=1024 * kib)
    assert sorted(b for r in ranges for b, _ in r.blobs) == sorted(b for b, _ in blobs)
    # Three 300 KiB neighbours fit in 1 MiB, a fourth does not; the 1.5 MiB
    # blob is a range of its own.
    assert [(r.start // kib, r.end // kib) for r in ranges] == [
        (0, 900),
        (900, 1800),
        (1800, 2100),
        (3072, 4608),
    ]
    assert len(plan_ranges(blobs)) == 1  # the default (8 MiB) reads them in one


class RecordingLocalBackend(LocalBackend):
    """A local directory (reads_locally) that records the length of every ranged read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, durable=False)
        self.lengths: list[int] = []

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        data = super().get(key, offset, length)
        if key.startswith("data/"):
            self.lengths.append(len(data))
        return data


def test_a_local_repository_prefetches_in_small_ranges(tmp_path: Path) -> None:
    """Reads of a local directory cost a system call, whatever their size: the
    chunk cache's bulk loads read at most LOCAL_MAX_RANGE at a time, so a
    restore holds less in flight (docs/performance.md, "Restore (issue 14)")."""
    rng = random.Random(5)
    content = {f"big/{i:02d}.bin": rng.randbytes(300 * 1024) for i in range(12)}
    repo = make_repo(tmp_path / "repo")
    snapshot = snapshot_of(repo, content)
    repo.close()
    recording = RecordingLocalBackend(tmp_path / "repo")
    assert reads_locally(recording)
    with Repository.open(recording, PASSWORD, cache_root=tmp_path / "repo-cache") as again:
        reader = again.reader(snapshot)
        entries = [e for _, e in reader.walk() if e.is_file]
        recording.lengths.clear()
        reader.prefetch(entries)
        assert sum(recording.lengths) >= sum(len(v) for v in content.values())
        assert max(recording.lengths) <= LOCAL_MAX_RANGE
        assert sorted(reader.open(e).read() for e in entries) == sorted(content.values())


def test_reads_locally_sees_through_the_wrappers(tmp_path: Path) -> None:
    local = LocalBackend(tmp_path / "repo", durable=False)
    cached = CachingBackend(local, tmp_path / "cache")
    assert reads_locally(local)
    assert reads_locally(cached)
    assert reads_locally(cached.direct())
    assert reads_locally(RetryingBackend(RateLimitedBackend(local, download_kib=1024.0)))
    assert not reads_locally(CountingBackend(local))  # a backend of unknown kind: not local
