"""Content-defined chunking (FastCDC via pyfastcdc) with the repository's secret seed.

pyfastcdc's chunker objects are not safe to share between threads, so each
thread gets its own (they are cheap to build).

Streams are cut through a window over a reusable buffer (:class:`_Buffers`),
not pyfastcdc's own ``cut_stream``: that one allocates and zero-fills a new
buffer of twice the maximum chunk size (4 MiB) for every stream, which for a
Microsoft 365 backup (thousands of small downloads, each a stream) cost more
CPU in page faults and ``memset`` than the chunking itself (docs/performance.md,
"Microsoft 365 backup"). The cut points are the same: a cut is only taken
where at least ``max`` bytes follow it in the window or the stream has ended,
and FastCDC never looks further than ``max`` bytes ahead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Literal, cast

from pyfastcdc import FastCDC

from store.format.config import ChunkerParams

# Spare stream buffers kept for reuse; more streams cut at once allocate their own.
_SPARE_BUFFERS = 4


class _Buffers:
    """A free list of equally sized bytearrays. Thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self) -> bytearray:
        with self._lock:
            if self._free:
                return self._free.pop()
        return bytearray(self.size)

    def give(self, buf: bytearray) -> None:
        with self._lock:
            if len(self._free) < _SPARE_BUFFERS:
                self._free.append(buf)


def _readinto_of(stream: BinaryIO) -> Callable[[memoryview], int]:
    readinto = getattr(stream, "readinto", None)
    if callable(readinto):
        return cast(Callable[[memoryview], int], readinto)

    def by_read(dest: memoryview) -> int:
        data = stream.read(len(dest))
        dest[: len(data)] = data
        return len(data)

    return by_read


class Chunker:
    """Cuts bytes, streams and files into chunks. Thread-safe."""

    def __init__(self, params: ChunkerParams, seed: int) -> None:
        self.params = params
        self._seed = seed
        self._local = threading.local()
        self._buffers = _Buffers(2 * params.max)

    def _cdc(self) -> FastCDC:
        cdc: FastCDC | None = getattr(self._local, "cdc", None)
        if cdc is None:
            cdc = FastCDC(
                self.params.normal_size,
                min_size=self.params.min,
                max_size=self.params.max,
                normalized_chunking=cast(Literal[0, 1, 2, 3], self.params.nc),
                seed=self._seed,
            )
            self._local.cdc = cdc
        return cdc

    def cut_bytes(self, data: bytes) -> Iterator[bytes]:
        """Chunks of ``data``; anything up to the minimum size is one chunk."""
        if len(data) <= self.params.min:
            yield data
            return
        view = memoryview(data)
        for chunk in self._cdc().cut_buf(view):
            yield bytes(view[chunk.offset : chunk.offset + chunk.length])

    def cut_stream(self, stream: BinaryIO) -> Iterator[bytes]:
        """Chunks read from ``stream`` (an empty stream yields none), cut exactly as
        :meth:`cut_bytes` cuts the whole content. Each chunk is a copy: the
        window's buffer goes back to the pool when the generator ends or closes."""
        readinto = _readinto_of(stream)
        lookahead = self.params.max
        buf = self._buffers.take()
        view = memoryview(buf)
        try:
            start = end = 0  # the window: bytes read, not yet handed out as chunks
            eof = False
            while True:
                if not eof and end - start < lookahead:
                    if start:
                        view[: end - start] = view[start:end]  # a memmove: overlap is fine
                        end -= start
                        start = 0
                    while end < len(buf):
                        got = readinto(view[end:])
                        if not got:
                            eof = True
                            break
                        end += got
                if start == end:
                    return
                window = view[start:end]
                consumed = 0
                for chunk in self._cdc().cut_buf(window):
                    if not eof and len(window) - chunk.offset < lookahead:
                        break  # this cut could depend on bytes not read yet
                    consumed = chunk.offset + chunk.length
                    yield bytes(window[chunk.offset : consumed])
                start += consumed
        finally:
            self._buffers.give(buf)

    def cut_file(self, path: Path) -> Iterator[bytes]:
        """Chunks of a regular file (read through the reusable window)."""
        with open(path, "rb") as handle:
            yield from self.cut_stream(handle)
