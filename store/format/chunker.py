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

Content that arrives in pieces (a download) is cut as it arrives by a
:class:`StreamCutter` (the same rule, pushed instead of pulled), so it need not
be spooled to a file and read back first; its chunks are views into the
window, not copies, each valid until the cutter is used again.
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


class StreamCutter:
    """Cuts content pushed to it in pieces exactly as :meth:`Chunker.cut_bytes` cuts
    the whole content. Not thread-safe: one per stream.

    Use: :meth:`take` bytes until :attr:`full`, then iterate :meth:`cut` (the
    chunks whose cut cannot depend on bytes not yet pushed), and at the end of
    the content iterate :meth:`cut` with ``eof=True``. Each chunk is a
    memoryview into the window, valid until the iteration continues or the
    cutter is used again: a caller keeps a chunk only by copying it. The window
    (twice the maximum chunk size) comes from the chunker's pool and goes back at
    :meth:`close`; :meth:`reset` starts the content again (a retried download).
    """

    def __init__(self, chunker: Chunker) -> None:
        self._chunker = chunker
        self._lookahead = chunker.params.max
        self._buf: bytearray | None = chunker._buffers.take()
        self._view = memoryview(self._buf)
        self._start = self._end = 0  # the window: bytes taken, not yet cut off as chunks

    @property
    def full(self) -> bool:
        """True when :meth:`take` takes nothing more until :meth:`cut` runs."""
        return self._end == len(self._view) and self._end - self._start >= self._lookahead

    def take(self, data: bytes | bytearray | memoryview) -> int:
        """Copy as much of ``data`` into the window as fits; returns how much."""
        if self._buf is None:
            raise ValueError("the cutter is closed")
        if self._end == len(self._view) and self._start:
            # Only the uncut tail is kept (less than the lookahead after a cut).
            self._view[: self._end - self._start] = self._view[self._start : self._end]
            self._end -= self._start
            self._start = 0
        count = min(len(data), len(self._view) - self._end)
        self._view[self._end : self._end + count] = memoryview(data)[:count]
        self._end += count
        return count

    def cut(self, *, eof: bool = False) -> Iterator[memoryview]:
        """The chunks that can be cut now (``eof``: all of the rest)."""
        if self._start == self._end:
            return
        window = self._view[self._start : self._end]
        for chunk in self._chunker._cdc().cut_buf(window):
            if not eof and len(window) - chunk.offset < self._lookahead:
                break  # this cut could depend on bytes not pushed yet
            self._start += chunk.length
            yield window[chunk.offset : chunk.offset + chunk.length]

    def reset(self) -> None:
        """Forget what was taken: the content starts again."""
        self._start = self._end = 0

    def close(self) -> None:
        """Give the window back to the pool (idempotent). No chunk may be used after."""
        if self._buf is not None:
            self._chunker._buffers.give(self._buf)
            self._buf = None
