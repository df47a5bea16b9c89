"""Worker processes that read, chunk, hash and compress a backup's files.

Why processes: the in-process data path is bound by the GIL (docs/
performance.md); the primitives are fast, the interpreter between them is
not. :class:`WorkerPool` starts one ``python -P -m store.pipeline.worker`` per
worker, each on its own ``AF_UNIX`` socket (its standard input), and hands it
batches of open file descriptors (``SCM_RIGHTS``). The worker answers with
each chunk's blob ID, raw length and codec payload; a collector thread per
worker stores them through ``store_chunk`` (the blob writer, which still
decides deduplication and builds and encrypts packs in this process) and
reports each file to the batch's ``on_done``.

Keys reach a worker only in its first message; how it is started, what
environment it keeps and why it never outlives this process:
store/pipeline/spawn.py.

A worker that dies, or a ``store_chunk``/``on_done`` that raises, fails the
pool: every later :meth:`submit` and :meth:`drain` raises
:class:`WorkerFailed` (or the original error), so the backup stops before it
commits and no snapshot misses data.

Thread-safety: :meth:`submit`, :meth:`drain` and :meth:`close` may be called
from any thread; callbacks run on the collector threads.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Generic, TypeVar, cast

from store.errors import StoreError
from store.format.config import ChunkerParams
from store.ids import BlobId
from store.pipeline.spawn import (
    STOP_SECONDS,
    how_it_ended,
    shutdown_socket,
    start_helper,
    stop_helper,
)
from store.pipeline.wire import (
    BATCH,
    BATCH_END,
    CHUNK,
    DONE,
    FAILED,
    INIT,
    MAX_FDS,
    Closed,
    batch_body,
    init_body,
    parse_chunk,
    parse_done,
    parse_failed,
    read_frame,
    send_frame,
)

T = TypeVar("T")

# Batches in flight per worker: one being worked on, one queued behind it, so
# a worker never waits for the walk and the open descriptors stay bounded.
MAX_IN_FLIGHT = 2
_READ_BUFFER = 1 << 20


class WorkerFailed(StoreError):
    """A worker process died or answered out of protocol: the backup stops."""


@dataclass(frozen=True)
class FileResult:
    """What a worker made of one file."""

    chunks: list[tuple[BlobId, int]]
    size: int  # bytes read
    after_size: int  # fstat after reading (to detect a file changing meanwhile)
    after_mtime_ns: int
    error: str | None = None  # the read failed ("cannot read: ..."); chunks are partial


@dataclass
class _Batch(Generic[T]):
    items: deque[tuple[int, T]]
    on_done: Callable[[T, FileResult], None]


@dataclass
class _Worker(Generic[T]):
    index: int
    process: subprocess.Popen[bytes]
    sock: socket.socket
    in_flight: deque[_Batch[T]] = field(default_factory=deque)
    load: int = 0  # batches reserved or in flight
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None


class WorkerPool(Generic[T]):
    """``workers`` processes cutting files into stored chunks. See the module docstring.

    Use as a context manager or call :meth:`close`. Raises WorkerFailed from
    the constructor if a worker cannot be started.
    """

    def __init__(
        self,
        workers: int,
        *,
        params: ChunkerParams,
        seed: int,
        id_key: bytes,
        level: int | None,
        store_chunk: Callable[[BlobId, int, bytes], object],
    ) -> None:
        if workers < 1:
            raise ValueError("a worker pool needs at least one worker")
        self._store_chunk = store_chunk
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._closing = False
        self._next_tag = 0
        self._workers: list[_Worker[T]] = []
        init = init_body(
            id_key,
            seed,
            params.min,
            params.normal_size,
            params.max,
            params.nc,
            level,
        )
        try:
            for index in range(workers):
                self._workers.append(self._start(index, init))
        except BaseException:
            self.close()
            raise

    def _start(self, index: int, init: bytes) -> _Worker[T]:
        try:
            process, ours = start_helper("store.pipeline.worker")
        except OSError as exc:
            raise WorkerFailed(f"cannot start a backup worker process: {exc}") from exc
        worker: _Worker[T] = _Worker(index, process, ours)
        try:
            send_frame(ours, INIT, init)
        except OSError as exc:
            self._stop(worker)
            ours.close()
            raise WorkerFailed(f"backup worker process {index} did not start: {exc}") from exc
        worker.thread = threading.Thread(
            target=self._collect, args=(worker,), name=f"coffer-pipeline-{index}", daemon=True
        )
        worker.thread.start()
        return worker

    @property
    def size(self) -> int:
        return len(self._workers)

    def pids(self) -> list[int]:
        """The worker processes' IDs (for tests and diagnostics)."""
        return [w.process.pid for w in self._workers]

    def submit(
        self, files: Sequence[tuple[int, int, T]], on_done: Callable[[T, FileResult], None]
    ) -> None:
        """Hand ``(fd, size, job)`` files to a worker; each is answered by ``on_done``.

        Takes the descriptors over: they are closed here whatever happens
        (the worker has its own copies). Blocks while every worker has
        ``MAX_IN_FLIGHT`` batches. Raises WorkerFailed (or the error a
        callback raised) once the pool has failed.
        """
        try:
            if not files:
                return
            if len(files) > MAX_FDS:
                raise ValueError(f"at most {MAX_FDS} files per batch")
            with self._cond:
                while True:
                    self._raise_error()
                    if self._closing:
                        raise WorkerFailed("the backup worker pool is closed")
                    worker = min(self._workers, key=lambda w: w.load)
                    if worker.load < MAX_IN_FLIGHT:
                        break
                    self._cond.wait()
                worker.load += 1
                tags: deque[tuple[int, T]] = deque()
                for _fd, _size, job in files:
                    tags.append((self._next_tag, job))
                    self._next_tag += 1
            body = batch_body(
                [(tag, size) for (tag, _), (_, size, _) in zip(tags, files, strict=True)]
            )
            # Not under the condition: a send can block until the collector,
            # which takes the condition, has read the worker's answers.
            with worker.send_lock:  # batches to one worker in the order queued
                with self._cond:
                    worker.in_flight.append(_Batch(tags, on_done))
                try:
                    send_frame(worker.sock, BATCH, body, [fd for fd, _, _ in files])
                except OSError as exc:
                    self._fail(WorkerFailed(self._death(worker, f"cannot reach it: {exc}")))
            with self._cond:
                self._raise_error()
        finally:
            for fd, _, _ in files:
                os.close(fd)

    def drain(self) -> None:
        """Wait until every submitted file is answered. Raises like :meth:`submit`."""
        with self._cond:
            while self._error is None and any(w.load for w in self._workers):
                self._cond.wait()
            self._raise_error()

    def close(self) -> None:
        """Stop the workers (they exit at the end of their socket); idempotent.

        Files still in flight are dropped unanswered.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for worker in self._workers:  # all told first: they finish in parallel
            self._shutdown(worker)
        for worker in self._workers:
            self._stop(worker)
        for worker in self._workers:
            if worker.thread is not None and worker.thread is not threading.current_thread():
                worker.thread.join(timeout=STOP_SECONDS)
            worker.sock.close()

    def __enter__(self) -> WorkerPool[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------

    def _shutdown(self, worker: _Worker[T]) -> None:
        shutdown_socket(worker.sock)

    def _stop(self, worker: _Worker[T]) -> None:
        stop_helper(worker.process, worker.sock)

    def _raise_error(self) -> None:
        # The caller holds the condition.
        if self._error is not None:
            raise self._error

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = error
            self._cond.notify_all()

    def _death(self, worker: _Worker[T], what: str) -> str:
        how = how_it_ended(worker.process, what)
        return f"backup worker process {worker.process.pid} {how}; the backup stopped"

    def _collect(self, worker: _Worker[T]) -> None:
        """Collector thread: store each chunk, report each file, count batches."""
        chunks: list[tuple[BlobId, int]] = []
        size = 0
        # Buffered: a worker sends many small frames at once.
        stream = cast(BinaryIO, worker.sock.makefile("rb", buffering=_READ_BUFFER))
        try:
            while True:
                try:
                    kind, body = read_frame(stream)
                except (Closed, OSError, ValueError):
                    with self._cond:
                        closing = self._closing
                    if not closing:
                        self._fail(WorkerFailed(self._death(worker, "closed its socket")))
                    return
                if kind == CHUNK:
                    blob_id, raw_length, payload = parse_chunk(body)
                    self._store_chunk(BlobId(blob_id), raw_length, payload)
                    chunks.append((BlobId(blob_id), raw_length))
                    size += raw_length
                elif kind in (DONE, FAILED):
                    batch, job = self._answered(worker)
                    if kind == DONE:
                        _tag, after_size, after_mtime = parse_done(body)
                        result = FileResult(chunks, size, after_size, after_mtime)
                    else:
                        _tag, message = parse_failed(body)
                        result = FileResult(chunks, size, -1, -1, message)
                    chunks, size = [], 0
                    batch.on_done(job, result)
                elif kind == BATCH_END:
                    with self._cond:
                        if not worker.in_flight or worker.in_flight[0].items:
                            raise WorkerFailed(self._death(worker, "answered out of protocol"))
                        worker.in_flight.popleft()
                        worker.load -= 1
                        self._cond.notify_all()
                else:
                    raise WorkerFailed(self._death(worker, "answered out of protocol"))
        except BaseException as error:  # surfaced by submit/drain in the backup's threads
            self._fail(error)
            try:
                worker.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        finally:
            stream.close()

    def _answered(self, worker: _Worker[T]) -> tuple[_Batch[T], T]:
        with self._cond:
            if not worker.in_flight or not worker.in_flight[0].items:
                raise WorkerFailed(self._death(worker, "answered out of protocol"))
            batch = worker.in_flight[0]
            _tag, job = batch.items.popleft()
            return batch, job
