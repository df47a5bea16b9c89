"""The retry wrapper, and the conformance suite through injected faults plus retry."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.backend import Backend, LocalBackend, RetryingBackend
from store.errors import BackendFull, ObjectNotFound, TransientBackendError
from tests.store.support.backend_conformance import BackendConformance
from tests.store.support.faulty_backend import FaultyBackend
from tests.store.test_backend_extra import ExtraConformance


def no_sleep(_seconds: float) -> None:
    return None


class TestConformanceThroughFaults(BackendConformance, ExtraConformance):
    """Every conformance check passes while a third of all calls fail."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        faulty = FaultyBackend(
            LocalBackend(tmp_path / "repo", durable=False),
            seed=8,
            drop_rate=0.2,
            error_rate=0.15,
            slow_rate=0.05,
            slow_delay=0.002,
        )
        retrying = RetryingBackend(faulty, attempts=30, sleep=no_sleep, rng=random.Random(1))
        yield retrying
        retrying.close()
        # The suite must really have gone through faults (the seed makes the
        # very first calls of every test fail), and every one was retried.
        failures = sum(faulty.injected[kind] for kind in ("503", "drop-before", "drop-after"))
        assert failures > 0
        assert retrying.retries == failures


def test_complete_and_verified_through_faults(tmp_path: Path) -> None:
    inner = LocalBackend(tmp_path / "repo", durable=False)
    faulty = FaultyBackend(inner, seed=42, drop_rate=0.3, error_rate=0.2)
    backend = RetryingBackend(faulty, attempts=40, sleep=no_sleep, rng=random.Random(2))
    rng = random.Random(7)
    expected = {
        f"data/{i % 16:02x}/{i:04d}": rng.randbytes(rng.randrange(0, 5000)) for i in range(300)
    }
    for key, data in expected.items():
        backend.put(key, data)
    for key in list(expected)[::3]:
        backend.delete(key)
        del expected[key]
    listed = {info.key: info.size for info in backend.list("data/")}
    assert listed == {key: len(data) for key, data in expected.items()}
    for key, data in expected.items():
        assert backend.get(key) == data
    # Verified against the storage itself, without faults: complete, nothing extra.
    assert {info.key for info in inner.list("")} == set(expected)
    assert all(inner.get(key) == data for key, data in expected.items())
    assert [
        name for _, _, names in os.walk(tmp_path) for name in names if name.startswith(".tmp")
    ] == []
    assert faulty.injected["drop-after"] > 20
    assert faulty.injected["503"] > 20


def test_gives_up_after_bounded_attempts_with_growing_jittered_delays(tmp_path: Path) -> None:
    faulty = FaultyBackend(LocalBackend(tmp_path), seed=1, error_rate=1.0)
    delays: list[float] = []
    backend = RetryingBackend(
        faulty, attempts=6, base_delay=1.0, max_delay=8.0, sleep=delays.append, rng=random.Random(3)
    )
    with pytest.raises(TransientBackendError, match="503"):
        backend.put("config", b"x")
    assert faulty.injected["503"] == 6
    assert len(delays) == 5
    bounds = [1.0, 2.0, 4.0, 8.0, 8.0]
    assert all(0 <= delay <= bound for delay, bound in zip(delays, bounds, strict=True))
    assert len(set(delays)) == 5  # jittered, not a fixed schedule


def test_permanent_errors_are_not_retried(tmp_path: Path) -> None:
    delays: list[float] = []
    faulty = FaultyBackend(LocalBackend(tmp_path), seed=1, full_after=10)
    backend = RetryingBackend(faulty, sleep=delays.append)
    with pytest.raises(ObjectNotFound):
        backend.get("snapshots/missing")
    with pytest.raises(ObjectNotFound):
        backend.stat("snapshots/missing")
    with pytest.raises(BackendFull):
        backend.put("data/00/big", b"x" * 11)
    with pytest.raises(ValueError):
        backend.put("../escape", b"x")
    assert faulty.injected["full"] == 1
    assert delays == []
    assert backend.retries == 0


def test_disk_full_after_n_bytes(tmp_path: Path) -> None:
    inner = LocalBackend(tmp_path)
    backend = RetryingBackend(FaultyBackend(inner, seed=5, full_after=1000), sleep=no_sleep)
    backend.put("data/00/a", b"a" * 600)
    with pytest.raises(BackendFull):
        backend.put("data/00/b", b"b" * 600)
    backend.put("data/00/c", b"c" * 400)
    assert sorted(info.key for info in inner.list("")) == ["data/00/a", "data/00/c"]


def test_listing_restarts_without_duplicates(tmp_path: Path) -> None:
    inner = LocalBackend(tmp_path)
    for i in range(50):
        inner.put(f"index/{i:03d}", b"i")
    faulty = FaultyBackend(inner, seed=11, drop_rate=0.9)
    backend = RetryingBackend(faulty, attempts=100, sleep=no_sleep)
    keys = [info.key for info in backend.list("index/")]
    assert sorted(keys) == [f"index/{i:03d}" for i in range(50)]
    assert faulty.injected["drop-after"] + faulty.injected["drop-before"] > 3
