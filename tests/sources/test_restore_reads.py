"""Restoring a folder snapshot reads packs in bulk, not one request per chunk."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

from sources.localdir import restore_to_dir
from store import LocalBackend, Repository
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
