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

from store.backend import Backend, ConditionalWriteUnsupported
from store.errors import ObjectNotFound


class BackendConformance:
    """Behaviour the engine relies on; see store/backend/base.py for the contract.

    ``CREATES`` says whether the backend (against the server the test uses)
    offers create-if-absent; a class whose server ignores preconditions sets
    it False and the suite checks that the backend says so instead of
    pretending (docs/backends.md names them).
    """

    CREATES = True

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

    def test_create_if_absent(self, backend: Backend) -> None:
        if not self.CREATES:
            with pytest.raises(ConditionalWriteUnsupported):
                backend.create("locks/created", b"first")
            assert not backend.exists("locks/created")
            assert [i.key for i in backend.list("locks/")] == []  # the probe cleaned up
            return
        backend.create("locks/created", b"first")  # False only if a retry hid our own win
        assert backend.get("locks/created") == b"first"
        assert backend.create("locks/created", b"second, longer") is False
        assert backend.get("locks/created") == b"first"
        backend.delete("locks/created")
        assert backend.create("locks/created", b"third") is True
        assert backend.get("locks/created") == b"third"
        assert {i.key for i in backend.list("locks/created")} == {"locks/created"}

    def test_concurrent_creators_have_at_most_one_winner(self, backend: Backend) -> None:
        if self.CREATES:
            backend.create("locks/warm-up", b"")  # the probe runs once, before the race
        contenders = 8
        barrier = threading.Barrier(contenders)
        outcomes: dict[int, bool] = {}
        errors: list[BaseException] = []

        def contend(n: int) -> None:
            try:
                barrier.wait()
                outcomes[n] = backend.create("locks/race", f"contender {n}".encode())
            except ConditionalWriteUnsupported as exc:
                if self.CREATES:
                    errors.append(exc)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        if not self.CREATES:
            # Every contender was told, none wrote anything (probes cleaned up).
            assert outcomes == {}
            assert [i.key for i in backend.list("locks/")] == []
            return
        winners = [n for n, won in outcomes.items() if won]
        stored = backend.get("locks/race")
        assert len(winners) <= 1
        assert stored in {f"contender {n}".encode() for n in range(contenders)}
        if winners:
            assert stored == f"contender {winners[0]}".encode()

    def test_successful_writes_leave_no_temporaries(self, backend: Backend) -> None:
        backend.put("data/aa/one", b"1")
        backend.put("data/aa/one", b"2")
        if self.CREATES:
            backend.create("locks/one", b"1")
            backend.create("locks/one", b"2")
        assert list(backend.temporaries()) == []
