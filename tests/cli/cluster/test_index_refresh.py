"""A worker's blob index learns, while its jobs run, what another machine's worker
committed (cli/cluster/indexsync.py): two real repositories handles on one
repository, each with its own cache directory, as on two machines."""

from __future__ import annotations

import time
from pathlib import Path

from cli.cluster.indexsync import IndexRefresher
from store import LocalBackend, Repository
from tests.store.support.helpers import PASSWORD, make_repo

SHARED = b"an attachment two mailboxes hold " * 512


def _two_machines(tmp_path: Path) -> tuple[Repository, Repository]:
    first = make_repo(tmp_path / "repo", cache=tmp_path / "cache-1")
    second = Repository.open(
        LocalBackend(tmp_path / "repo", durable=False), PASSWORD, cache_root=tmp_path / "cache-2"
    )
    assert second.blob_index.count() == 0  # synced now: knows nothing yet
    return first, second


def _commit(repo: Repository, data: bytes) -> bytes:
    """Store ``data`` as a blob and write its index object (what a job's commit does)."""
    with repo.blob_writer() as writer:
        blob = writer.save_data(data)
    return bytes(blob)


def test_a_running_job_learns_blobs_committed_elsewhere_and_stores_them_once(
    tmp_path: Path,
) -> None:
    first, second = _two_machines(tmp_path)
    refresher = IndexRefresher(second, 0.2)
    try:
        with refresher.running():
            blob = _commit(first, SHARED)
            deadline = time.monotonic() + 20
            while not second.blob_index.contains(blob):
                assert time.monotonic() < deadline, "the index was not refreshed"
                time.sleep(0.05)
            with second.blob_writer() as writer:
                assert bytes(writer.save_data(SHARED)) == blob
            assert writer.stats.blobs_new == 0
            assert writer.stats.blobs_duplicate == 1
            # The blob it now references exists: it reads back from the other's pack.
            assert second.load_blob(blob) == SHARED
    finally:
        refresher.stop()
        first.close()
        second.close()


def test_no_listing_while_no_job_runs(tmp_path: Path) -> None:
    first, second = _two_machines(tmp_path)
    refresher = IndexRefresher(second, 0.1)
    try:
        blob = _commit(first, SHARED)
        time.sleep(1.0)  # ten periods, no job
        assert refresher.refreshes == 0
        assert not second.blob_index.contains(blob)
    finally:
        refresher.stop()
        first.close()
        second.close()
