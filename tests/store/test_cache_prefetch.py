"""Reading the caches ahead before a folder walk (issue 14): after a cold
start the catalogue and blob index are in the page cache before the walk
faults them in page by page. Residency is read with mincore(2) on a real file."""

from __future__ import annotations

import ctypes
import mmap
import os
import time
from pathlib import Path

from store import BackupRun
from store.cache.cachedir import prefetch_file
from store.repository.blobread import read_blobs
from tests.store.support.helpers import OWNER, make_repo, snapshot_of

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def _resident(path: Path) -> float:
    """The share of ``path``'s pages in the page cache (mincore never reads)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    finally:
        os.close(fd)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    try:
        assert _libc.mincore(addr, size, vec) == 0
    finally:
        _libc.munmap(addr, size)
    return sum(v & 1 for v in vec) / pages


def _evict(path: Path) -> None:
    os.sync()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    assert _resident(path) < 0.1


def _until_resident(path: Path) -> float:
    deadline = time.monotonic() + 10
    while (share := _resident(path)) < 0.9 and time.monotonic() < deadline:
        time.sleep(0.05)
    return share


def test_prefetch_file_reads_the_file_ahead_within_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(os.urandom(4 << 20))
    _evict(path)
    assert not prefetch_file(path, limit=1 << 20)  # larger than the limit: left alone
    time.sleep(0.3)
    assert _resident(path) < 0.1
    assert prefetch_file(path, limit=8 << 20)
    assert _until_resident(path) >= 0.9
    assert not prefetch_file(tmp_path / "missing")


def test_prefetch_file_reads_all_of_a_file_larger_than_the_readahead_window(
    tmp_path: Path,
) -> None:
    """Linux reads one readahead window per hint (8 MiB on this VM, 128 KiB
    on many disks): a 64 MiB file hinted in one call stayed mostly unread."""
    path = tmp_path / "catalogue"
    with open(path, "wb") as handle:
        for _ in range(64):
            handle.write(os.urandom(1 << 20))
    _evict(path)
    assert prefetch_file(path)
    assert _until_resident(path) >= 0.9


def test_a_session_reads_catalogue_and_blob_index_ahead(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", small=True)
    snapshot_of(repo, {f"d/{i}": os.urandom(3000) for i in range(300)})
    with BackupRun(repo) as run, run.owner(OWNER) as session:
        catalogue = Path(os.fsdecode(session.store.env.path())) / "data.mdb"
        index = repo.cache_dir / "blobs" / "data.mdb"
        # Unmap what LMDB has touched in this process, then drop the files.
        session.store.pages.release()
        repo.blob_index.pages.release()
        for path in (catalogue, index):
            _evict(path)
        session.prefetch()
        assert _until_resident(catalogue) >= 0.9
        assert _until_resident(index) >= 0.9


def test_reads_in_one_thread_ask_the_kernel_for_every_range_first(tmp_path: Path) -> None:
    """A restore from a local repository reads its ranges one after the other
    (store/repository/blobread.py, ``workers=0``); it first hints them all
    (``LocalBackend.will_need``), so the disk reads them while the first are
    decoded: once the first blob is handed over, the packs are in the page
    cache though only their first range has been read."""
    repo = make_repo(tmp_path / "repo", small=True)
    snapshot = snapshot_of(repo, {f"d/{i}": os.urandom(40_000) for i in range(200)})
    blob_ids = [
        chunk for _path, e in repo.reader(snapshot).walk() if e.is_file for chunk, _ in e.chunks
    ]
    packs = [p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in packs) > 6 << 20
    for pack in packs:
        _evict(pack)
    blobs = read_blobs(repo, blob_ids, workers=0, payloads=False, max_range=64 * 1024)
    next(blobs)  # every range asked for, the first one read
    resident = [_until_resident(pack) for pack in packs]
    assert sum(1 for _ in blobs) == len(set(blob_ids)) - 1  # the rest, as usual
    assert min(resident) >= 0.9
