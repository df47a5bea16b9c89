"""Back up a local directory: regular files byte-exact with modes and mtimes,
directories, and symlinks as symlinks.

Unchanged files (same size, mtime, ctime and inode) are not read again. A file
that cannot be read is skipped and reported; the run goes on (exit code 3).
Sockets, FIFOs and devices are reported as skipped: they have no content.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sources.errors import SourceUnavailable
from store import (
    DIRECTORY,
    FILE,
    SYMLINK,
    BackupRun,
    Owner,
    OwnerSession,
    Snapshot,
    symlink_version,
)

# Files up to this size are read whole (one system call, one buffer); larger
# ones are streamed through the chunker.
_READ_WHOLE_LIMIT = 4 * 1024 * 1024


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


def _version(st: os.stat_result) -> str:
    # size, mtime, ctime and inode, as restic compares them: a rewrite that
    # keeps size and mtime still changes ctime.
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


ProgressCallback = Callable[[str, int], None]


class _FolderWalker:
    def __init__(
        self,
        session: OwnerSession,
        root: Path,
        workers: int,
        progress: ProgressCallback | None,
    ) -> None:
        self.session = session
        self.root = root
        self.progress = progress
        self.skipped: list[SkippedItem] = []
        self.changed: list[str] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="coffer-read")
        # Bounded queue of files being read: memory stays bounded.
        self._slots = threading.BoundedSemaphore(workers * 4)
        self._futures: list[Future[None]] = []

    def skip(self, rel: str, reason: str) -> None:
        with self._lock:
            self.skipped.append(SkippedItem(rel, reason))

    def run(self) -> None:
        try:
            whole, count = self._walk(self.root, "")
            if whole:
                self.session.keep_subtree("", items=count)
            for future in self._futures:
                future.result()
        finally:
            self._executor.shutdown(wait=True)

    def _walk(self, directory: Path, rel_dir: str) -> tuple[bool, int]:
        """Back up one directory; returns (unchanged as a whole, items in it).

        Each folder is compared with the parent snapshot's listing at once; a
        folder whose names, versions and subfolders are all unchanged is kept
        whole (session.keep_subtree by the caller), so a no-change run costs
        little more than the stat() calls.
        """
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            self.skip(rel_dir or ".", f"cannot list directory: {exc.strerror}")
            return False, 0
        before = self.session.children(rel_dir)
        names = {os.fsencode(e.name) for e in entries}
        whole = names == set(before)
        same: list[tuple[str, str]] = []  # unchanged items, if the folder is not kept whole
        kept_dirs: list[tuple[str, int]] = []
        count = 0
        for dirent in entries:
            rel = f"{rel_dir}/{dirent.name}" if rel_dir else dirent.name
            old = before.get(os.fsencode(dirent.name))
            try:
                st = dirent.stat(follow_symlinks=False)
            except OSError as exc:
                self.skip(rel, f"cannot stat: {exc.strerror}")
                whole = False
                continue
            mode = st.st_mode
            if not stat.S_ISDIR(mode):
                count += 1  # items are files and links; folders hold them
            if stat.S_ISDIR(mode):
                version = f"d:{stat.S_IMODE(mode):o}:{st.st_mtime_ns}"
                sub_whole, sub_count = self._walk(Path(dirent.path), rel)
                count += sub_count
                if old != (DIRECTORY, version):
                    self.session.add_directory(
                        rel, mode=stat.S_IMODE(mode), mtime_ns=st.st_mtime_ns, version=version
                    )
                    whole = False
                if sub_whole:
                    kept_dirs.append((rel, sub_count))
                else:
                    whole = False
            elif stat.S_ISLNK(mode):
                try:
                    target = os.readlink(os.fsencode(dirent.path))
                except OSError as exc:
                    self.skip(rel, f"cannot read link: {exc.strerror}")
                    whole = False
                    continue
                version = symlink_version(target, st.st_mtime_ns)
                if old == (SYMLINK, version):
                    same.append((rel, version))
                    continue
                whole = False
                self.session.add_symlink(
                    rel, target, mode=stat.S_IMODE(mode), mtime_ns=st.st_mtime_ns
                )
            elif stat.S_ISREG(mode):
                version = _version(st)
                if old == (FILE, version):
                    same.append((rel, version))
                    if self.progress:
                        self.progress(rel, 0)
                    continue
                whole = False
                self._slots.acquire()
                self._futures.append(
                    self._executor.submit(self._read_file, Path(dirent.path), rel, st, version)
                )
                if len(self._futures) > 1024:
                    self._reap()
            else:
                self.skip(rel, "special file (socket, FIFO or device): not backed up")
                whole = False
        if not whole:
            # Only parts are unchanged: mark them one by one.
            for rel, version in same:
                self.session.unchanged(rel, version)
            for rel, items in kept_dirs:
                self.session.keep_subtree(rel, items=items)
        return whole, count

    def _reap(self) -> None:
        pending = []
        for future in self._futures:
            if future.done():
                future.result()
            else:
                pending.append(future)
        self._futures = pending

    def _read_file(self, path: Path, rel: str, st: os.stat_result, version: str) -> None:
        try:
            try:
                if st.st_size <= _READ_WHOLE_LIMIT:
                    with open(path, "rb") as handle:
                        content: bytes | Path = handle.read()
                else:
                    content = path
                self.session.add_item(
                    rel,
                    content,
                    mode=stat.S_IMODE(st.st_mode),
                    mtime_ns=st.st_mtime_ns,
                    version=version,
                )
            except OSError as exc:
                self.skip(rel, f"cannot read: {exc.strerror or exc}")
                return
            try:
                after = path.stat()
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
) -> FolderBackupResult:
    """Back up ``root`` as one snapshot of its owner (a full enumeration).

    Raises SourceUnavailable if ``root`` is not a readable directory, and
    OwnerBusy if the same folder is being backed up by another process.
    """
    if not root.is_dir():
        raise SourceUnavailable(f"{root} is not a directory")
    try:
        os.listdir(root)
    except OSError as exc:
        raise SourceUnavailable(f"cannot read {root}: {exc.strerror}") from exc
    owner = owner or folder_owner(root)
    session = run.owner(owner, source={"type": "folder", "path": str(root.resolve())}, wait=wait)
    try:
        session.full_scope()
        walker = _FolderWalker(session, root, workers, progress)
        walker.run()
        snapshot = session.commit(
            stats={
                "items_skipped": len(walker.skipped),
                "changed_during_read": len(walker.changed),
            }
        )
    finally:
        session.close()
    return FolderBackupResult(snapshot, walker.skipped, walker.changed)
