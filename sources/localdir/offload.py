"""Handing a restore's files to its writer process (sources/localdir/writer.py).

A restore from a local repository runs in one thread (docs/performance.md,
"Restore in one thread"): load, decrypt, decompress, verify and write, one
file after the other, on one core. :class:`WriterProcess` moves the writing
(create, ``pwrite``, owner, mode, times, rename: about 40% of the restore's
CPU and most of its system calls) to a second process, so the restore uses
both cores: this process walks the tree, reads and decodes the packs, and
hands over each file's verified plaintext; the writer creates it.

Only files of directories this restore created go there (nothing of those
names can exist, so no conflict to decide); the directory's descriptor is
shared once (``SCM_RIGHTS``), and its owner, mode and times are set by the
writer after the last file sent into it (``leave``). The files' bytes go
through a ring of shared memory (a ``memfd`` both map, RING_BYTES): copied
in once here, written from there by the writer, reused once the writer has
answered the message that named them (sources/localdir/writewire.py says
why not the socket). Everything that needs the target's state (conflicts,
leftovers of a killed restore) stays in the restore's thread.

No threads here: the socket is non-blocking, and while a send waits for room
the answers that arrived are read (so neither side can block the other).
Answers come back in the order sent; :meth:`WriterProcess.answered` hands
them over for the restore to record, in its own thread.

Not thread-safe: one thread uses a WriterProcess.
"""

from __future__ import annotations

import errno
import mmap
import os
import select
import socket
import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from sources.errors import RestoreWriterFailed
from sources.localdir.writewire import (
    ABORT,
    ANSWERS,
    DIR,
    FILES,
    FIRST,
    KEY,
    LAST,
    LEAVE,
    RING,
    SEALED,
    Meta,
    dir_body,
    file_parts,
    key_body,
    leave_body,
    parse_answers,
    ring_body,
)
from store.pipeline.spawn import how_it_ended, start_helper, stop_helper
from store.pipeline.wire import FRAME_HEADER, frame

# A FILES message is sent once its files hold this many bytes or are this
# many: enough that a message costs little per file, few enough that the
# writer starts early.
FRAME_BYTES = 1024 * 1024
FRAME_FILES = 256
# The ring of shared memory the files' bytes go through: two prefetch
# batches (8 MiB each), so neither process waits for the other's burst (24
# MiB restored the mail corpus no faster, and cost 8 MiB more RSS). A part
# larger than half of it is refused (PART_LIMIT).
RING_BYTES = 16 * 1024 * 1024
PART_LIMIT = RING_BYTES // 2
_RECV_BYTES = 1 << 20
# :meth:`WriterProcess.backlog` looks for answers at least every this many
# calls (a system call each time; it is asked once per file).
_POLL_EVERY = 16
_NO_META = Meta(0, False, None, None, 0)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the writer made of one file or directory it was sent.

    ``rel``, ``size``: as the restore passed them; ``errno`` non-zero when it
    failed (``message`` then says how); ``written``: the file's bytes.
    """

    rel: str
    size: int
    is_dir: bool
    errno: int
    written: int
    message: str


class WriterProcess:
    """A writer process and the files sent to it. See the module docstring.

    Raises OSError from the constructor when the process or its ring cannot
    be had, RestoreWriterFailed from any method once it has died. :meth:`close` is
    idempotent. ``id_key`` (the repository's blob-ID key) lets the writer
    decode chunks itself (:meth:`add` with ``sealed``); it goes over the
    socket, and without it no sealed part may be sent.
    """

    def __init__(self, id_key: bytes | None = None) -> None:
        self._next_tag = 0
        self._backlog = 0  # plaintext bytes of the files not answered yet
        self._polls = 0
        self._keyed = id_key is not None
        self._next_dir = 0
        self._pending: deque[tuple[int, str, int, bool]] = deque()
        self._answered: list[Answer] = []
        self._abandoned: set[int] = set()
        self._parts: list[bytes] = []
        self._frame_bytes = 0
        self._frame_files = 0
        self._inbox = bytearray()
        self._unread = False  # a message went out since answers were last read
        # The ring, in bytes ever placed (positions in it are these modulo its
        # size): placed up to _placed, written and free again up to _freed;
        # each FILES or LEAVE frame sent, the place its answer frees up to.
        self._placed = 0
        self._freed = 0
        self._frame_ends: deque[int] = deque()
        self._closed = False
        if not hasattr(os, "memfd_create"):  # Linux only: the restore writes itself
            raise OSError(errno.ENOSYS, "no memfd_create on this system")
        ring_fd = os.memfd_create("coffer-restore-ring", os.MFD_CLOEXEC)
        try:
            os.ftruncate(ring_fd, RING_BYTES)
            self._ring = mmap.mmap(ring_fd, RING_BYTES)
            try:
                self._process, self._sock = start_helper("sources.localdir.writer")
            except BaseException:
                self._ring.close()
                raise
            self._sock.setblocking(False)
            try:
                self._send(frame(RING, ring_body(RING_BYTES)), [ring_fd])
                if id_key is not None:
                    self._send(frame(KEY, key_body(id_key)))
            except BaseException:
                self.close()
                raise
        finally:
            os.close(ring_fd)  # each process keeps its mapping

    @property
    def pid(self) -> int:
        return self._process.pid

    def share(self, dir_fd: int) -> int:
        """Send a directory's descriptor (the writer keeps a copy); its number
        for :meth:`add` and :meth:`leave`. The caller keeps ``dir_fd``."""
        dir_id = self._next_dir
        self._next_dir += 1
        self._send(frame(DIR, dir_body(dir_id)), [dir_fd])
        return dir_id

    def add(
        self,
        rel: str,
        dir_id: int,
        name: bytes,
        temp: bytes,
        meta: Meta,
        size: int,
        ranges: list[tuple[int, int]],
        data: list[memoryview],
        *,
        tag: int | None = None,
        last: bool = True,
        sealed: list[tuple[int, bytes]] | None = None,
    ) -> int:
        """Queue one file, or one part of a large one; its tag.

        ``ranges`` are (offset in the file, length) of its data, ``data``
        their bytes in the same order (what no part writes of ``size`` is
        holes). The first part is sent without ``tag``, the next ones with
        the tag it returned; the part with ``last`` finishes the file. The
        file's answer comes later, through :meth:`answered`.

        With ``sealed`` (only with the key given to the constructor), each
        of ``data`` is a chunk's payload, not yet decoded, written from
        ``ranges``' offset on: ``sealed`` holds each one's (plaintext
        length, chunk ID), and the range's length is the payload's.
        """
        total = sum(len(part) for part in data)
        if total > PART_LIMIT:
            raise ValueError(f"a file part of {total} bytes (at most {PART_LIMIT})")
        if sealed is not None and (not self._keyed or len(sealed) != len(ranges)):
            raise ValueError("sealed chunks need the key, and one record per range")
        at = self._place(data, total)
        flags = LAST if last else 0
        if sealed is not None:
            flags |= SEALED
        if tag is None:
            tag = self._tag(rel, size, is_dir=False)
            flags |= FIRST
        record = file_parts(tag, flags, dir_id, name, temp, meta, size, ranges, at, sealed)
        self._queue(record, total)
        if self._frame_bytes >= FRAME_BYTES or self._frame_files >= FRAME_FILES:
            self.flush()
        return tag

    def abort(self, tag: int) -> None:
        """Give up a file some parts of which were sent: the writer removes
        it, and its answer is not handed over (the caller records why)."""
        self._abandoned.add(tag)
        self._queue(file_parts(tag, LAST | ABORT, 0, b"", b"", _NO_META, 0, [], 0), 0)
        self.flush()

    def leave(self, rel: str, dir_id: int, meta: Meta) -> None:
        """Give the shared directory ``dir_id`` its metadata after every file
        sent into it, and close the writer's copy; answered like a file."""
        self.flush()
        tag = self._tag(rel, 0, is_dir=True)
        self._send(frame(LEAVE, leave_body(tag, dir_id, meta)))
        self._frame_ends.append(self._placed)

    def flush(self) -> None:
        """Send the files queued so far."""
        if not self._parts:
            return
        body = b"".join(self._parts)
        self._parts, self._frame_bytes, self._frame_files = [], 0, 0
        self._send(frame(FILES, body))
        self._frame_ends.append(self._placed)

    def backlog(self) -> int:
        """Bytes of the files sent or queued that the writer has not answered
        yet (their sizes): how far behind it is. Looks for answers without
        waiting, every few calls."""
        self._polls += 1
        if self._unread or self._polls % _POLL_EVERY == 0:
            self._receive()
        return self._backlog

    def answered(self) -> list[Answer]:
        """The answers that arrived since the last call, in the order sent (no
        wait; looked for only after a message went out, not per file)."""
        if self._unread:
            self._receive()
        done, self._answered = self._answered, []
        return done

    def drain(self) -> Iterator[Answer]:
        """Send what is queued, then every answer still to come, as they arrive."""
        self.flush()
        self._receive()
        while True:
            done, self._answered = self._answered, []
            yield from done
            if not self._pending:
                return
            self._wait(write=False)

    def close(self) -> None:
        """Stop the writer (what was sent and not answered may not be written)."""
        if self._closed:
            return
        self._closed = True
        stop_helper(self._process, self._sock)
        self._sock.close()
        self._ring.close()

    # -- internals -------------------------------------------------------

    def _queue(self, record: bytes, data_bytes: int) -> None:
        """Add one file part to the FILES message being built."""
        self._parts.append(record)
        self._frame_bytes += data_bytes
        self._frame_files += 1

    def _place(self, data: list[memoryview], total: int) -> int:
        """Copy a file part's bytes into the ring, in one stretch; where it
        starts. Waits (sending what is queued) until the writer has freed
        enough: a part never wraps around the ring's end, so the bytes
        before the end are skipped when it would not fit there."""
        start = self._placed % RING_BYTES
        skip = RING_BYTES - start if start + total > RING_BYTES else 0
        while self._placed + skip + total - self._freed > RING_BYTES:
            self.flush()  # what frees the ring is the answer to what was sent
            if not self._frame_ends:
                raise RuntimeError("the ring is full with nothing sent")  # cannot happen
            self._wait(write=False)
        self._placed += skip
        at = self._placed % RING_BYTES
        for part in data:
            self._ring[at : at + len(part)] = part
            at += len(part)
        position = self._placed % RING_BYTES
        self._placed += total
        return position

    def _tag(self, rel: str, size: int, *, is_dir: bool) -> int:
        tag = self._next_tag
        self._next_tag += 1
        self._pending.append((tag, rel, size, is_dir))
        self._backlog += size
        return tag

    def _failed(self, what: str) -> RestoreWriterFailed:
        how = how_it_ended(self._process, what)
        return RestoreWriterFailed(
            f"the restore's writer process {self._process.pid} {how}; "
            "the restore stopped (run it again to finish it)"
        )

    def _send(self, data: bytes, fds: list[int] | None = None) -> None:
        view = memoryview(data)
        while view:
            try:
                if fds:
                    sent = socket.send_fds(self._sock, [view], fds)
                    fds = None  # they went with the first byte sent
                else:
                    sent = self._sock.send(view)
            except BlockingIOError:
                self._wait(write=True)
                continue
            except OSError as exc:
                raise self._failed(f"could not be reached ({exc.strerror or exc})") from exc
            view = view[sent:]
        self._unread = True

    def _wait(self, *, write: bool) -> None:
        """Until the socket can be written (``write``) or has answers; reads them."""
        readable, _, _ = select.select([self._sock], [self._sock] if write else [], [])
        if readable:
            self._receive()

    def _receive(self) -> None:
        self._unread = False
        while True:
            try:
                data = self._sock.recv(_RECV_BYTES)
            except BlockingIOError:
                break
            except OSError as exc:
                raise self._failed(f"broke its socket ({exc.strerror or exc})") from exc
            if not data:
                raise self._failed("closed its socket")
            self._inbox += data
        self._parse()

    def _parse(self) -> None:
        inbox = self._inbox
        pos = 0
        while len(inbox) - pos >= FRAME_HEADER:
            kind = inbox[pos]
            length = int.from_bytes(inbox[pos + 1 : pos + FRAME_HEADER], "big")
            if len(inbox) - pos - FRAME_HEADER < length:
                break
            body = bytes(inbox[pos + FRAME_HEADER : pos + FRAME_HEADER + length])
            pos += FRAME_HEADER + length
            if kind != ANSWERS:
                raise self._failed("answered out of protocol")
            try:
                answers = list(parse_answers(body))
            except struct.error:
                raise self._failed("answered out of protocol") from None
            if not self._frame_ends:
                raise self._failed("answered out of protocol")
            self._freed = self._frame_ends.popleft()  # its FILES frame's bytes are written
            for tag, error, written, message in answers:
                if not self._pending or self._pending[0][0] != tag:
                    raise self._failed("answered out of protocol")
                _tag, rel, size, is_dir = self._pending.popleft()
                self._backlog -= size
                if tag in self._abandoned:
                    self._abandoned.discard(tag)
                    continue
                self._answered.append(Answer(rel, size, is_dir, error, written, message))
        del inbox[:pos]
