"""A download target that cuts and stores content as it arrives.

A source that downloads an item's content (Microsoft 365's drive files) used
to write it to a spool, a temporary file past 1 MiB, and hand the spool to
:meth:`OwnerSession.add_item`, which read it back to cut it: every byte was
written to and read from the file system once more than needed, the largest
share of a tenant backup's system time after page faults (docs/performance.md,
"CPU and memory of a full backup (issue 14)"). A :class:`ContentSink` is
written to like that spool, but cuts the content through a
:class:`~store.format.chunker.StreamCutter` as it arrives and stores each
chunk at once (in the run's store slots, like any item's content); passing the
sink to ``add_item`` stores the rest and records the item. The chunks and blob
IDs are those of the same content given whole (tested).

Content up to ``small`` bytes is only gathered in memory and cut whole at the
end, like a spool kept in memory. Larger content takes a window (twice the
maximum chunk size) if one of the run's ``windows`` is free, and otherwise
spills to a temporary file cut at the end, as the spool did: memory is bounded
by the number of windows, not by the number of downloads in flight (a large
tenant has dozens) nor by their sizes.

A retried download truncates the sink (``seek(0)``, ``truncate()``): what was
taken is forgotten and the content starts again. Chunks already stored stay in
the repository unreferenced until a prune, as those of an interrupted run.

Not thread-safe: one sink per download. Raises what the blob writer raises
(storage errors) from :meth:`write`.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import IO, Any, Protocol

from store.format.chunker import Chunker, StreamCutter
from store.ids import DATA, BlobId

# Content up to this size is gathered in memory and cut whole (the spool's
# in-memory limit it replaces).
SMALL_BYTES = 1024 * 1024


class _Writer(Protocol):
    def save(
        self, blob_type: int, data: bytes | memoryview, blob_id: BlobId | None = None
    ) -> BlobId: ...


class ContentSink:
    """A writable, truncatable stand-in for a spool; see the module docstring."""

    def __init__(
        self,
        chunker: Chunker,
        writer: _Writer,
        slots: AbstractContextManager[Any],
        windows: threading.Semaphore,
        *,
        small: int = SMALL_BYTES,
        tmpdir: str | None = None,
    ) -> None:
        self._chunker = chunker
        self._writer = writer
        self._slots = slots
        self._windows = windows
        self._small_limit = small
        self._tmpdir = tmpdir
        self._small = bytearray()
        self._cutter: StreamCutter | None = None  # holds one of ``windows``
        self._spill: IO[bytes] | None = None
        self._chunks: list[tuple[BlobId, int]] = []
        self._size = 0
        self._finished = False

    # -- the file-like side a download writes to ----------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Take ``data``; stores every chunk that can be cut already. Returns its length."""
        if self._finished:
            raise ValueError("the content was already stored")
        count = len(data)
        self._size += count
        if self._spill is not None:
            self._spill.write(data)
            return count
        if self._cutter is None:
            if len(self._small) + count <= self._small_limit:
                self._small += data
                return count
            gathered, self._small = self._small, bytearray()
            if not self._windows.acquire(blocking=False):
                self._spill = tempfile.TemporaryFile(dir=self._tmpdir)  # noqa: SIM115 (closed by close)
                self._spill.write(gathered)
                self._spill.write(data)
                return count
            self._cutter = StreamCutter(self._chunker)
            self._push(memoryview(gathered))
        self._push(memoryview(data))
        return count

    def seek(self, offset: int, whence: int = 0) -> int:
        """Only ``seek(0)`` (what a download does before it truncates); a no-op."""
        if offset or whence:
            raise ValueError("a content sink only seeks to its start")
        return 0

    def truncate(self, size: int | None = None) -> int:
        """Forget everything written (``size`` must be 0 or None): the content restarts."""
        if size:
            raise ValueError("a content sink is only truncated to nothing")
        if self._finished:
            raise ValueError("the content was already stored")
        self._small = bytearray()
        self._size = 0
        self._chunks = []
        if self._cutter is not None:
            self._cutter.reset()
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        return 0

    def flush(self) -> None:
        """Nothing to flush: chunks are stored as they are cut."""

    @property
    def size(self) -> int:
        """Bytes written since the last truncation."""
        return self._size

    # -- the store side ---------------------------------------------------------------------

    def finish(self) -> tuple[list[tuple[BlobId, int]], int]:
        """Store the rest; returns the content's chunks (blob ID, length) and size.
        Once only: the sink takes nothing after it."""
        if self._finished:
            raise ValueError("the content was already stored")
        self._finished = True
        if self._cutter is not None:
            self._store(self._cutter.cut(eof=True))
        elif self._spill is not None:
            self._spill.seek(0)
            self._store(self._chunker.cut_stream(self._spill))  # type: ignore[arg-type]
        elif self._small:
            self._store(self._chunker.cut_bytes(bytes(self._small)))
        self.close()
        return self._chunks, self._size

    def close(self) -> None:
        """Give back the window (idempotent); use as a context manager."""
        if self._cutter is not None:
            self._cutter.close()
            self._cutter = None
            self._windows.release()
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        self._small = bytearray()

    def __enter__(self) -> ContentSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _push(self, view: memoryview) -> None:
        cutter = self._cutter
        assert cutter is not None
        while view:
            taken = cutter.take(view)
            view = view[taken:]
            if cutter.full:
                self._store(cutter.cut())

    def _store(self, pieces: Iterable[bytes | memoryview]) -> None:
        with self._slots:
            for piece in pieces:
                # The writer hashes and encodes the view at once and keeps neither.
                self._chunks.append((self._writer.save(DATA, piece), len(piece)))
