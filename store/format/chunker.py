"""Content-defined chunking (FastCDC via pyfastcdc) with the repository's secret seed.

pyfastcdc's chunker objects are not safe to share between threads, so each
thread gets its own (they are cheap to build).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal, cast

from pyfastcdc import FastCDC

from store.format.config import ChunkerParams


class Chunker:
    """Cuts bytes, streams and files into chunks. Thread-safe."""

    def __init__(self, params: ChunkerParams, seed: int) -> None:
        self.params = params
        self._seed = seed
        self._local = threading.local()

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
        """Chunks read from ``stream`` (each chunk is copied out of pyfastcdc's buffer)."""
        for chunk in self._cdc().cut_stream(stream):
            yield bytes(chunk.data)

    def cut_file(self, path: Path) -> Iterator[bytes]:
        """Chunks of a regular file (read through pyfastcdc's buffered reader)."""
        with open(path, "rb") as handle:
            yield from self.cut_stream(handle)
