"""Restoring a folder snapshot reads packs in bulk, not one request per chunk."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sources.localdir import content as content_module
from sources.localdir import prefetch, restore, restore_to_dir
from store import BlobId, LocalBackend, Repository
from store.ids import DATA
from tests.cli.support.helpers import helpers_of
from tests.store.support.helpers import PASSWORD, make_repo, snapshot_of
from tests.store.test_blobread import CountingBackend, files


def test_restore_reads_in_bulk_and_large_files_read_ahead(tmp_path: Path) -> None:
    content = files(3, count=400)
    content["big/a.bin"] = random.Random(4).randbytes(300_000)  # many small chunks
    repo = make_repo(tmp_path / "repo", small=True)
    snapshot = snapshot_of(repo, content)
    chunks = sum(len(e.chunks) for _, e in repo.reader(snapshot).walk() if e.is_file)
    repo.close()
    counting = CountingBackend(LocalBackend(tmp_path / "repo", durable=False))
    with Repository.open(counting, PASSWORD, cache_root=tmp_path / "repo-cache") as again:
        counting.gets = 0
        result = restore_to_dir(again.reader(snapshot), tmp_path / "out")
        assert result.created == len(content)
        assert counting.gets < chunks / 20
    restored = {
        str(p.relative_to(tmp_path / "out")): p.read_bytes()
        for p in (tmp_path / "out").rglob("*")
        if p.is_file()
    }
    assert restored == content


def _restored(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


_RESTORE_THREADS = ("coffer-restore", "coffer-prefetch", "coffer-read")


def _threads_during(restore: Callable[[Callable[[str, int], None]], object]) -> set[str]:
    """Names of the restore's own threads seen while it reported progress
    (not threads other tests of this process left running)."""
    before = set(threading.enumerate())
    seen: set[str] = set()

    def progress(_rel: str, _size: int) -> None:
        seen.update(
            t.name
            for t in threading.enumerate()
            if t not in before and t.name.startswith(_RESTORE_THREADS)
        )

    restore(progress)
    return {name.rstrip("_0123456789") for name in seen}


def test_a_restore_from_a_local_repository_runs_in_one_thread(tmp_path: Path) -> None:
    """From a local directory reads are system calls: loading, decoding and
    writing all run in the calling thread (docs/performance.md, "Restore in
    one thread"); from any other backend, in threads. Same files either way."""
    content = files(5, count=300)
    content["big/a.bin"] = random.Random(6).randbytes(300_000)  # read ahead by windows
    repo = make_repo(tmp_path / "repo", small=True)
    snapshot = snapshot_of(repo, content)
    local = _threads_during(
        lambda progress: restore_to_dir(repo.reader(snapshot), tmp_path / "one", progress=progress)
    )
    assert local == set()
    assert _restored(tmp_path / "one") == content
    repo.close()
    remote = CountingBackend(LocalBackend(tmp_path / "repo", durable=False))  # not local
    with Repository.open(remote, PASSWORD, cache_root=tmp_path / "repo-cache") as again:
        threaded = _threads_during(
            lambda progress: restore_to_dir(
                again.reader(snapshot), tmp_path / "threads", progress=progress
            )
        )
    assert threaded >= {"coffer-restore", "coffer-prefetch"}
    assert _restored(tmp_path / "threads") == content


def _large_then_small(seed: int) -> dict[str, bytes]:
    """Large files first in the walk (``a/``, written by the restore's
    threads), then many small ones, some of them the same as an earlier one
    (chunks shared between batches), and large ones among them."""
    rng = random.Random(seed)
    content = {f"a/large-{i}.bin": rng.randbytes(1 << 20) for i in range(8)}
    shared = [rng.randbytes(rng.randrange(2000, 6000)) for _ in range(8)]
    for i in range(800):
        data = shared[i % 8] if i % 5 == 0 else rng.randbytes(rng.randrange(2000, 6000))
        content[f"m/d{i % 4}/{i:04d}.eml"] = data
        if i % 200 == 100:  # written by the writer process (it runs by then)
            content[f"m/d{i % 4}/large-{i}.bin"] = rng.randbytes(3 << 20)
    return content


def test_an_object_store_restore_fetches_no_chunk_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From an object store every chunk comes in a bulk read: none is
    evicted from the restore's cache before it is written (and fetched
    again alone). The sizes are scaled down 16 times (a 2 MiB cache, 512 KiB
    batches, 256 KiB windows), so that large files written by the threads
    beside batches of small files would overflow it: it holds only while a
    large file's windows once written go first (ChunkCache.demote), one
    large file is written at a time (_Writers.LARGE_AT_ONCE) and a chunk a
    batch shares with an earlier one is kept as recently used."""
    monkeypatch.setattr(prefetch, "BATCH_BYTES", 512 * 1024)
    monkeypatch.setattr(prefetch, "LARGE", 256 * 1024)
    monkeypatch.setattr(restore, "LARGE", 256 * 1024)
    monkeypatch.setattr(restore, "CACHE_BYTES", 2 * 1024 * 1024)
    monkeypatch.setattr(content_module, "WINDOW", 256 * 1024)
    content = _large_then_small(7)
    repo = make_repo(tmp_path / "repo", small=True)
    snapshot = snapshot_of(repo, content)
    repo.close()
    counting = CountingBackend(LocalBackend(tmp_path / "repo", durable=False))  # not local
    with Repository.open(counting, PASSWORD, cache_root=tmp_path / "repo-cache") as again:
        singles: list[BlobId] = []  # chunks loaded on their own
        load_blob = again.load_blob

        def counted(blob_id: BlobId, expected_type: int | None = None) -> bytes:
            if expected_type == DATA:
                singles.append(blob_id)
            return load_blob(blob_id, expected_type)

        monkeypatch.setattr(again, "load_blob", counted)
        result = restore_to_dir(again.reader(snapshot), tmp_path / "out")
    assert result.failures == []
    assert singles == []
    assert _restored(tmp_path / "out") == content


def test_an_object_store_restore_writes_through_the_writer_process(tmp_path: Path) -> None:
    """From an object store too, the files of folders the restore creates go
    to the writer process (the threads passing the GIL back and forth cost
    more than the writes). The large file, among the first files (before
    the writer starts), is written by the threads and comes out whole too."""
    content = files(9, count=restore._Offload.START_AFTER + 300)
    content["big/a.bin"] = random.Random(10).randbytes(prefetch.LARGE + 300_000)
    repo = make_repo(tmp_path / "repo", small=True)
    snapshot = snapshot_of(repo, content)
    repo.close()
    writers: set[int] = set()

    def progress(_rel: str, _size: int) -> None:
        writers.update(helpers_of(os.getpid(), "sources.localdir.writer"))

    remote = CountingBackend(LocalBackend(tmp_path / "repo", durable=False))  # not local
    with Repository.open(remote, PASSWORD, cache_root=tmp_path / "repo-cache") as again:
        result = restore_to_dir(again.reader(snapshot), tmp_path / "out", progress=progress)
    assert result.failures == []
    assert writers
    assert _restored(tmp_path / "out") == content
