"""Cutting streams through the reusable window cuts exactly as cutting the whole bytes.

Chunk boundaries decide deduplication against every existing repository, so
the stream path (store/format/chunker.py: a window over a pooled buffer,
refilled whenever fewer than ``max`` bytes follow a cut) must give the same
chunks as :meth:`Chunker.cut_bytes` and as pyfastcdc's own ``cut_stream``,
which the stream path replaced, whatever sizes the stream's reads return.
"""

from __future__ import annotations

import io
import random

from hypothesis import given, settings
from pyfastcdc import FastCDC

from store import ChunkerParams
from store.format.chunker import Chunker
from tests.store.support.helpers import CUT_CASES, SMALL_CHUNKS, periodic_content

SEED = 0x5EED_C0FFEE


class TrickleStream(io.RawIOBase):
    """A stream whose reads return a random number of bytes (like a socket)."""

    def __init__(self, data: bytes, rng: random.Random, most: int) -> None:
        self.data = data
        self.pos = 0
        self.rng = rng
        self.most = most

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.rng.randint(1, self.most), len(self.data) - self.pos)
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


class ReadOnlyStream:
    """A stream with ``read`` and no ``readinto``."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._inner.read(size)


def _pyfastcdc(params: ChunkerParams, data: bytes) -> list[bytes]:
    cdc = FastCDC(
        params.normal_size,
        min_size=params.min,
        max_size=params.max,
        normalized_chunking=params.nc,  # type: ignore[arg-type]
        seed=SEED,
    )
    return [bytes(c.data) for c in cdc.cut_stream(io.BytesIO(data))]


@settings(max_examples=80, deadline=None)
@given(*CUT_CASES)
def test_stream_cuts_equal_whole_bytes_cuts(size: int, seed: int, period: int, most: int) -> None:
    rng = random.Random(seed)
    data = periodic_content(rng, size, period)
    chunker = Chunker(SMALL_CHUNKS, SEED)
    expected = list(chunker.cut_bytes(data)) if data else []
    assert list(chunker.cut_stream(TrickleStream(data, rng, most))) == expected
    assert list(chunker.cut_stream(ReadOnlyStream(data))) == expected  # type: ignore[arg-type]
    assert _pyfastcdc(SMALL_CHUNKS, data) == expected


def test_default_sizes_match_pyfastcdc_on_a_large_stream() -> None:
    rng = random.Random(7)
    data = periodic_content(rng, 9 * 1024 * 1024 + 12345, 97)
    params = ChunkerParams()
    chunker = Chunker(params, SEED)
    got = list(chunker.cut_stream(TrickleStream(data, rng, 300_000)))
    assert got == _pyfastcdc(params, data)
    assert len(got) > 8
    assert b"".join(got) == data


def test_streams_cut_at_once_do_not_share_a_window() -> None:
    # Two generators alive in one thread each hold their own pooled buffer; a
    # buffer handed back (a generator finished or closed) is reused cleanly.
    rng = random.Random(11)
    chunker = Chunker(SMALL_CHUNKS, SEED)
    first, second = rng.randbytes(150_000), rng.randbytes(90_000)
    a = chunker.cut_stream(TrickleStream(first, rng, 3000))
    b = chunker.cut_stream(TrickleStream(second, rng, 3000))
    got_a: list[bytes] = []
    got_b: list[bytes] = []
    for _ in range(5):  # a chunk of one, then of the other
        got_a.append(next(a))
        got_b.append(next(b))
    got_a.extend(a)
    got_b.extend(b)
    assert got_a == list(chunker.cut_bytes(first))
    assert got_b == list(chunker.cut_bytes(second))
    abandoned = chunker.cut_stream(io.BytesIO(rng.randbytes(80_000)))
    next(abandoned)
    abandoned.close()
    third = rng.randbytes(70_000)
    assert list(chunker.cut_stream(io.BytesIO(third))) == list(chunker.cut_bytes(third))
