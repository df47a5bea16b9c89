"""The metadata cache: the conformance suite through it, and what it saves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.backend import Backend, CachingBackend, LocalBackend, ObjectInfo, open_backend
from store.backend.cache import is_cached
from store.errors import ObjectNotFound
from tests.store.support.backend_conformance import BackendConformance
from tests.store.test_backend_extra import ExtraConformance


class CountingBackend(Backend):
    """Counts the bytes and calls that reach the real backend."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.gets: Counter[str] = Counter()
        self.bytes_read = 0

    @property
    def location(self) -> str:
        return self.inner.location

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(key, offset, length)
        self.gets[key] += 1
        self.bytes_read += len(data)
        return data

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)


class TestCachingBackend(BackendConformance, ExtraConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        backend = CachingBackend(LocalBackend(tmp_path / "repo"), tmp_path / "cache")
        yield backend
        backend.close()


@pytest.fixture
def repo(tmp_path: Path) -> LocalBackend:
    backend = LocalBackend(tmp_path / "repo", durable=False)
    backend.put("config", b"config v1")
    for i in range(5):
        backend.put(f"snapshots/{i:064x}", f"snapshot {i}".encode())
        backend.put(f"index/{i:064x}", f"index {i}".encode() * 100)
    backend.put("keys/k1", b"key slot")
    backend.put("tree/aa/" + "a" * 64, bytes(range(256)) * 100)
    backend.put("data/bb/" + "b" * 64, b"file content" * 100)
    return backend


def _list_snapshots(backend: Backend) -> list[bytes]:
    return [backend.get(info.key) for info in backend.list("snapshots/")]


def test_listing_snapshots_downloads_each_once(repo: LocalBackend, tmp_path: Path) -> None:
    counting = CountingBackend(repo)
    cache = tmp_path / "cache"
    first = CachingBackend(counting, cache)
    assert len(_list_snapshots(first)) == 5
    before = counting.bytes_read
    # The same process again, then a new process with the same cache directory.
    assert sorted(_list_snapshots(first)) == sorted(
        _list_snapshots(CachingBackend(counting, cache))
    )
    assert counting.bytes_read == before
    assert all(count == 1 for count in counting.gets.values())
    assert first.hits == 5
    assert first.misses == 5


def test_ranges_of_tree_packs_come_from_one_download(repo: LocalBackend, tmp_path: Path) -> None:
    counting = CountingBackend(repo)
    backend = CachingBackend(counting, tmp_path / "cache")
    pack = "tree/aa/" + "a" * 64
    whole = repo.get(pack)
    for offset in range(0, len(whole), 1000):
        assert backend.get(pack, offset, 700) == whole[offset : offset + 700]
    assert backend.get(pack, len(whole) - 3, 100) == whole[-3:]
    assert counting.gets[pack] == 1


def test_data_packs_are_not_cached(repo: LocalBackend, tmp_path: Path) -> None:
    counting = CountingBackend(repo)
    backend = CachingBackend(counting, tmp_path / "cache")
    data = "data/bb/" + "b" * 64
    backend.get(data)
    backend.get(data, 5, 5)
    assert counting.gets[data] == 2
    assert not (tmp_path / "cache" / data).exists()
    assert not is_cached(data)
    assert not is_cached("locks/x")
    assert not is_cached("configs")
    assert is_cached("config")
    assert not is_cached("keys/x")  # rewritten in place by key commands
    assert not is_cached("keys/keyset")
    assert is_cached("tree/aa/x")


def test_delete_through_the_cache_invalidates(repo: LocalBackend, tmp_path: Path) -> None:
    backend = CachingBackend(repo, tmp_path / "cache")
    key = f"snapshots/{0:064x}"
    assert backend.get(key) == b"snapshot 0"
    backend.delete(key)
    with pytest.raises(ObjectNotFound):
        backend.get(key)
    assert not (tmp_path / "cache" / key).exists()


def test_deletes_by_another_process_are_noticed_by_listing(
    repo: LocalBackend, tmp_path: Path
) -> None:
    backend = CachingBackend(repo, tmp_path / "cache")
    _list_snapshots(backend)
    gone = f"snapshots/{3:064x}"
    repo.delete(gone)  # another process's prune
    listed = [info.key for info in backend.list("snapshots/")]
    assert gone not in listed
    with pytest.raises(ObjectNotFound):
        backend.get(gone)
    # An object rewritten with another size (never done by the engine, but
    # possible after a repair) is also dropped from the cache.
    rewritten = f"snapshots/{1:064x}"
    repo.put(rewritten, b"repaired snapshot")
    list(backend.list(""))
    assert backend.get(rewritten) == b"repaired snapshot"


def test_config_is_read_fresh_once_per_process(repo: LocalBackend, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    counting = CountingBackend(repo)
    first = CachingBackend(counting, cache)
    assert first.get("config") == b"config v1"
    assert first.get("config") == b"config v1"
    assert counting.gets["config"] == 1
    repo.put("config", b"config v2")  # rewritten by another machine
    assert CachingBackend(counting, cache).get("config") == b"config v2"


def test_put_writes_through(repo: LocalBackend, tmp_path: Path) -> None:
    counting = CountingBackend(repo)
    backend = CachingBackend(counting, tmp_path / "cache")
    backend.put("index/" + "c" * 64, b"new index")
    assert backend.get("index/" + "c" * 64) == b"new index"
    assert counting.gets["index/" + "c" * 64] == 0
    assert repo.get("index/" + "c" * 64) == b"new index"


def test_open_backend_composes_the_cache(tmp_path: Path) -> None:
    backend = open_backend(str(tmp_path / "repo"), cache_dir=tmp_path / "cache")
    assert isinstance(backend, CachingBackend)
    assert isinstance(backend.inner, LocalBackend)
    backend.put("config", b"c")
    assert (tmp_path / "cache" / "config").read_bytes() == b"c"
