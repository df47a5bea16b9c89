"""A backup worker process: reads, chunks, hashes and compresses files.

Started by :class:`store.pipeline.pool.WorkerPool` as ``python -P -m
store.pipeline.worker`` with a socket as its standard input and nothing
secret in its command line or environment: the keys arrive in the first
message (store/pipeline/wire.py). Every file arrives as a descriptor the
backup opened; the worker reads it with the same chunker, keyed BLAKE3 and
zstd as the in-process path (so chunk boundaries and blob IDs are identical)
and sends each chunk back as it is cut.

The worker exits when the socket ends: the backup closed it, or died (a
``kill -9`` of the backup closes its end, so the worker's next read or write
ends it). It holds no other descriptor of the backup's (``close_fds``), so it
never holds an owner's lock. SIGINT is ignored: a Ctrl-C reaches the whole
process group, and the backup decides what happens.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from store.format.chunker import Chunker
from store.format.config import ChunkerParams
from store.format.crypto import encode_payload, keyed_hash
from store.pipeline.wire import (
    BATCH,
    BATCH_END,
    CHUNK,
    DONE,
    FAILED,
    FRAME_HEADER,
    INIT,
    MAX_FDS,
    Closed,
    chunk_body,
    done_body,
    failed_body,
    frame,
    parse_batch,
    parse_init,
    recv_frame,
)

# Files up to this size are read whole (one system call, one buffer), larger
# ones streamed through the chunker: the same rule as the in-process path
# (sources/folder/backup.py), so both cut identically.
READ_WHOLE_LIMIT = 4 * 1024 * 1024
_SEND_BYTES = 1 << 20


class _Context:
    def __init__(self, sock: socket.socket, init: bytes) -> None:
        id_key, seed, min_size, normal_size, max_size, nc, level = parse_init(init)
        self.sock = sock
        self._out: list[bytes] = []
        self._queued = 0
        self.id_key = id_key
        self.level = level
        self.chunker = Chunker(
            ChunkerParams(min=min_size, normal_size=normal_size, max=max_size, nc=nc), seed
        )

    def send(self, kind: int, body: bytes) -> None:
        """Queue a frame; sent when 1 MiB is queued or at :meth:`flush` (fewer
        system calls and wake-ups of the backup's collector per small file)."""
        self._out.append(frame(kind, body))
        self._queued += FRAME_HEADER + len(body)
        if self._queued >= _SEND_BYTES:
            self.flush()

    def flush(self) -> None:
        try:
            self.sock.sendall(b"".join(self._out))
        except OSError as exc:  # the backup is gone
            raise Closed from exc
        self._out, self._queued = [], 0

    def file(self, tag: int, size: int, fd: int) -> None:
        """Cut, hash and encode one file; closes ``fd``."""
        with os.fdopen(fd, "rb", closefd=True) as handle:
            try:
                if size <= READ_WHOLE_LIMIT:
                    pieces = self.chunker.cut_bytes(handle.read())
                else:
                    pieces = self.chunker.cut_stream(handle)
                total = 0
                for piece in pieces:
                    blob_id = keyed_hash(self.id_key, piece)
                    self.send(
                        CHUNK, chunk_body(blob_id, len(piece), encode_payload(piece, self.level))
                    )
                    total += len(piece)
                after = os.fstat(handle.fileno())
            except OSError as exc:
                self.send(FAILED, failed_body(tag, f"cannot read: {exc.strerror or exc}"))
                return
        self.send(DONE, done_body(tag, after.st_size, after.st_mtime_ns))


def ask_ahead(items: list[tuple[int, int]], fds: list[int]) -> None:
    """Ask the kernel to start reading every file of a batch at once
    (``POSIX_FADV_WILLNEED``, up to READ_WHOLE_LIMIT bytes of each), so the
    disk works on many while the first is cut: read one after the other,
    each cold small file waited for its own seek. A hint: errors ignored."""
    for (_tag, size), fd in zip(items, fds, strict=True):
        try:
            os.posix_fadvise(fd, 0, min(size, READ_WHOLE_LIMIT), os.POSIX_FADV_WILLNEED)
        except OSError:
            pass


def serve(sock: socket.socket) -> int:
    """Answer batches until the socket ends. Returns the exit status."""
    try:
        kind, body, _ = recv_frame(sock)
    except Closed:
        return 0
    if kind != INIT:
        return 2
    context = _Context(sock, body)
    try:
        while True:
            kind, body, fds = recv_frame(sock, MAX_FDS)
            items = parse_batch(body) if kind == BATCH else []
            if kind != BATCH or len(items) != len(fds):
                for fd in fds:
                    os.close(fd)
                return 2
            ask_ahead(items, fds)
            for (tag, size), fd in zip(items, fds, strict=True):
                context.file(tag, size, fd)
            context.send(BATCH_END, b"")
            context.flush()
    except Closed:
        return 0


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=sys.stdin.fileno())
    sys.exit(serve(sock))


if __name__ == "__main__":
    main()
