"""The conformance suite every storage backend runs (like restic's backend/test).

Use it by subclassing in a test module and providing a ``backend`` fixture that
yields a fresh, empty backend::

    class TestLocal(BackendConformance):
        @pytest.fixture
        def backend(self, tmp_path): ...
"""

from __future__ import annotations

import os
import threading

import pytest

from store.backend import Backend
from store.errors import ObjectNotFound


class BackendConformance:
    """Behaviour the engine relies on; see store/backend/base.py for the contract."""

    def test_put_get_round_trip(self, backend: Backend) -> None:
        data = os.urandom(100_000)
        backend.put("data/ab/abcdef", data)
        assert backend.get("data/ab/abcdef") == data

    def test_empty_object(self, backend: Backend) -> None:
        backend.put("index/empty", b"")
        assert backend.get("index/empty") == b""
        assert backend.stat("index/empty").size == 0

    def test_ranges(self, backend: Backend) -> None:
        data = bytes(range(256)) * 40
        backend.put("data/00/range", data)
        assert backend.get("data/00/range", 0, 10) == data[:10]
        assert backend.get("data/00/range", 1000, 500) == data[1000:1500]
        assert backend.get("data/00/range", 10000) == data[10000:]
        # A range past the end is cut at the end.
        assert backend.get("data/00/range", len(data) - 5, 100) == data[-5:]

    def test_missing_object(self, backend: Backend) -> None:
        with pytest.raises(ObjectNotFound):
            backend.get("snapshots/missing")
        with pytest.raises(ObjectNotFound):
            backend.stat("snapshots/missing")
        assert not backend.exists("snapshots/missing")

    def test_overwrite_replaces(self, backend: Backend) -> None:
        backend.put("config", b"one")
        backend.put("config", b"two, longer")
        assert backend.get("config") == b"two, longer"
        assert backend.stat("config").size == len(b"two, longer")

    def test_list_recursive_with_sizes(self, backend: Backend) -> None:
        objects = {
            "data/00/a": b"1",
            "data/01/b": b"22",
            "data/ff/c": b"333",
            "index/i1": b"4444",
            "snapshots/s1": b"55555",
        }
        for key, value in objects.items():
            backend.put(key, value)
        listed = {info.key: info.size for info in backend.list("data/")}
        assert listed == {k: len(v) for k, v in objects.items() if k.startswith("data/")}
        assert {info.key for info in backend.list("index/")} == {"index/i1"}
        assert list(backend.list("nothing/")) == []
        everything = {info.key for info in backend.list("")}
        assert everything == set(objects)

    def test_delete_idempotent(self, backend: Backend) -> None:
        backend.put("locks/l1", b"x")
        backend.delete("locks/l1")
        backend.delete("locks/l1")
        assert not backend.exists("locks/l1")
        assert list(backend.list("locks/")) == []

    def test_large_object(self, backend: Backend) -> None:
        data = os.urandom(17 * 1024 * 1024 + 3)
        backend.put("data/17/large", data)
        assert backend.stat("data/17/large").size == len(data)
        assert (
            backend.get("data/17/large", 16 * 1024 * 1024, 1024)
            == data[16 * 1024 * 1024 : 16 * 1024 * 1024 + 1024]
        )
        assert backend.get("data/17/large") == data

    def test_concurrent_writers_and_readers(self, backend: Backend) -> None:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(10):
                    key = f"data/{n:02x}/obj{i}"
                    payload = bytes([n]) * (1000 + i)
                    backend.put(key, payload)
                    assert backend.get(key) == payload
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert len(list(backend.list("data/"))) == 60

    def test_rejects_escaping_keys(self, backend: Backend) -> None:
        for key in ("../x", "data/../../x", "/abs", "data//x", ""):
            with pytest.raises(ValueError):
                backend.put(key, b"x")
