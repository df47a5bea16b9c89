"""The byte protocol between a backup and its worker processes.

One ``AF_UNIX`` stream socket per worker (the worker's standard input), both
directions. The backup sends:

- once, the ``INIT`` message: the chunker's parameters and seed, the blob ID
  key and the zstd level (the only way keys reach a worker: never argv, never
  the environment);
- then ``BATCH`` messages: a list of ``(tag, size)``, one per file, with the
  files' open descriptors attached (``SCM_RIGHTS``), so the worker reads what
  the backup opened safely (``O_NOFOLLOW`` relative to its directory) and the
  data never passes through the backup's interpreter.

The worker answers each file with its chunks (``CHUNK``: blob ID, raw length,
codec payload) and then ``DONE`` (the file's size and mtime after reading) or
``FAILED`` (the read error), and each batch with ``BATCH_END``.

Every frame is ``kind (1 byte) ‖ length (u32) ‖ body``. Not thread-safe: one
thread sends, one thread receives on each side.
"""

from __future__ import annotations

import socket
import struct
from typing import BinaryIO

INIT = 1
BATCH = 2
CHUNK = 3
DONE = 4
FAILED = 5
BATCH_END = 6

_FRAME = struct.Struct(">BI")
FRAME_HEADER = _FRAME.size
# The most descriptors one batch carries (Linux caps SCM_RIGHTS at 253).
MAX_FDS = 200
_CHUNK_HEAD = struct.Struct(">32sI")
_DONE = struct.Struct(">Qqq")
_TAG = struct.Struct(">Q")


class Closed(Exception):
    """The other end closed the socket (or died)."""


def frame(kind: int, body: bytes) -> bytes:
    return _FRAME.pack(kind, len(body)) + body


def send_frame(sock: socket.socket, kind: int, body: bytes, fds: list[int] | None = None) -> None:
    """Send one frame; ``fds`` travel with its first bytes (SCM_RIGHTS)."""
    head = _FRAME.pack(kind, len(body))
    if fds:
        sent = socket.send_fds(sock, [head], fds)
        if sent < len(head):
            sock.sendall(head[sent:])
        sock.sendall(body)
    else:
        sock.sendall(head + body)


def read_frame(stream: BinaryIO) -> tuple[int, bytes]:
    """(kind, body) of the next frame from a buffered reader. Raises Closed at its end."""
    head = stream.read(FRAME_HEADER)
    if len(head) < FRAME_HEADER:
        raise Closed
    kind, length = _FRAME.unpack(head)
    body = stream.read(length) if length else b""
    if len(body) < length:
        raise Closed
    return kind, body


def recv_exact(sock: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes. Raises Closed at end of stream."""
    parts: list[bytes] = []
    left = size
    while left:
        part = sock.recv(min(left, 1 << 20))
        if not part:
            raise Closed
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def recv_frame(sock: socket.socket, max_fds: int = 0) -> tuple[int, bytes, list[int]]:
    """(kind, body, descriptors) of the next frame. Raises Closed at end of stream.

    Descriptors come only with the first bytes of a frame (the sender attaches
    them there), so they are taken with ``recvmsg`` for the header and the
    rest is read plainly.
    """
    fds: list[int] = []
    if max_fds:
        data, fds, _flags, _addr = socket.recv_fds(sock, FRAME_HEADER, max_fds)
        if not data:
            raise Closed
        if len(data) < FRAME_HEADER:
            data += recv_exact(sock, FRAME_HEADER - len(data))
    else:
        data = recv_exact(sock, FRAME_HEADER)
    kind, length = _FRAME.unpack(data)
    return kind, recv_exact(sock, length) if length else b"", list(fds)


def chunk_body(blob_id: bytes, raw_length: int, payload: bytes) -> bytes:
    return _CHUNK_HEAD.pack(blob_id, raw_length) + payload


def parse_chunk(body: bytes) -> tuple[bytes, int, bytes]:
    """(blob ID, raw length, payload) of a CHUNK frame."""
    blob_id, raw_length = _CHUNK_HEAD.unpack_from(body)
    return blob_id, raw_length, body[_CHUNK_HEAD.size :]


def done_body(tag: int, size: int, mtime_ns: int) -> bytes:
    return _DONE.pack(tag, size, mtime_ns)


def parse_done(body: bytes) -> tuple[int, int, int]:
    """(tag, size, mtime_ns after reading) of a DONE frame."""
    tag, size, mtime_ns = _DONE.unpack(body)
    return int(tag), int(size), int(mtime_ns)


def failed_body(tag: int, message: str) -> bytes:
    return _TAG.pack(tag) + message.encode("utf-8", "replace")


def parse_failed(body: bytes) -> tuple[int, str]:
    (tag,) = _TAG.unpack_from(body)
    return int(tag), body[_TAG.size :].decode("utf-8", "replace")


_INIT = struct.Struct(">32sQIIIBBi")
_ITEM = struct.Struct(">QQ")


def init_body(
    id_key: bytes,
    seed: int,
    min_size: int,
    normal_size: int,
    max_size: int,
    nc: int,
    level: int | None,
) -> bytes:
    """The INIT message; ``level`` None means no compression (zstd levels may
    be negative, so no level value stands for "none")."""
    return _INIT.pack(
        id_key, seed, min_size, normal_size, max_size, nc, level is not None, level or 0
    )


def parse_init(body: bytes) -> tuple[bytes, int, int, int, int, int, int | None]:
    """(id_key, seed, min, normal, max, nc, level or None) of an INIT message."""
    id_key, seed, min_size, normal_size, max_size, nc, compress, level = _INIT.unpack(body)
    return (
        id_key,
        int(seed),
        int(min_size),
        int(normal_size),
        int(max_size),
        int(nc),
        int(level) if compress else None,
    )


def batch_body(items: list[tuple[int, int]]) -> bytes:
    """A BATCH message: ``(tag, size)`` per attached descriptor, in order."""
    return b"".join(_ITEM.pack(tag, size) for tag, size in items)


def parse_batch(body: bytes) -> list[tuple[int, int]]:
    return [(int(t), int(s)) for t, s in _ITEM.iter_unpack(body)]
