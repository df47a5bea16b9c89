"""Back up a local directory: regular files byte-exact with modes, mtimes and
owners, directories, and symlinks as symlinks.

Unchanged files (same size, mtime, ctime and inode) are not read again. A file
that cannot be read is skipped and reported; the run goes on (exit code 3).
Sockets, FIFOs and devices are reported as skipped: they have no content.

The tree may belong to someone hostile (a user's home directory backed up by
root), who can swap any name for a symlink, a FIFO or another directory
between our ``lstat`` and our ``open``. So nothing is opened by path: the walk
holds a descriptor of each directory, lists it with ``os.scandir(fd)``, and
opens every file and subdirectory relative to it with ``O_NOFOLLOW |
O_NONBLOCK``; the opened object's device and inode must be the ones the
``lstat`` saw, or the name is skipped and reported ("changed while being backed
up"). A symlink is therefore stored as a symlink, never as its target; a FIFO
never blocks the run; a directory swapped for a link is never walked.

Each item records its owner in its attributes (FORMAT.md §8): ``uid`` and
``gid`` (numbers) and, when the system knows them, ``user`` and ``group``
(names), so a restore as root can give files back to their owners.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import socket
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sources.errors import SourceUnavailable
from sources.folder.sparse import SparseReader, is_sparse
from store import (
    DIRECTORY,
    FILE,
    SYMLINK,
    BackupRun,
    FileResult,
    Owner,
    OwnerSession,
    Snapshot,
    WorkerFailed,
    WorkerPool,
    symlink_version,
)

# Files up to this size are read whole (one system call, one buffer); larger
# ones are streamed through the chunker.
_READ_WHOLE_LIMIT = 4 * 1024 * 1024

# Every name is opened relative to its directory's descriptor, never following
# a symlink (ELOOP instead) and never blocking on a FIFO or a device swapped in.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_DIR_FLAGS = _OPEN_FLAGS | os.O_DIRECTORY
SWAPPED = "changed while being backed up (replaced after it was listed): not backed up"

# Worker processes (store/pipeline) take over only once the walk has met this
# many files to read, or this many bytes; the files before are read in this
# process. Starting two workers costs about 0.3 s of CPU and 0.4 to 0.6 s
# before they answer (measured at load 4 to 6, docs/performance.md), about
# what this process needs to read 1,000 mails or 60 MiB. But files read here
# also slow the walk: its reader threads take the GIL each time the walk's
# lstat gives it up, and a 1% rerun of the mail corpus (1,000 changed mails
# among 100,000) spent twice as long in the walk's lstat line as a no-change
# rerun. With the workers started after 256 files instead of 4,096, that rerun
# took 3.76-4.26 s instead of 4.13-4.54 s (five alternating runs each,
# docs/performance.md, "Workers for reruns"). Runs of fewer changed files
# never start them. Both paths cut and name blobs identically, so mixing is
# safe.
PIPELINE_START_FILES = 256
PIPELINE_START_BYTES = 128 * 1024 * 1024
# A batch for a worker: per-file overhead is amortised over this many files,
# and a batch is sent once it holds this many bytes, whichever comes first.
PIPELINE_BATCH_FILES = 64
PIPELINE_BATCH_BYTES = 8 * 1024 * 1024


def suggested_processes() -> int:
    """What ``--workers`` to try: one per core but one, none on one core.

    The backup's own process keeps a core busy (the walk, bookkeeping,
    encryption, uploads): on 2 cores one worker did the same work as two for
    0.2 s less CPU per run, the start-up of the second (docs/performance.md).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 0 if not cores or cores < 2 else cores - 1


def default_processes() -> int:
    """Worker processes when none are asked for: :func:`suggested_processes`.

    Decided by measurement on a quiet 2-core machine, both corpora at full
    size, three repeats (docs/performance.md, "Both corpora at full size on a
    quiet machine"): the first backup of 100,000 mails took 29.2 s with one
    worker against 35.3 s in one process (restic 28.9 s), of the home corpus
    21.0 s against 25.4 s (restic 20.8 s); reruns were the same either way
    (they read next to nothing, and below PIPELINE_START_* no worker starts).
    On a loaded machine, where no core is free, the workers did not pay
    (1.08x and 0.87x); ``--workers 0`` keeps everything in one process.
    """
    return suggested_processes()


def _sparse_image(st: os.stat_result) -> bool:
    """Whether a file is read by its data extents (a sparse file too large
    to be read whole)."""
    return st.st_size > _READ_WHOLE_LIMIT and is_sparse(st)


@dataclass
class SkippedItem:
    path: str
    reason: str


@dataclass
class FolderBackupResult:
    """What a folder backup did."""

    snapshot: Snapshot
    skipped: list[SkippedItem] = field(default_factory=list)
    changed_during_read: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return bool(self.skipped)


def folder_owner(root: Path) -> Owner:
    """The owner of a folder's snapshots: ``host:/absolute/path``."""
    key = f"{socket.gethostname()}:{root.resolve()}"
    return Owner("folders", key, key)


class _Swapped(Exception):
    """The name no longer points at the object that was lstat()ed."""


def _open_same(
    dir_fd: int, name: str, st: os.stat_result, flags: int
) -> tuple[int, os.stat_result]:
    """Open ``name`` in ``dir_fd`` without following links: (fd, its fstat).

    Raises _Swapped when what opened is not the object ``st`` describes (another
    device or inode, another type: the name was replaced after the listing),
    OSError when it cannot be opened (a symlink swapped in gives ELOOP, which
    is reported as a swap too).
    """
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _Swapped from exc
        raise
    try:
        now = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if (now.st_dev, now.st_ino, stat.S_IFMT(now.st_mode)) != (
        st.st_dev,
        st.st_ino,
        stat.S_IFMT(st.st_mode),
    ):
        os.close(fd)
        raise _Swapped
    return fd, now


class _Owners:
    """uid/gid -> attributes, with names looked up once per id. Thread-safe enough:
    a lost race only looks a name up twice."""

    def __init__(self) -> None:
        self._users: dict[int, str | None] = {}
        self._groups: dict[int, str | None] = {}

    def attrs(self, st: os.stat_result) -> dict[str, str]:
        out = {"uid": str(st.st_uid), "gid": str(st.st_gid)}
        if st.st_uid not in self._users:
            try:
                self._users[st.st_uid] = pwd.getpwuid(st.st_uid).pw_name
            except KeyError:
                self._users[st.st_uid] = None
        if st.st_gid not in self._groups:
            try:
                self._groups[st.st_gid] = grp.getgrgid(st.st_gid).gr_name
            except KeyError:
                self._groups[st.st_gid] = None
        user, group = self._users[st.st_uid], self._groups[st.st_gid]
        if user is not None:
            out["user"] = user
        if group is not None:
            out["group"] = group
        return out


def _version(st: os.stat_result) -> str:
    # size, mtime, ctime and inode, as restic compares them: a rewrite that
    # keeps size and mtime still changes ctime.
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


ProgressCallback = Callable[[str, int], None]


class _FolderWalker:
    def __init__(
        self,
        session: OwnerSession,
        root_fd: int,
        workers: int,
        progress: ProgressCallback | None,
        processes: int = 0,
        *,
        optional: bool = False,
    ) -> None:
        self.session = session
        self.processes = processes
        # Workers nobody asked for (the default): if they cannot start, the
        # run reads in this process instead of failing.
        self._optional = optional
        # Files opened for the worker processes: (fd, size, (rel, st, version)).
        self._batch: list[tuple[int, int, tuple[str, os.stat_result, str]]] = []
        self._batch_bytes = 0
        self._files_seen = 0  # files to read met so far, and their bytes
        self._bytes_seen = 0
        self._pool: WorkerPool[Any] | None = None
        self.root_fd = root_fd
        self.progress = progress
        self.skipped: list[SkippedItem] = []
        self.changed: list[str] = []
        self._owners = _Owners()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="coffer-read")
        # Bounded queue of files being read: memory and open descriptors stay
        # bounded (each queued file holds its descriptor until it is read).
        self._slots = threading.BoundedSemaphore(workers * 4)
        self._futures: list[Future[None]] = []

    def skip(self, rel: str, reason: str) -> None:
        with self._lock:
            self.skipped.append(SkippedItem(rel, reason))

    def run(self) -> None:
        # The walk compares every folder with the catalogue: read it ahead.
        self.session.prefetch()
        try:
            whole, count = self._walk(self.root_fd, "")
            if whole:
                self.session.keep_subtree("", items=count)
            self._finish_batches()
            for future in self._futures:
                future.result()
        finally:
            for fd, _, _ in self._batch:
                os.close(fd)
            self._batch = []
            self._executor.shutdown(wait=True)

    def _walk(self, dir_fd: int, rel_dir: str) -> tuple[bool, int]:
        """Back up one directory (an open descriptor); returns (unchanged as a
        whole, items in it).

        Each folder is compared with the parent snapshot's listing at once; a
        folder whose names, versions and subfolders are all unchanged is kept
        whole (session.keep_subtree by the caller), so a no-change run costs
        little more than the stat() calls.
        """
        try:
            with os.scandir(dir_fd) as scan:
                entries = sorted(scan, key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            self.skip(rel_dir or ".", f"cannot list directory: {exc.strerror}")
            return False, 0
        before = self.session.children(rel_dir)
        names = {os.fsencode(e.name) for e in entries}
        whole = names == set(before)
        same: list[bytes] = []  # names of unchanged items, if the folder is not kept whole
        kept_dirs: list[tuple[str, int]] = []
        count = 0
        for dirent in entries:
            rel = f"{rel_dir}/{dirent.name}" if rel_dir else dirent.name
            raw_name = os.fsencode(dirent.name)
            old = before.get(raw_name)
            try:
                st = os.stat(dirent.name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError as exc:
                self.skip(rel, f"cannot stat: {exc.strerror}")
                whole = False
                continue
            mode = st.st_mode
            if not stat.S_ISDIR(mode):
                count += 1  # items are files and links; folders hold them
            if stat.S_ISDIR(mode):
                sub_unchanged, sub_count = self._directory(
                    dir_fd, dirent.name, rel, st, old, kept_dirs
                )
                count += sub_count
                if not sub_unchanged:
                    whole = False
            elif stat.S_ISLNK(mode):
                try:
                    target = os.readlink(os.fsencode(dirent.name), dir_fd=dir_fd)
                except OSError as exc:
                    reason = (
                        SWAPPED
                        if exc.errno == errno.EINVAL
                        else f"cannot read link: {exc.strerror}"
                    )
                    self.skip(rel, reason)
                    whole = False
                    continue
                version = symlink_version(target, st.st_mtime_ns)
                if old == (SYMLINK, version):
                    same.append(raw_name)
                    continue
                whole = False
                self.session.add_symlink(
                    rel,
                    target,
                    mode=stat.S_IMODE(mode),
                    mtime_ns=st.st_mtime_ns,
                    attrs=self._owners.attrs(st),
                )
            elif stat.S_ISREG(mode):
                version = _version(st)
                if old == (FILE, version):
                    same.append(raw_name)
                    if self.progress:
                        self.progress(rel, 0)
                    continue
                whole = False
                # A sparse image stays here, where only its data extents are
                # read (sources/folder/sparse.py); a worker would read its
                # holes as zeros, 1 GiB of them for a 1 GiB image.
                if not _sparse_image(st) and self._use_workers(st.st_size):
                    self._to_worker(dir_fd, dirent.name, rel, st, version)
                    continue
                self._slots.acquire()
                try:
                    fd, _ = _open_same(dir_fd, dirent.name, st, _OPEN_FLAGS)
                except _Swapped:
                    self._slots.release()
                    self.skip(rel, SWAPPED)
                    continue
                except OSError as exc:
                    self._slots.release()
                    self.skip(rel, f"cannot read: {exc.strerror or exc}")
                    continue
                self._futures.append(self._executor.submit(self._read_file, fd, rel, st, version))
                if len(self._futures) > 1024:
                    self._reap()
            else:
                self.skip(rel, "special file (socket, FIFO or device): not backed up")
                whole = False
        if not whole:
            # Only parts are unchanged: keep them by name (compared with
            # ``before`` above, so the session need not look them up again).
            self.session.keep_children(rel_dir, same)
            for rel, items in kept_dirs:
                self.session.keep_subtree(rel, items=items)
        return whole, count

    def _directory(
        self,
        dir_fd: int,
        name: str,
        rel: str,
        st: os.stat_result,
        old: tuple[str, str | None] | None,
        kept_dirs: list[tuple[str, int]],
    ) -> tuple[bool, int]:
        """Back up the subdirectory ``name``: (unchanged with all it holds,
        items in it)."""
        try:
            sub_fd, _ = _open_same(dir_fd, name, st, _DIR_FLAGS)
        except _Swapped:
            self.skip(rel, SWAPPED)
            return False, 0
        except OSError as exc:
            self.skip(rel, f"cannot list directory: {exc.strerror}")
            return False, 0
        try:
            sub_whole, sub_count = self._walk(sub_fd, rel)
        finally:
            os.close(sub_fd)
        unchanged = True
        # The owner is part of the version: a chown changes no mtime.
        version = f"d:{stat.S_IMODE(st.st_mode):o}:{st.st_mtime_ns}:{st.st_uid}:{st.st_gid}"
        if old != (DIRECTORY, version):
            self.session.add_directory(
                rel,
                mode=stat.S_IMODE(st.st_mode),
                mtime_ns=st.st_mtime_ns,
                version=version,
                attrs=self._owners.attrs(st),
            )
            unchanged = False
        if sub_whole:
            kept_dirs.append((rel, sub_count))
        else:
            unchanged = False
        return unchanged, sub_count

    def _use_workers(self, size: int) -> bool:
        """Whether this file goes to the worker processes (starting them once
        the walk has met enough to read)."""
        if not self.processes:
            return False
        self._files_seen += 1
        self._bytes_seen += size
        if self._pool is None and (
            self._files_seen > PIPELINE_START_FILES or self._bytes_seen > PIPELINE_START_BYTES
        ):
            try:
                self._pool = self.session.run.worker_pool(self.processes)
            except WorkerFailed:
                if not self._optional:
                    raise
                # Default workers that cannot start (a process limit, no
                # memory for another interpreter): the in-process path cuts
                # the very same blobs, so the run goes on without them.
                self.processes = 0
        return self._pool is not None

    def _to_worker(
        self, dir_fd: int, name: str, rel: str, st: os.stat_result, version: str
    ) -> None:
        """Open a file for the worker processes and queue it in the batch."""
        try:
            fd, _ = _open_same(dir_fd, name, st, _OPEN_FLAGS)
        except _Swapped:
            self.skip(rel, SWAPPED)
            return
        except OSError as exc:
            self.skip(rel, f"cannot read: {exc.strerror or exc}")
            return
        self._batch.append((fd, st.st_size, (rel, st, version)))
        self._batch_bytes += st.st_size
        if len(self._batch) >= PIPELINE_BATCH_FILES or self._batch_bytes >= PIPELINE_BATCH_BYTES:
            self._submit()

    def _submit(self) -> None:
        assert self._pool is not None
        files: list[tuple[int, int, Any]] = []
        for _ in range(0, len(self._batch), PIPELINE_BATCH_FILES):
            files, self._batch = (
                self._batch[:PIPELINE_BATCH_FILES],
                self._batch[PIPELINE_BATCH_FILES:],
            )
            self._pool.submit(files, self._stored)
        self._batch_bytes = 0

    def _finish_batches(self) -> None:
        """Send the last batch to the workers and wait for all they have."""
        if self._pool is not None:
            self._submit()
            self._pool.drain()

    def _stored(self, job: tuple[str, os.stat_result, str], result: FileResult) -> None:
        """A worker's answer for one file (on the pool's collector thread)."""
        rel, st, version = job
        if result.error is not None:
            self.skip(rel, result.error)
            return
        self.session.add_item(
            rel,
            stored=(result.chunks, result.size),
            mode=stat.S_IMODE(st.st_mode),
            mtime_ns=st.st_mtime_ns,
            version=version,
            attrs=self._owners.attrs(st),
        )
        if result.after_mtime_ns != st.st_mtime_ns or result.after_size != st.st_size:
            with self._lock:
                self.changed.append(rel)
        if self.progress:
            self.progress(rel, st.st_size)

    def _reap(self) -> None:
        pending = []
        for future in self._futures:
            if future.done():
                future.result()
            else:
                pending.append(future)
        self._futures = pending

    def _read_file(self, fd: int, rel: str, st: os.stat_result, version: str) -> None:
        """Read and store one opened file; closes ``fd``."""
        try:
            with os.fdopen(fd, "rb", closefd=True) as handle:
                try:
                    content: bytes | BinaryIO | SparseReader = (
                        handle.read() if st.st_size <= _READ_WHOLE_LIMIT else handle
                    )
                    if _sparse_image(st):
                        # Read the data extents only; the holes come as zeros.
                        content = SparseReader(handle.fileno(), st.st_size)
                    self.session.add_item(
                        rel,
                        content,
                        mode=stat.S_IMODE(st.st_mode),
                        mtime_ns=st.st_mtime_ns,
                        version=version,
                        attrs=self._owners.attrs(st),
                    )
                except OSError as exc:
                    self.skip(rel, f"cannot read: {exc.strerror or exc}")
                    return
                try:
                    after = os.fstat(handle.fileno())
                    if after.st_mtime_ns != st.st_mtime_ns or after.st_size != st.st_size:
                        with self._lock:
                            self.changed.append(rel)
                except OSError:
                    pass
            if self.progress:
                self.progress(rel, st.st_size)
        finally:
            self._slots.release()


def backup_folder(
    run: BackupRun,
    root: Path,
    *,
    owner: Owner | None = None,
    workers: int = 3,
    progress: ProgressCallback | None = None,
    wait: float = 0.0,
    processes: int | None = None,
) -> FolderBackupResult:
    """Back up ``root`` as one snapshot of its owner (a full enumeration).

    ``workers`` threads read files in this process; ``processes`` worker
    processes (store/pipeline) read, chunk, hash and compress the files the
    walk meets once it has met enough (``PIPELINE_START_*``); 0 keeps
    everything in this process, None means :func:`default_processes` (and
    if they cannot start, the run reads in this process instead).
    Raises WorkerFailed if a worker process dies, or if ``processes`` workers
    were asked for and cannot start (nothing is committed).

    Raises SourceUnavailable if ``root`` is not a readable directory, and
    OwnerBusy if the same folder is being backed up by another process.
    ``root`` itself may be a symlink (the administrator named it); nothing
    below it is followed.
    """
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except NotADirectoryError as exc:
        raise SourceUnavailable(f"{root} is not a directory") from exc
    except OSError as exc:
        raise SourceUnavailable(f"cannot read {root}: {exc.strerror}") from exc
    try:
        try:
            os.listdir(root_fd)
        except OSError as exc:
            raise SourceUnavailable(f"cannot read {root}: {exc.strerror}") from exc
        owner = owner or folder_owner(root)
        session = run.owner(
            owner, source={"type": "folder", "path": str(root.resolve())}, wait=wait
        )
        try:
            session.full_scope()
            walker = _FolderWalker(
                session,
                root_fd,
                workers,
                progress,
                default_processes() if processes is None else processes,
                optional=processes is None,
            )
            walker.run()
            snapshot = session.commit(
                stats={
                    "items_skipped": len(walker.skipped),
                    "changed_during_read": len(walker.changed),
                }
            )
        finally:
            session.close()
    finally:
        os.close(root_fd)
    return FolderBackupResult(snapshot, walker.skipped, walker.changed)
