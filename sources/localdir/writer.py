"""The restore's writer process: creates the files of directories a restore made.

Started by sources/localdir/offload.py as ``python -P -m
sources.localdir.writer`` with a socket as its standard input (the protocol:
sources/localdir/writewire.py), an environment reduced to an allow-list and
no other descriptor of the restore's. It gets each file's bytes in a ring
of shared memory it maps read-only, and the descriptors of the directories
to write into. The bytes are either the file's plaintext (already
authenticated, decompressed and re-hashed by the restore) or, for the
files the restore hands over ``SEALED`` (to balance the two processes'
work, sources/localdir/restore.py), its chunks authenticated but not
decoded: the writer decodes each within its recorded length and re-hashes
it with the blob-ID key, the one key it is given (over its socket; no
encryption key ever reaches it). A chunk that fails fails its file, which
is not renamed into place.

Each file is written as the restore's own thread writes one into a
directory it created (sources/localdir/restore.py): unnamed
(sources/localdir/unnamed.py; where the filesystem cannot, to its
temporary name, created with ``O_EXCL | O_NOFOLLOW``) relative to its
directory's descriptor, its data ranges with ``pwrite`` (the rest a hole;
a large file part after part), its owner, mode and times, then linked
under its name (or renamed into place); on any error the file is dropped
and the error answered with the file's last part. Names
are checked again here: one with a slash, ``.``, ``..`` or a NUL ends the
process (the restore never sends one).

The process exits when the socket ends: the restore closed it, or died (a
``kill -9`` of the restore closes its end, so the writer's next read or
write ends it, leaving nothing of the file it was writing where it was
unnamed, or at most one temporary file, which the next restore removes).
SIGINT is ignored: a Ctrl-C reaches the whole process group, and the
restore decides what happens.
"""

from __future__ import annotations

import errno
import mmap
import os
import signal
import socket
import struct
import sys

from sources.localdir.content import data_ranges, pwrite_all
from sources.localdir.owners import set_owner_and_mode
from sources.localdir.unnamed import link_into_place, open_unnamed
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
    FileJob,
    answer,
    parse_dir,
    parse_files,
    parse_key,
    parse_leave,
    parse_ring,
)
from store.errors import IntegrityError
from store.format.crypto import verified_plaintext
from store.pipeline.wire import Closed, recv_frame, send_frame

_PROTOCOL_ERROR = 2


class _ProtocolError(Exception):
    pass


def _checked(name: bytes) -> bytes:
    if not name or name in (b".", b"..") or b"/" in name or b"\x00" in name:
        raise _ProtocolError(f"unsafe name {name!r}")
    return name


class _OpenFile:
    """A file being written, from its first part to its last: unnamed until
    it is complete (sources/localdir/unnamed.py), or under its temporary
    name where the filesystem has no unnamed files."""

    def __init__(self, dir_fd: int, job: FileJob) -> None:
        self.dir_fd = dir_fd
        self.name, self.temp = _checked(job.name), _checked(job.temp)
        self.written = 0
        fd = open_unnamed(dir_fd)
        self.unnamed = fd is not None
        if fd is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(self.temp, flags, 0o600, dir_fd=dir_fd)
        self.fd: int | None = fd

    def write(self, job: FileJob, id_key: bytes | None) -> None:
        """Write one part's data ranges (decoding a SEALED part's chunks with
        ``id_key``). Raises OSError, IntegrityError."""
        fd = self._fd()
        pos = 0
        if job.flags & SEALED and id_key is None:
            raise _ProtocolError("sealed chunks before the key")
        for number, (offset, length) in enumerate(job.ranges):
            view = job.data[pos : pos + length]
            pos += length
            if id_key is None or not job.flags & SEALED:
                pwrite_all(fd, view, offset)
                self.written += length
                continue
            raw_length, chunk_id = job.sealed[number]
            plain = verified_plaintext(
                id_key, chunk_id, view, raw_length, f"chunk {chunk_id.hex()[:8]}"
            )
            plain_view = memoryview(plain)
            for low, high in data_ranges(plain):
                pwrite_all(fd, plain_view[low:high], offset + low)
                # Only what was written: a zero run left out at the end
                # makes finish() give the file its size.
                self.written += high - low

    def finish(self, job: FileJob) -> None:
        """Size, owner, mode and times, then its name (linked, or renamed
        into place). Raises OSError (FileExistsError when an unnamed file's
        name is taken: nothing is replaced)."""
        fd, self.fd = self._fd(), None
        try:
            if self.written != job.size:  # holes, or a file of only zeros
                os.ftruncate(fd, job.size)
            meta = job.meta
            set_owner_and_mode(fd, meta.mode, meta.uid, meta.gid, meta.chown)
            os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))
            if self.unnamed:
                link_into_place(fd, self.dir_fd, self.name)
        finally:
            os.close(fd)
        if not self.unnamed:
            os.replace(self.temp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)

    def _fd(self) -> int:
        if self.fd is None:  # written after its last part: never sent
            raise _ProtocolError(f"{self.name!r} written after it was finished")
        return self.fd

    def discard(self) -> None:
        """After an error: close and remove the temporary file (an unnamed
        one goes with its descriptor)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.unnamed:
            return
        try:
            os.unlink(self.temp, dir_fd=self.dir_fd)
        except OSError:
            pass


def _error(exc: OSError) -> tuple[int, str]:
    return exc.errno or -1, exc.strerror or str(exc)


class _Writer:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.ring: memoryview | None = None
        self.id_key: bytes | None = None
        self.dirs: dict[int, int] = {}
        # Files whose last part is still to come, by tag: being written, or
        # failed (the error is answered with the last part).
        self.open: dict[int, _OpenFile] = {}
        self.failed: dict[int, OSError] = {}

    def files(self, body: bytes) -> bytes:
        if self.ring is None:
            raise _ProtocolError("files before the ring")
        answers: list[bytes] = []
        for job in parse_files(body, self.ring):
            answer_bytes = self.part(job)
            if answer_bytes is not None:
                answers.append(answer_bytes)
        return b"".join(answers)

    def part(self, job: FileJob) -> bytes | None:
        """Write one part of a file; its answer once it is the last."""
        tag = job.tag
        if job.flags & FIRST:
            if tag in self.open or tag in self.failed:
                raise _ProtocolError(f"file {tag} begun twice")
            dir_fd = self.dirs.get(job.dir_id)
            if dir_fd is None:
                raise _ProtocolError(f"no directory {job.dir_id}")
            try:
                self.open[tag] = _OpenFile(dir_fd, job)
            except OSError as exc:
                self.failed[tag] = exc
        elif tag not in self.open and tag not in self.failed:
            raise _ProtocolError(f"a part of file {tag}, which was not begun")
        current = self.open.get(tag)
        if job.flags & ABORT:
            self.open.pop(tag, None)
            self.failed.pop(tag, None)
            if current is not None:
                current.discard()
            return answer(tag, 0, errno.ECANCELED, "abandoned by the restore")
        if current is not None:
            try:
                current.write(job, self.id_key)
                if job.flags & LAST:
                    del self.open[tag]
                    current.finish(job)
                    return answer(tag, job.size)
            except (OSError, IntegrityError) as exc:
                self.open.pop(tag, None)
                current.discard()
                self.failed[tag] = (
                    exc if isinstance(exc, OSError) else OSError(errno.EBADMSG, str(exc))
                )
        if job.flags & LAST:
            return answer(tag, 0, *_error(self.failed.pop(tag)))
        return None

    def leave(self, body: bytes) -> bytes:
        tag, dir_id, meta = parse_leave(body)
        dir_fd = self.dirs.pop(dir_id, None)
        if dir_fd is None:
            raise _ProtocolError(f"no directory {dir_id}")
        try:
            set_owner_and_mode(dir_fd, meta.mode, meta.uid, meta.gid, meta.chown)
            os.utime(dir_fd, ns=(meta.mtime_ns, meta.mtime_ns))
        except OSError as exc:
            return answer(tag, 0, *_error(exc))
        finally:
            os.close(dir_fd)
        return answer(tag, 0)

    def map_ring(self, body: bytes, fds: list[int]) -> None:
        if len(fds) != 1 or self.ring is not None:
            for fd in fds:
                os.close(fd)
            raise _ProtocolError("the ring without its descriptor, or twice")
        try:
            size = parse_ring(body)
            if os.fstat(fds[0]).st_size < size:
                raise _ProtocolError("a ring smaller than it says")
            self.ring = memoryview(mmap.mmap(fds[0], size, prot=mmap.PROT_READ))
        finally:
            os.close(fds[0])

    def directory(self, body: bytes, fds: list[int]) -> None:
        if len(fds) != 1:
            raise _ProtocolError("a directory without its descriptor")
        dir_id = parse_dir(body)
        if dir_id in self.dirs:
            os.close(fds[0])
            raise _ProtocolError(f"directory {dir_id} sent twice")
        self.dirs[dir_id] = fds[0]

    def serve(self) -> None:
        """Answer messages until the socket ends. Raises _ProtocolError."""
        while True:
            try:
                kind, body, fds = recv_frame(self.sock, 1)
            except Closed:
                return
            if kind == DIR:
                self.directory(body, fds)
                continue
            if kind == RING:
                self.map_ring(body, fds)
                continue
            if kind == KEY and self.id_key is None and not fds:
                try:
                    self.id_key = parse_key(body)
                except ValueError as exc:
                    raise _ProtocolError(str(exc)) from exc
                continue
            for fd in fds:  # descriptors come only with DIR and RING
                os.close(fd)
            if fds:
                raise _ProtocolError("a descriptor outside DIR and RING")
            try:
                if kind == FILES:
                    answers = self.files(body)
                elif kind == LEAVE:
                    answers = self.leave(body)
                else:
                    raise _ProtocolError(f"unknown message {kind}")
            except (ValueError, struct.error) as exc:
                raise _ProtocolError(str(exc)) from exc
            try:
                send_frame(self.sock, ANSWERS, answers)
            except OSError as exc:  # the restore is gone
                raise Closed from exc


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=sys.stdin.fileno())
    try:
        _Writer(sock).serve()
    except Closed:
        pass
    except _ProtocolError:
        sys.exit(_PROTOCOL_ERROR)


if __name__ == "__main__":
    main()
