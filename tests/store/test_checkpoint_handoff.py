"""A checkpoint never names a blob that no index holds, even while another thread is
handing a pack off to the upload threads.

The blob writer is shared by every owner and download worker of a run, and so are its
open packs: the thread whose save fills a pack closes it and hands it to an upload
thread, waiting for a free upload slot when the backend is slow (on a loaded machine,
often). That pack holds other threads' blobs. A checkpoint's flush that saw neither
the open pack (closed) nor its upload (not yet registered) wrote the snapshot at once,
naming blobs still in the held pack; a ``kill -9`` at that moment left a checkpoint
whose blobs are in no index, and the resumed backup failed the owner ("blob ... is not
in any index", exit 3): ``test_crash_campaign.py`` seed 11 under load.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from store import DATA, BackupRun, BlobId, LocalBackend, Owner, Repository
from store.format.pack import PackBuilder
from store.repository.blobwriter import BlobWriter
from store.repository.ports import PackSink
from tests.store.support.helpers import PASSWORD, make_repo, read_all

OWNER = Owner("users", "ann", "ann@example.com")
PACK = 1 << 20
CLOSER = "closer"


class HeldHandOff(BlobWriter):
    """The real writer with one pause: a pack closed by the thread named ``closer``
    waits at its hand-off to the upload threads until :attr:`release` is set (where
    such a thread stands while every upload slot is busy)."""

    def __init__(self, repo: PackSink) -> None:
        super().__init__(repo)
        self.holding = threading.Event()
        self.release = threading.Event()

    def _start_upload(self, builder: PackBuilder) -> None:
        if threading.current_thread().name == CLOSER:
            self.holding.set()
            self.release.wait(timeout=120)
        super()._start_upload(builder)


def _as_another_process_sees_it(root: Path, cache: Path) -> dict[str, dict[str, bytes]]:
    """Every snapshot of the repository read through a fresh cache, as the run after a
    crash at this moment reads it (raises BlobMissing for a blob no index holds)."""
    other = Repository.open(LocalBackend(root, durable=False), PASSWORD, cache_root=cache)
    try:
        return {s.id_hex: read_all(other, s) for s in other.list_snapshots()}
    finally:
        other.close()


def test_a_checkpoint_waits_for_the_hand_off_of_a_pack_holding_its_blobs(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    repo = make_repo(root, pack_size=PACK)
    writer = HeldHandOff(repo)
    run = BackupRun(repo, checkpoint_seconds=3600, writer=writer)
    session = run.owner(OWNER)
    # The owner's message is queued in the open data pack ...
    session.add_item("inbox/1.eml", b"the owner's own message", version="v1")
    # ... which another thread's large attachment fills and closes: its hand-off waits.
    closed: list[BlobId] = []
    closer = threading.Thread(
        target=lambda: closed.append(writer.save(DATA, os.urandom(PACK))), name=CLOSER
    )
    closer.start()
    try:
        assert writer.holding.wait(timeout=60), "the large blob did not close the pack"
        taken: list[object] = []
        checkpoint = threading.Thread(target=lambda: taken.append(session.checkpoint()))
        checkpoint.start()
        checkpoint.join(timeout=5)
        # A kill -9 now: whatever snapshot exists must be readable by the next run.
        # (Before the fix the checkpoint was written by now, naming inbox/1.eml's blob.)
        at_crash = _as_another_process_sees_it(root, tmp_path / "cache-at-crash")
        assert all(
            files == {"inbox/1.eml": b"the owner's own message"} for files in at_crash.values()
        )
    finally:
        writer.release.set()
        closer.join(timeout=60)
    checkpoint.join(timeout=60)
    assert taken, "the checkpoint did not complete"
    assert closed, "the large blob was not saved"
    after = _as_another_process_sees_it(root, tmp_path / "cache-after")
    assert list(after.values()) == [{"inbox/1.eml": b"the owner's own message"}]
    session.close()
    run.abort()
    repo.close()
