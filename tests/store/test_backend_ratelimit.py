"""Bandwidth limits: the token bucket's arithmetic, and the rate measured for real."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from store.backend import LocalBackend, RateLimitedBackend, open_backend
from store.backend.ratelimit import KIB, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_bucket_arithmetic() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, 500, clock=clock, sleep=clock.sleep)
    assert bucket.reserve(500) == 0  # the initial burst
    assert bucket.reserve(1000) == pytest.approx(1.0)  # in debt: wait a second
    assert bucket.reserve(500) == pytest.approx(1.5)  # queued behind the debt
    clock.now = 10.0
    assert bucket.reserve(400) == 0  # refilled, but never beyond the burst
    assert bucket.reserve(200) == pytest.approx(0.1)


def test_bucket_long_run_rate_with_fake_clock() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10_000, 1_000, clock=clock, sleep=clock.sleep)
    for size in [3000, 10, 25_000, 700, 1] * 20:
        bucket.take(size)
    moved = sum([3000, 10, 25_000, 700, 1]) * 20
    assert clock.now == pytest.approx((moved - 1_000) / 10_000)


def _measure(limit_kib: int, threads: int, objects: int, size: int, upload: bool, root: Path):
    inner = LocalBackend(root, durable=False)
    if not upload:
        for n in range(threads):
            inner.put(f"data/{n:02x}/obj", b"d" * size)
    backend = RateLimitedBackend(
        inner, upload_kib=limit_kib if upload else None, download_kib=None if upload else limit_kib
    )
    bucket = backend.upload if upload else backend.download
    assert bucket is not None

    def work(n: int) -> None:
        for i in range(objects):
            if upload:
                backend.put(f"data/{n:02x}/{i}", b"u" * size)
            else:
                assert len(backend.get(f"data/{n:02x}/obj")) == size

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    start = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - start
    moved = threads * objects * size
    # The bucket starts full: the first `burst` bytes are free.
    return (moved - bucket.burst) / elapsed / KIB


@pytest.mark.parametrize("upload", [True, False], ids=["upload", "download"])
def test_measured_rate_matches_the_limit(tmp_path: Path, upload: bool) -> None:
    # 2 MiB at 1024 KiB/s from four threads: about two seconds.
    rate = _measure(1024, threads=4, objects=16, size=32 * KIB, upload=upload, root=tmp_path)
    print(f"{'upload' if upload else 'download'}: limit 1024 KiB/s, measured {rate:.0f} KiB/s")
    # The promise is the ceiling: never faster than the limit (sleeping can only
    # make it slower). How much slower depends on the machine's load, so the
    # floor only catches a limiter that waits far too long; the exact waits
    # are checked with a fake clock above.
    assert rate < 1024 * 1.05
    assert rate > 1024 * 0.3


def test_open_backend_applies_limits(tmp_path: Path) -> None:
    backend = open_backend(str(tmp_path), limit_upload=100, limit_download=200)
    assert isinstance(backend, RateLimitedBackend)
    assert backend.upload is not None
    assert backend.upload.rate == 100 * KIB
    assert backend.download is not None
    assert backend.download.rate == 200 * KIB
    assert isinstance(open_backend(str(tmp_path), limit_upload=0), LocalBackend)
