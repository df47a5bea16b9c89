"""The byte protocol between a restore and its writer process.

One ``AF_UNIX`` stream socket (the writer's standard input), both
directions, framed as store/pipeline/wire.py frames them (``kind (1 byte) ‖
length (u32) ‖ body``), and a ring of shared memory for the files' bytes.
The restore sends:

- ``RING``, first: the ring, as a ``memfd`` descriptor (``SCM_RIGHTS``) and
  its size;
- ``KEY``, next: the repository's blob-ID key, with which the writer
  verifies the chunks it decodes itself (below);
- ``DIR``: a directory this restore created, as an open descriptor
  and the number later messages call it by;
- ``FILES``: files to create in those directories, each with its final and
  temporary names, mode, owner, time, size, the data ranges to write (zero
  runs are left out and become holes) and where their bytes are in the
  ring (one stretch per file part). A large file comes in parts, a window
  of its chunks at a time, all under its tag: the first part creates it
  (``FIRST``), the last renames it into place (``LAST``); a small file is
  one part with both flags. A part flagged ``SEALED`` carries its chunks as
  the restore loaded them, decrypted and authenticated but not decoded:
  each range is then one chunk's payload (codec byte ‖ body) and the place
  of its plaintext in the file, with the plaintext's recorded length and
  the chunk's ID; the writer decodes it within that length, re-hashes it
  against the ID (a chunk that fails fails its file), and writes it with
  its zero runs left out, as the restore would have;
- ``LEAVE``: a directory the restore is done with: the writer gives it its
  owner, mode and times after every file sent into it, and closes it.

Every file and every ``LEAVE`` carries a tag; the writer answers each, in the
order received, with exactly one ``ANSWERS`` frame per ``FILES`` or
``LEAVE`` frame (empty if no file of it ended): the bytes written, or the
``errno`` and message of what failed. That frame also hands back the ring
the ``FILES`` frame used: its bytes are written, and the restore may
overwrite them. What crosses: the plaintext the writer is about to put
on disk (or its payloads), and the blob-ID key; no encryption key.

Why a ring and not the socket: a restore decodes a prefetch batch (8 MiB)
at a time, and a socket's buffer (208 KiB on a stock system,
``net.core.wmem_default``) then made each process wait for the other; the
ring holds several batches, and the bytes are copied once instead of twice.

Not thread-safe: one thread sends, one receives on each side.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

DIR = 1
FILES = 2
LEAVE = 3
ANSWERS = 4
RING = 5
KEY = 6

_DIR = struct.Struct(">I")
# Parts of a file (FILES): the first creates it, the last finishes it; a
# last part with ABORT (and no data) removes it instead (the restore could
# not read the rest: it records that itself and ignores the answer).
FIRST = 1
LAST = 2
ABORT = 4
SEALED = 8

# tag, flags, directory, mode, chown, uid, gid (-1: none recorded), mtime,
# size, where its bytes start in the ring, ranges, name length, temporary
# name length
_FILE = struct.Struct(">QBIIBqqqQQIHH")
_RING = struct.Struct(">Q")
_RANGE = struct.Struct(">QQ")
# A SEALED part's chunk: its plaintext's recorded length, its ID.
_SEALED_CHUNK = struct.Struct(">Q32s")
KEY_BYTES = 32
_LEAVE = struct.Struct(">QIIBqqq")
_ANSWER = struct.Struct(">QiQH")


@dataclass(frozen=True, slots=True)
class Meta:
    """Mode, owner and time to give a file or directory (uid/gid None: not recorded)."""

    mode: int
    chown: bool
    uid: int | None
    gid: int | None
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class FileJob:
    """One part of a file to create: ``ranges`` are (offset in the file,
    length) of the data in ``data`` (concatenated, in order); whatever no part
    writes of ``size`` is holes. ``flags``: FIRST, LAST, SEALED. A SEALED
    part's ranges are its chunks' payloads, ``sealed`` their (plaintext
    length, chunk ID) in the same order (empty otherwise)."""

    tag: int
    flags: int
    dir_id: int
    name: bytes
    temp: bytes
    meta: Meta
    size: int
    ranges: list[tuple[int, int]]
    data: memoryview
    sealed: list[tuple[int, bytes]]


def _id(value: int | None) -> int:
    return -1 if value is None else value


def _unid(value: int) -> int | None:
    return None if value < 0 else value


def ring_body(size: int) -> bytes:
    return _RING.pack(size)


def parse_ring(body: bytes) -> int:
    (size,) = _RING.unpack(body)
    return int(size)


def key_body(key: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise ValueError("a blob-ID key is 32 bytes")
    return key


def parse_key(body: bytes) -> bytes:
    if len(body) != KEY_BYTES:
        raise ValueError("a blob-ID key is 32 bytes")
    return body


def dir_body(dir_id: int) -> bytes:
    return _DIR.pack(dir_id)


def parse_dir(body: bytes) -> int:
    (dir_id,) = _DIR.unpack(body)
    return int(dir_id)


def file_parts(
    tag: int,
    flags: int,
    dir_id: int,
    name: bytes,
    temp: bytes,
    meta: Meta,
    size: int,
    ranges: list[tuple[int, int]],
    at: int,
    sealed: list[tuple[int, bytes]] | None = None,
) -> bytes:
    """One file part of a FILES body; its data ranges' bytes are in the ring
    from ``at`` on, one after the other. ``sealed`` (with the SEALED flag):
    each range's (plaintext length, chunk ID)."""
    return b"".join(
        [
            _FILE.pack(
                tag,
                flags,
                dir_id,
                meta.mode,
                meta.chown,
                _id(meta.uid),
                _id(meta.gid),
                meta.mtime_ns,
                size,
                at,
                len(ranges),
                len(name),
                len(temp),
            ),
            name,
            temp,
            *(_RANGE.pack(offset, length) for offset, length in ranges),
            *(_SEALED_CHUNK.pack(raw, chunk_id) for raw, chunk_id in sealed or ()),
        ]
    )


def parse_files(body: bytes, ring: memoryview) -> Iterator[FileJob]:
    """The file parts of a FILES body, their data in ``ring``. Raises
    ValueError (or struct.error) when it is malformed."""
    view = memoryview(body)
    pos = 0
    while pos < len(view):
        (tag, flags, dir_id, mode, chown, uid, gid, mtime, size, at, count, name_len, temp_len) = (
            _FILE.unpack_from(view, pos)
        )
        pos += _FILE.size
        name = bytes(view[pos : pos + name_len])
        pos += name_len
        temp = bytes(view[pos : pos + temp_len])
        pos += temp_len
        ranges: list[tuple[int, int]] = []
        total = 0
        for _ in range(count):
            offset, length = _RANGE.unpack_from(view, pos)
            pos += _RANGE.size
            ranges.append((offset, length))
            total += length
        sealed: list[tuple[int, bytes]] = []
        if flags & SEALED:
            for offset, _length in ranges:
                raw, chunk_id = _SEALED_CHUNK.unpack_from(view, pos)
                pos += _SEALED_CHUNK.size
                if offset + raw > size:
                    raise ValueError("a chunk beyond the file's size")
                sealed.append((raw, chunk_id))
        elif any(offset + length > size for offset, length in ranges):
            raise ValueError("a data range beyond the file's size")
        if len(name) != name_len or len(temp) != temp_len:
            raise ValueError("a truncated file record")
        if at + total > len(ring):
            raise ValueError("data beyond the ring")
        meta = Meta(mode, bool(chown), _unid(uid), _unid(gid), mtime)
        data = ring[at : at + total]
        yield FileJob(tag, flags, dir_id, name, temp, meta, size, ranges, data, sealed)


def leave_body(tag: int, dir_id: int, meta: Meta) -> bytes:
    return _LEAVE.pack(
        tag, dir_id, meta.mode, meta.chown, _id(meta.uid), _id(meta.gid), meta.mtime_ns
    )


def parse_leave(body: bytes) -> tuple[int, int, Meta]:
    """(tag, directory, metadata) of a LEAVE body."""
    tag, dir_id, mode, chown, uid, gid, mtime = _LEAVE.unpack(body)
    return int(tag), int(dir_id), Meta(mode, bool(chown), _unid(uid), _unid(gid), mtime)


def answer(tag: int, written: int, error: int = 0, message: str = "") -> bytes:
    """One answer in an ANSWERS body: bytes written, or an ``errno`` (non-zero) and message."""
    text = message.encode("utf-8", "replace")[:1024]
    return _ANSWER.pack(tag, error, written, len(text)) + text


def parse_answers(body: bytes) -> Iterator[tuple[int, int, int, str]]:
    """(tag, errno or 0, bytes written, message) of each answer in an ANSWERS body."""
    pos = 0
    while pos < len(body):
        tag, error, written, length = _ANSWER.unpack_from(body, pos)
        pos += _ANSWER.size
        message = body[pos : pos + length].decode("utf-8", "replace")
        pos += length
        yield int(tag), int(error), int(written), message
