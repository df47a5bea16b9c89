"""Merging index objects into the local blob index while others write them.

A worker runs several owners' backups in threads of one process, each opening
a run that merges the index objects written since it last looked; the other
threads keep writing (and merging) new ones meanwhile. A merge that mistook
such a new object for a deleted one cleared the cache and merged the whole
repository again, on every job (store/repository/repository.py, ``_sync_index``).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from store import Repository
from store.format.crypto import encode_payload
from store.format.index import PackRecord
from store.format.pack import PackBuilder
from store.ids import DATA
from store.names import INDEX, pack_name
from tests.store.support.ops_helpers import ALICE, BOB, PASSWORD, backup, make_repo, restore_all


def _new_pack(repo: Repository, seed: int) -> PackRecord:
    """One uploaded pack of one blob, not yet indexed (a backup about to index it)."""
    builder = PackBuilder(1, repo.keyring.current, repo.keyring.current_key)
    data = random.Random(seed).randbytes(4096)
    builder.add(DATA, repo.blob_writer().blob_id(data), len(data), encode_payload(data, 3))
    raw, entries = builder.finish()
    repo.backend.put(pack_name(builder.pack_id, 1), raw)
    return PackRecord(builder.pack_id, 1, repo.keyring.current, entries)


def _count_loads(repo: Repository) -> list[Any]:
    loaded: list[Any] = []
    real = repo.load_index

    def counting(index_id: Any) -> Any:
        loaded.append(index_id)
        return real(index_id)

    repo.load_index = counting  # type: ignore[method-assign]
    return loaded


def test_an_index_written_during_the_listing_does_not_clear_the_cache(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = backup(repo, ALICE, {"a": b"alice's mail " * 500})
    second = backup(repo, BOB, {"b": b"bob's mail " * 500})
    assert len(repo.list_index_ids()) >= 2
    repo.refresh_index()
    real_list = repo.backend.list
    written: list[Any] = []

    def listing_then_another_thread_indexes(prefix: str) -> Iterator[Any]:
        listed = list(real_list(prefix))
        if prefix == INDEX and not written:
            # Between this listing and whatever the merge reads next, another
            # thread of the process indexes the pack it just uploaded.
            written.append(repo.write_index([_new_pack(repo, 7)]))
        return iter(listed)

    repo.backend.list = listing_then_another_thread_indexes  # type: ignore[method-assign]
    loaded = _count_loads(repo)
    repo.refresh_index()
    assert written
    # Nothing was new to this merge: the object written meanwhile was merged by
    # its writer. Before the fix the merge cleared the cache and loaded every
    # index object of the repository again.
    assert loaded == []
    repo.backend.list = real_list  # type: ignore[method-assign]
    repo.refresh_index()
    assert loaded == []
    assert restore_all(repo, first) == {"a": b"alice's mail " * 500}
    assert restore_all(repo, second) == {"b": b"bob's mail " * 500}


def test_threads_syncing_at_once_merge_each_index_object_once(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    for n in range(3):
        backup(repo, ALICE, {f"f{n}": random.Random(n).randbytes(3000)})
    repo.refresh_index()
    # Index objects written by another process (its own cache): new to this one.
    other = Repository.open(repo.backend, PASSWORD, cache_root=tmp_path / "other")
    for n in range(6):
        other.write_index([_new_pack(other, 100 + n)])
    loaded = _count_loads(repo)
    start = threading.Barrier(8)

    def sync() -> None:
        start.wait()
        repo.refresh_index()

    threads = [threading.Thread(target=sync) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(loaded) == sorted(set(loaded))  # none merged twice
    assert len(loaded) == 6
