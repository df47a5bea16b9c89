"""Where the local cache lives and how it is protected (FORMAT.md §10)."""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path

import lmdb

from store.errors import CacheUnusable

log = logging.getLogger(__name__)


def default_cache_root() -> Path:
    """``$COFFER_CACHE_DIR``, else ``$XDG_CACHE_HOME/coffer``, else ``~/.cache/coffer``."""
    explicit = os.environ.get("COFFER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "coffer"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 and make sure it stays 0700.

    Item names and subjects are in the cache, so no other user may read it.
    Raises CacheUnusable (naming the directory) when that cannot be done: a
    file in the way, no permission, a read-only file system.
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.stat().st_mode & 0o777 != 0o700:
            path.chmod(0o700)
    except OSError as exc:
        raise CacheUnusable(
            f"cannot use the cache directory {path}: {exc.strerror or exc} "
            "(choose another with --cache-dir or COFFER_CACHE_DIR)"
        ) from None
    return path


def open_lmdb(
    path: Path, *, map_size: int, max_dbs: int, durable: bool = False
) -> lmdb.Environment:
    """Open (creating) an LMDB environment in a private directory, files 0600.

    ``map_size`` is address space, not disk: LMDB grows the file as needed.

    ``durable`` makes every commit wait for the disk (LMDB's ``sync`` and
    ``metasync``): its data pages reach the disk before the meta page that
    names them, so an OS crash leaves a state that was committed, never a meta
    page pointing at pages that were not written (whose stale content, in the
    blob index, could claim a blob in a pack since deleted). Without it a
    crash may lose or tear the last commits; only caches that are checked
    against the repository before use may accept that.

    An environment whose file is shorter than its meta page says (a crash
    or a full disk truncated it), or that LMDB finds invalid, is deleted and
    created empty, to be rebuilt:
    LMDB maps the file, and reading a page beyond its end kills the process
    with SIGBUS rather than raising.
    """
    private_dir(path)
    damage: str | None = None
    try:
        env = _open(path, map_size, max_dbs, durable)
    except (lmdb.InvalidError, lmdb.CorruptedError, lmdb.VersionMismatchError) as exc:
        damage = f"is unreadable ({exc})"
    else:
        if _torn(env, path):
            env.close()
            damage = "is truncated"
    if damage is not None:
        log.warning("%s: LMDB file %s (crash?); rebuilding this cache", path, damage)
        for name in ("data.mdb", "lock.mdb"):
            (path / name).unlink(missing_ok=True)
        env = _open(path, map_size, max_dbs, durable)
    for name in os.listdir(path):
        file = path / name
        if file.stat().st_mode & 0o777 != 0o600:
            file.chmod(0o600)
    return env


def _open(path: Path, map_size: int, max_dbs: int, durable: bool) -> lmdb.Environment:
    old_umask = os.umask(0o077)
    try:
        return lmdb.open(
            # Bytes, not str: py-lmdb encodes a str path as strict UTF-8, so a
            # directory whose name is not UTF-8 (COFFER_CACHE_DIR from a
            # non-UTF-8 locale) raised UnicodeEncodeError; the OS takes bytes.
            os.fsencode(path),
            map_size=map_size,
            max_dbs=max_dbs,
            subdir=True,
            lock=True,
            readahead=False,
            sync=durable,
            metasync=durable,
            max_readers=256,
        )
    finally:
        os.umask(old_umask)


# The step of prefetch_file's hints. Linux reads at most the device's
# readahead window (max of read_ahead_kb and max_sectors_kb, 128 KiB by
# default on many disks) per POSIX_FADV_WILLNEED call, whatever length it is
# given (mm/readahead.c, force_page_cache_ra): one hint over a 47 MB
# catalogue left nearly all of it unread, and the walk that followed faulted
# it in page by page at cold speed (docs/performance.md, "Reading the caches
# ahead, really").
ADVISE_STEP = 128 * 1024


def prefetch_file(path: Path, *, limit: int | None = None) -> bool:
    """Start reading ``path`` into the page cache (``POSIX_FADV_WILLNEED``);
    True if asked. Not if it is larger than ``limit`` bytes.

    LMDB maps its files with readahead off (``readahead=False`` above: a
    lookup must not read pages around it), so after a cold start every page
    a run touches is a random read of its own. A run about to touch most of
    a file reads it faster as one sequential read. The hints go one
    ADVISE_STEP at a time, from a daemon thread: each call may wait for a
    free slot in the disk's request queue, and the caller must not. Only
    starts the reads; a file system that ignores the hint, or a missing
    file, changes nothing. Thread-safe.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        size = os.fstat(fd).st_size
    except OSError:
        os.close(fd)
        return False
    if limit is not None and size > limit:
        os.close(fd)
        return False
    threading.Thread(
        target=_advise_whole, args=(fd, size), name="coffer-prefetch", daemon=True
    ).start()
    return True


def _advise_whole(fd: int, size: int) -> None:
    """Hint ``fd``'s first ``size`` bytes a step at a time, then close it."""
    try:
        for offset in range(0, size, ADVISE_STEP):
            os.posix_fadvise(fd, offset, ADVISE_STEP, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass  # a hint: a file system that refuses it is read on demand
    finally:
        os.close(fd)


def _torn(env: lmdb.Environment, path: Path) -> bool:
    """Whether the data file ends before the last page the meta page names.

    Reads only the meta page (already read by ``lmdb.open``) and the file's
    size: nothing beyond the end of the file is touched.
    """
    needed = (int(env.info()["last_pgno"]) + 1) * int(env.stat()["psize"])
    return (path / "data.mdb").stat().st_size < needed


_MADV_DONTNEED = 4
_libc: ctypes.CDLL | None = None


def _madvise_dontneed(start: int, length: int) -> None:
    global _libc  # noqa: PLW0603 - loaded once, on first use
    if _libc is None:
        # The symbols already loaded (dlopen(NULL)): find_library runs ldconfig.
        _libc = ctypes.CDLL(None, use_errno=True)
    _libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), _MADV_DONTNEED)


class MappedPages:
    """Lets go of the pages of an LMDB file mapped into this process.

    LMDB reads through a shared, read-only mapping of its file: every page a
    large merge, rebuild or run of random lookups touches stays mapped and
    counts as this process's resident memory, although the kernel could drop
    it. Every ``every`` ticks this tells the kernel we no longer need the
    mapped pages (madvise MADV_DONTNEED on the file's mapping, found once in
    /proc/self/maps: LMDB maps its whole map size once, so the range does not
    move); they are read again from the page cache if touched. Safe for
    read-only shared mappings; a no-op where /proc is unavailable. Thread-safe.
    """

    def __init__(self, data_file: Path, every: int = 256) -> None:
        self._path = str(data_file)
        self._every = every
        self._count = 0
        self._lock = threading.Lock()
        self._ranges: list[tuple[int, int]] | None = None

    def tick(self, count: int = 1) -> None:
        with self._lock:
            self._count += count
            if self._count < self._every:
                return
            self._count = 0
        self.release()

    def _find(self) -> list[tuple[int, int]]:
        if self._ranges is None:
            # Bytes: a cache directory whose name is not UTF-8 (COFFER_CACHE_DIR
            # from a non-UTF-8 locale) is listed as such in the maps file, and a
            # text read of it raised UnicodeDecodeError.
            path = os.fsencode(self._path)
            try:
                with open("/proc/self/maps", "rb") as maps:
                    spans = [
                        line.split(maxsplit=1)[0] for line in maps if line.rstrip().endswith(path)
                    ]
            except OSError:
                spans = []
            self._ranges = [
                (int(a, 16), int(b, 16)) for a, b in (span.split(b"-") for span in spans)
            ]
        return self._ranges

    def release(self) -> None:
        for start, end in self._find():
            _madvise_dontneed(start, end - start)
