"""Restore a snapshot's tree into a local directory, safely.

Every path is opened relative to an already-open directory with
``O_NOFOLLOW``, so neither a hostile name in the snapshot (names are checked
again here) nor a symlink planted in the target can make a write land
outside the target. Files are written to a temporary name and renamed into
place; directories get their modes and times after their contents.

Conflicts with what is already in the target: ``skip`` (default; an identical
file counts as already restored), ``replace``, or ``keep-both`` (the restored
copy gets a ``(restored N)`` suffix). Running the same restore twice writes
nothing the second time.

From a local repository the restore runs in this thread; from any other
backend, chunks load in background threads and files are written by a few
threads. Either way, once it has written 256 files of directories it
created, a writer process writes the rest of those
(sources/localdir/offload.py): the same files, names and metadata, on a
second core. Files of directories that were there before are always written
here (in this thread or the threads), where conflicts and leftovers are
decided.

Ownership (as tar does it, sources/localdir/owners.py): as root, every item
gets back the owner and group its snapshot recorded; set-ID bits survive only
where that owner and group are then the item's.

A new file is written unnamed and linked under its name once complete
(sources/localdir/unnamed.py): a restore killed with ``kill -9`` leaves
nothing of it. A file that replaces another, or any file where the
filesystem has no unnamed files, is written to a temporary name,
``.coffer-restore-<tag>-<random>`` (``<tag>`` a hash of the final name), and
renamed into place: a killed restore leaves those behind, and the next
restore of the same items into the same directory removes them before
writing (a directory the restore creates holds none, and is not searched).

``select`` narrows a restore beyond path globs (the Microsoft 365 filters of
sources/m365/restore): it is asked about every file and symlink with its
path and the directory entries above it; directories are then made only for
what is selected.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import secrets
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from sources.errors import RestoreTargetError
from sources.localdir.content import Prefetch, part_data, window_ids, windows, write_content
from sources.localdir.offload import PART_LIMIT, Answer, WriterProcess
from sources.localdir.owners import Ownership
from sources.localdir.prefetch import (
    CACHE_BYTES,
    LARGE,
    SERIAL_CACHE_BYTES,
    Prefetcher,
    batched,
    run_now,
)
from sources.localdir.unnamed import link_into_place, open_unnamed
from sources.localdir.writewire import Meta
from store import Entry, IntegrityError, SnapshotReader, StoreError

CONFLICT_POLICIES = ("skip", "replace", "keep-both")
_COPY_BLOCK = 1024 * 1024
TEMP_PREFIX = b".coffer-restore-"


@dataclass
class RestoreFailure:
    path: str
    reason: str


@dataclass
class RestoreResult:
    """Counts of one restore (one snapshot into one directory)."""

    created: int = 0
    replaced: int = 0
    kept_both: int = 0
    skipped: int = 0
    unchanged: int = 0
    directories: int = 0
    bytes_written: int = 0
    failures: list[RestoreFailure] = field(default_factory=list)

    def to_map(self) -> dict[str, object]:
        return {
            "created": self.created,
            "replaced": self.replaced,
            "kept_both": self.kept_both,
            "skipped": self.skipped,
            "unchanged": self.unchanged,
            "directories": self.directories,
            "bytes_written": self.bytes_written,
            "failed": len(self.failures),
            "failures": [{"path": f.path, "reason": f.reason} for f in self.failures],
        }


def path_selected(path: str, includes: list[str]) -> bool:
    """True when ``path`` or one of its parents matches an include glob."""
    if not includes:
        return True
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        if any(fnmatchcase(prefix, pattern) for pattern in includes):
            return True
    return False


def _valid_name(name: bytes) -> bool:
    return bool(name) and name not in (b".", b"..") and b"/" not in name and b"\x00" not in name


def _temp_tag(name: bytes) -> bytes:
    """The part of a temporary name that says which final name it was for."""
    return hashlib.blake2b(name, digest_size=6).hexdigest().encode()


def _leftovers(dir_fd: int) -> dict[bytes, list[bytes]]:
    """Temporary files of earlier restores in a directory, by tag."""
    found: dict[bytes, list[bytes]] = {}
    with os.scandir(dir_fd) as scan:
        for dirent in scan:
            name = os.fsencode(dirent.name)
            if name.startswith(TEMP_PREFIX):
                tag = name[len(TEMP_PREFIX) :].partition(b"-")[0]
                found.setdefault(tag, []).append(name)
    return found


class _DirChain:
    """The chain of open directory fds from the target down to the current one.

    Directories are created when first needed (so an include filter never
    leaves empty directories behind), and get their metadata when left.
    """

    def __init__(
        self,
        root_fd: int,
        result: RestoreResult,
        before_leave: Callable[[], None],
        ownership: Ownership,
    ) -> None:
        self._chain: list[tuple[bytes, int, Entry | None]] = [(b"", root_fd, None)]
        self._result = result
        self._before_leave = before_leave
        self._ownership = ownership
        # Directories whose descriptor the writer process holds (by our
        # descriptor: its number there); the writer gives them their metadata.
        self._writer: WriterProcess | None = None
        self._shared: dict[int, int] = {}
        # Leftover temporary files of each open directory (by descriptor).
        self._leftovers: dict[int, dict[bytes, list[bytes]]] = {root_fd: _leftovers(root_fd)}

    def take_leftovers(self, name: bytes) -> list[bytes]:
        """Leftover temporary names for ``name`` in the current directory
        (each returned once: the caller removes them)."""
        found = self._leftovers.get(self.fd)
        return found.pop(_temp_tag(name), []) if found else []

    @property
    def fresh(self) -> bool:
        """Whether this restore created the current directory (so it held nothing
        before: no item of it needs looking for in the target)."""
        return self.fd not in self._leftovers

    @property
    def fd(self) -> int:
        return self._chain[-1][1]

    def shared(self, writer: WriterProcess) -> int:
        """The current directory's number in ``writer`` (its descriptor sent
        the first time). Only for a directory this restore created."""
        dir_id = self._shared.get(self.fd)
        if dir_id is None:
            self._writer = writer
            dir_id = self._shared[self.fd] = writer.share(self.fd)
        return dir_id

    def enter(self, names: list[bytes], entries: list[Entry]) -> None:
        """Make the open chain be ``names`` (creating what is missing)."""
        common = 0
        current = [name for name, _, _ in self._chain[1:]]
        while common < min(len(current), len(names)) and current[common] == names[common]:
            common += 1
        if len(self._chain) - 1 > common:
            self._before_leave()  # writes into the directories left must finish first
        while len(self._chain) - 1 > common:
            self._leave()
        for name, entry in zip(names[common:], entries[common:], strict=True):
            self._chain.append((name, self._open_dir(self.fd, name), entry))

    def _open_dir(self, parent_fd: int, name: bytes) -> int:
        created = False
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
            self._result.directories += 1
            created = True
        except FileExistsError:
            pass
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _Conflict("exists in the target and is not a directory") from exc
            raise
        if not created:
            try:
                self._leftovers[fd] = _leftovers(fd)
            except BaseException:
                os.close(fd)
                raise
        return fd

    def _leave(self, use_writer: bool = True) -> None:
        writer = self._writer if use_writer else None
        dir_id = self._shared.pop(self.fd, None)
        # The path only names the folder in the writer's errors: built for those.
        rel = (
            "/".join(e.display_name for _, _, e in self._chain[1:] if e is not None)
            if writer is not None and dir_id is not None
            else ""
        )
        _name, fd, entry = self._chain.pop()
        self._leftovers.pop(fd, None)
        try:
            if entry is None:
                return
            if writer is not None and dir_id is not None:
                # After the files the writer has still to put in it.
                writer.leave(rel, dir_id, _meta(entry, self._ownership))
                return
            self._ownership.apply(fd, entry)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(fd)

    def close(self, *, use_writer: bool = True) -> None:
        """Leave every open directory, giving each its metadata (through the
        writer process for those it holds, unless ``use_writer`` is False:
        after an error, once it is stopped). Idempotent."""
        while len(self._chain) > 1:
            self._leave(use_writer)


class _Conflict(Exception):
    pass


def _same_content(dir_fd: int, name: bytes, entry: Entry, reader: SnapshotReader) -> bool:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_size != entry.size:
            return False
        source = reader.open(entry)
        while True:
            expected = source.read(_COPY_BLOCK)
            if not expected:
                return os.read(fd, 1) == b""
            if os.read(fd, len(expected)) != expected:
                return False
    finally:
        os.close(fd)


# Temporary names end in this process's random token and a counter: unique
# without a getrandom() per file (O_EXCL still refuses a name that exists).
_TEMP_TOKEN = secrets.token_hex(4).encode()
_temp_counter = itertools.count()


def _temp_suffix() -> bytes:
    # next() on itertools.count is atomic under the GIL: thread-safe.
    return _TEMP_TOKEN + b"%x" % next(_temp_counter)


def _temp_name(name: bytes) -> bytes:
    # Tagged with the item's own name, so a rerun finds this one if we are killed.
    return TEMP_PREFIX + _temp_tag(name) + b"-" + _temp_suffix()


def _meta(entry: Entry, ownership: Ownership) -> Meta:
    """What the writer process gives an item: its mode, owner and time."""
    uid, gid = ownership.recorded(entry)
    return Meta(entry.mode, ownership.changes_owners, uid, gid, entry.mtime_ns)


def _write_file(
    dir_fd: int,
    name: bytes,
    entry: Entry,
    reader: SnapshotReader,
    ownership: Ownership,
    prefetch: Prefetch | None,
    replace: bool,
) -> int:
    """Write ``entry`` as ``name`` in ``dir_fd``; its size. Unnamed until
    complete, then linked under ``name`` (sources/localdir/unnamed.py);
    ``replace`` (an existing file of that name is to be replaced), or where
    the filesystem has no unnamed files: under a temporary name, renamed
    into place. Raises what write_content raises, and OSError."""
    fd = None if replace else open_unnamed(dir_fd)
    if fd is not None:
        try:
            written = write_content(fd, entry, reader.chunks, prefetch)
            ownership.apply(fd, entry)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            link_into_place(fd, dir_fd, name)
        finally:
            os.close(fd)
        return written
    temp = _temp_name(entry.name)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
    try:
        try:
            written = write_content(fd, entry, reader.chunks, prefetch)
            ownership.apply(fd, entry)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(temp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    return written


def _free_name(dir_fd: int, name: bytes) -> bytes:
    stem, dot, ext = name.rpartition(b".")
    if not dot or not stem:
        stem, ext, dot = name, b"", b""
    for n in range(1, 10_000):
        candidate = stem + f" (restored {n})".encode() + dot + ext
        try:
            os.stat(candidate, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return candidate
    raise _Conflict("no free name for a second copy")


def _iter_tree(
    reader: SnapshotReader, path: str, names: list[bytes], entries: list[Entry]
) -> Iterator[tuple[str, list[bytes], list[Entry], Entry]]:
    for entry in reader.listdir(path):
        child = f"{path}/{entry.display_name}" if path else entry.display_name
        yield child, names, entries, entry
        if entry.is_dir:
            yield from _iter_tree(reader, child, [*names, entry.name], [*entries, entry])


def restore_to_dir(
    reader: SnapshotReader,
    target: Path,
    *,
    path: str = "",
    includes: list[str] | None = None,
    on_conflict: str = "skip",
    progress: Callable[[str, int], None] | None = None,
    select: Callable[[str, Entry, list[Entry]], bool] | None = None,
    owners: str = "numeric",
) -> RestoreResult:
    """Write the snapshot's tree (or the subtree at ``path``) into ``target``.

    Creates ``target`` if missing. Raises RestoreTargetError if it is not a
    directory; item failures are collected in the result, not raised.
    ``owners`` is one of OWNER_POLICIES (see the module docstring).
    """
    if on_conflict not in CONFLICT_POLICIES:
        raise ValueError(f"on_conflict must be one of {CONFLICT_POLICIES}")
    ownership = Ownership(owners)
    try:
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise RestoreTargetError(f"cannot use {target} as restore target: {exc.strerror}") from exc
    result = RestoreResult()
    # From a local repository, everything runs in this thread: reads are
    # system calls, and the threads passing the GIL back and forth at every
    # one of them cost more than they overlapped (a restore of 100,000 mails
    # into a new ext4 took 31.8 s with the threads, 22 s in one thread and
    # 19 s with keep_freed_memory(); docs/performance.md, "Restore in one
    # thread"). From an object store, reads wait for requests: threads.
    serial = reader.reads_locally
    reader = reader.with_chunk_cache(
        SERIAL_CACHE_BYTES if serial else CACHE_BYTES, read_threads=0 if serial else None
    )
    includes = includes or []
    base = path.strip("/")
    writers = _Writers(result, target, progress, workers=0 if serial else _Writers.WORKERS)
    prefetcher = Prefetcher(reader, threads=0 if serial else Prefetcher.THREADS)
    try:
        chain = _DirChain(root_fd, result, writers.drain, ownership)
    except OSError as exc:
        writers.close()
        prefetcher.close()
        os.close(root_fd)
        raise RestoreTargetError(f"cannot list {target}: {exc.strerror}") from exc
    # Files of directories this restore creates go to a writer process (the
    # restore then uses two cores; sources/localdir/offload.py), from an
    # object store too: its threads passing the GIL back and forth at every
    # system call cost more than they overlapped (docs/performance.md,
    # "Restores from an object store").
    offload = _Offload(writers, chain, ownership, reader)
    prefetcher.undecoded = offload.decodes
    try:
        selected = (
            item
            for item in _iter_tree(reader, base, [], [])
            if path_selected(item[0][len(base) + 1 :] if base else item[0], includes)
            and (select is None or (not item[3].is_dir and select(item[0], item[3], item[2])))
        )
        for item_path, names, parents, entry in batched(
            ((item, item[3]) for item in selected), prefetcher
        ):
            rel = item_path[len(base) + 1 :] if base else item_path
            if not _valid_name(entry.name) or not all(_valid_name(n) for n in names):
                result.failures.append(RestoreFailure(rel, "unsafe name refused"))
                continue
            try:
                chain.enter(names, parents)
                if entry.is_dir:
                    chain.enter([*names, entry.name], [*parents, entry])
                    continue
            except _Conflict as exc:
                result.failures.append(RestoreFailure(rel, str(exc)))
                continue
            except OSError as exc:
                writers.record_os_error(rel, exc)
                continue
            if chain.fresh and offload.take(rel, entry):
                continue
            writers.submit(
                rel,
                entry.size,
                _restore_leaf,
                chain.fd,
                entry,
                reader,
                on_conflict,
                ownership,
                chain.take_leftovers(entry.name),
                prefetcher.chunks,
                chain.fresh,
                large=entry.is_file and entry.size > LARGE,
            )
        writers.drain()
        chain.close()
        offload.finish()
    finally:
        writers.close()
        prefetcher.close()
        offload.close()
        chain.close(use_writer=False)  # after an error: the writer is gone
        os.close(root_fd)
    return result


class _Offload:
    """Sends the files of directories this restore created to a writer
    process (sources/localdir/offload.py), and records its answers.

    The process starts once START_AFTER such files were written here, so a
    small restore never starts one; if it cannot start, every file is
    written here. Not thread-safe (the restore's thread only).

    Balance: once the process runs, batches are loaded undecoded
    (authenticated, not decompressed nor re-hashed), and each small file
    whose chunks are all still undecoded in the cache goes to the writer
    that way while the writer is less than BALANCE_BYTES behind: it decodes
    and re-hashes them itself. Further behind, this thread decodes (the
    cache does, on its first read of the chunk) and sends the plaintext.
    Which process is the busier depends on the machine: where creating
    files is cheap, this thread (reading, decrypting, decompressing,
    hashing, copying), and the writer waited for it a third of the time;
    where the kernel's file work is dear, the writer. The decoding goes to
    the writer only while it has room (docs/performance.md, "Restore
    balance": 15% faster into tmpfs, within the spread into ext4 on our
    VM; two writers, or this thread writing when the writer is behind,
    were slower and are not done).
    """

    START_AFTER = 256
    # How far behind (bytes of files sent and not answered) the writer may be
    # and still be given chunks to decode: half a prefetch batch, so it has
    # work while this thread loads the next batch.
    BALANCE_BYTES = 4 * 1024 * 1024

    def __init__(
        self, writers: _Writers, chain: _DirChain, ownership: Ownership, reader: SnapshotReader
    ) -> None:
        self._writers = writers
        self._chain = chain
        self._ownership = ownership
        self._cache = reader.chunks
        self._codec = reader.chunks.codec
        self._seen = 0
        self._process: WriterProcess | None = None
        self._unavailable = False

    def take(self, rel: str, entry: Entry) -> bool:
        """Send ``entry`` (an item of the chain's current directory, which this
        restore created) to the writer: True; False when it is to be written
        here. Raises RestoreWriterFailed once the writer has died, and
        RestoreTargetError (from the answers) when the target is full."""
        if self._unavailable or not entry.is_file:
            return False
        if self._process is None:
            self._seen += 1
            if self._seen <= self.START_AFTER:
                return False
            try:
                self._process = WriterProcess(self._codec.id_key if self._codec else None)
            except OSError:  # no process to be had: the restore goes on here
                self._unavailable = True
                return False
        # A large file goes a window of chunks at a time (loaded here, as
        # write_content loads them), so the cache never holds all of it.
        parts = windows(entry) if entry.size > LARGE else [(0, len(entry.chunks))]
        if any(sum(size for _, size in entry.chunks[a:b]) > PART_LIMIT for a, b in parts):
            return False  # chunks larger than the ring's share: written here
        process = self._process
        dir_id = self._chain.shared(process)
        temp, meta = _temp_name(entry.name), _meta(entry, self._ownership)
        if len(parts) == 1 and entry.chunks and process.backlog() < self.BALANCE_BYTES:
            sealed = self._undecoded(entry)
            if sealed is not None:
                ranges, payloads, records = sealed
                name = entry.name
                size = entry.size
                process.add(rel, dir_id, name, temp, meta, size, ranges, payloads, sealed=records)
                self._record(process.answered())
                return True
        tag: int | None = None
        offset = 0
        for number, window in enumerate(parts):
            if len(parts) > 1:
                self._cache.prefetch(window_ids(entry, window))
            try:
                ranges, data, offset = part_data(entry, self._cache, window, offset)
            except (IntegrityError, StoreError) as exc:
                if tag is not None:
                    process.abort(tag)
                self._writers.record_failure(rel, str(exc))
                return True
            last = number == len(parts) - 1
            tag = process.add(
                rel, dir_id, entry.name, temp, meta, entry.size, ranges, data, tag=tag, last=last
            )
            if len(parts) > 1:  # sent (copied to the ring): evicted first
                self._cache.demote(window_ids(entry, window))
        self._record(process.answered())
        return True

    def decodes(self) -> bool:
        """Whether the writer process can decode chunks (batches are then
        loaded undecoded)."""
        return self._process is not None and self._codec is not None

    def _undecoded(
        self, entry: Entry
    ) -> tuple[list[tuple[int, int]], list[memoryview], list[tuple[int, bytes]]] | None:
        """A small file's chunks as the cache holds them undecoded: (offset in
        the file, payload length) of each, the payloads, and (plaintext
        length, chunk ID) of each; None when one of them is decoded or not
        cached, or its recorded length is not the tree's (the plaintext path
        then reports that, as checked_chunk does)."""
        ranges: list[tuple[int, int]] = []
        payloads: list[memoryview] = []
        records: list[tuple[int, bytes]] = []
        offset = 0
        for chunk_id, size in entry.chunks:
            payload = self._cache.payload(chunk_id)
            if payload is None or payload.raw_length != size:
                return None
            ranges.append((offset, len(payload.data)))
            payloads.append(memoryview(payload.data))
            records.append((size, chunk_id))
            offset += size
        return ranges, payloads, records

    def finish(self) -> None:
        """Wait for every answer and record it (raises like :meth:`take`)."""
        if self._process is not None:
            self._record(self._process.drain())

    def close(self) -> None:
        """Stop the writer process; idempotent."""
        if self._process is not None:
            self._process.close()

    def _record(self, answers: Iterable[Answer]) -> None:
        for answer in answers:
            if answer.errno:
                self._writers.record_os_error(answer.rel, OSError(answer.errno, answer.message))
            elif not answer.is_dir:
                self._writers.record(answer.rel, answer.size, "created", answer.written)


class _Writers:
    """Restores leaves in a few threads while the main thread walks the tree,
    or in the calling thread (``workers=0``: each item is restored when it is
    submitted).

    Creating, writing and renaming many small files is mostly system calls,
    which run outside the GIL; from an object store they overlap the waits
    for requests. Outcomes are recorded in the order items were submitted, in
    the calling thread, so the result and the progress callback need no lock.
    A directory's writes are drained before it is left (its descriptor
    closed, its times set).
    """

    WORKERS = 4
    IN_FLIGHT = 64  # well below a prefetch batch, so its chunks are still cached
    # Large files (over prefetch.LARGE) written by the threads at once. Each
    # holds two windows in the chunk cache (content.WINDOW each: the one
    # written, the next loading) beside the two batches (up to 12 MiB each:
    # a batch closes past BATCH_BYTES): 2 x 12 + 2 x 4 fits CACHE_BYTES.
    # With one per thread, their windows evicted each other's, and each
    # chunk evicted was fetched again on its own.
    LARGE_AT_ONCE = 1

    def __init__(
        self,
        result: RestoreResult,
        target: Path,
        progress: Callable[[str, int], None] | None,
        workers: int = WORKERS,
    ) -> None:
        self._result = result
        self._target = target
        self._progress = progress
        self._pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="coffer-restore") if workers else None
        )
        self._pending: deque[tuple[Future[tuple[str, int]], str, int]] = deque()
        self._large = threading.BoundedSemaphore(self.LARGE_AT_ONCE)

    def submit(
        self,
        rel: str,
        size: int,
        fn: Callable[..., tuple[str, int]],
        *args: object,
        large: bool = False,
    ) -> None:
        """Restore one item with ``fn(*args)``, in a thread when there are
        threads. ``large``: a file over prefetch.LARGE, which waits here
        while LARGE_AT_ONCE others are being written."""
        while len(self._pending) >= self.IN_FLIGHT:
            self._collect_oldest()
        if self._pool is not None:
            if large:
                self._large.acquire()  # released by the thread that writes it
                try:
                    future = self._pool.submit(self._large_one, fn, *args)
                except BaseException:  # never queued: nobody else releases it
                    self._large.release()
                    raise
            else:
                future = self._pool.submit(fn, *args)
            self._pending.append((future, rel, size))
            return
        self._pending.append((run_now(fn, *args), rel, size))
        self._collect_oldest()

    def _large_one(self, fn: Callable[..., tuple[str, int]], *args: object) -> tuple[str, int]:
        try:
            return fn(*args)
        finally:
            self._large.release()

    def drain(self) -> None:
        """Wait for every submitted item and record it. Raises RestoreTargetError
        when the target is full (after recording what finished before)."""
        while self._pending:
            self._collect_oldest()

    def close(self) -> None:
        """Wait for the threads without recording (after an error), then stop them."""
        for future, _rel, _size in self._pending:
            future.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pending.clear()

    def record_os_error(self, rel: str, exc: OSError) -> None:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise RestoreTargetError(f"no space left in {self._target}") from exc
        self._result.failures.append(RestoreFailure(rel, exc.strerror or str(exc)))

    def record_failure(self, rel: str, reason: str) -> None:
        self._result.failures.append(RestoreFailure(rel, reason))

    def record(self, rel: str, size: int, outcome: str, written: int) -> None:
        """Count one restored item (``outcome`` names a RestoreResult counter)."""
        setattr(self._result, outcome, getattr(self._result, outcome) + 1)
        self._result.bytes_written += written
        if self._progress:
            self._progress(rel, size)

    def _collect_oldest(self) -> None:
        future, rel, size = self._pending.popleft()
        try:
            outcome, written = future.result()
        except (_Conflict, IntegrityError, StoreError) as exc:
            self.record_failure(rel, str(exc))
            return
        except OSError as exc:
            self.record_os_error(rel, exc)
            return
        self.record(rel, size, outcome, written)


def _restore_leaf(
    dir_fd: int,
    entry: Entry,
    reader: SnapshotReader,
    on_conflict: str,
    ownership: Ownership,
    leftovers: list[bytes],
    prefetch: Prefetch | None = None,
    fresh: bool = False,
) -> tuple[str, int]:
    """Restore one non-directory item into ``dir_fd``: (outcome, bytes written).

    ``leftovers`` are temporary files an earlier, killed restore left for this
    item: removed first. ``fresh``: ``dir_fd`` was created by this restore,
    so nothing of that name can be there (not looked up). The outcome names a
    RestoreResult counter. Runs in a writer thread; raises _Conflict,
    StoreError or OSError for the caller to record.
    """
    for leftover in leftovers:
        try:
            os.unlink(leftover, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
    name = entry.name
    existing: os.stat_result | None = None
    if not fresh:  # a directory this restore made holds only what it wrote
        try:
            existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
    if existing is not None:
        if (
            entry.is_file
            and stat.S_ISREG(existing.st_mode)
            and _same_content(dir_fd, name, entry, reader)
        ):
            return "unchanged", 0
        if (
            entry.is_symlink
            and stat.S_ISLNK(existing.st_mode)
            and os.readlink(name, dir_fd=dir_fd) == entry.target
        ):
            return "unchanged", 0
        if on_conflict == "skip":
            return "skipped", 0
        if on_conflict == "keep-both":
            name = _free_name(dir_fd, name)
        elif stat.S_ISDIR(existing.st_mode):
            raise _Conflict("a directory of that name exists in the target")
    written = 0
    if entry.is_symlink:
        if existing is not None and name == entry.name:
            os.unlink(name, dir_fd=dir_fd)
        os.symlink(entry.target or b"", name, dir_fd=dir_fd)
        ownership.apply_link(dir_fd, name, entry)
        os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
    else:
        replace = existing is not None and name == entry.name
        written = _write_file(dir_fd, name, entry, reader, ownership, prefetch, replace)
    if existing is None:
        return "created", written
    if name != entry.name:
        return "kept_both", written
    return "replaced", written
