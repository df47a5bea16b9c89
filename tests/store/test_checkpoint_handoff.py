"""A checkpoint never names a blob that no index holds, even while another thread is
handing a pack off to the upload threads.

The blob writer is shared by every owner and download worker of a run, and so are its
open packs: the thread whose save fills a pack, or whose flush (another owner's
checkpoint) takes the open packs, hands them to upload threads, waiting for a free
upload slot when the backend is slow (on a loaded machine, often). Those packs hold
other threads' blobs. A checkpoint's flush that saw neither the open pack (taken) nor
its upload (not yet started) wrote the snapshot at once,
naming blobs still in the held pack; a ``kill -9`` at that moment left a checkpoint
whose blobs are in no index, and the resumed backup failed the owner ("blob ... is not
in any index", exit 3): ``test_crash_campaign.py`` seed 11 under load (a tree pack
with a checkpoint's pages), and seed 111 of a longer campaign (a flush holding the
pack with a checkpoint's sync state).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from store import DATA, BackupRun, LocalBackend, Owner, Repository
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


def _large_save(writer: BlobWriter) -> None:
    """Another thread's large attachment fills the open pack and closes it."""
    writer.save(DATA, os.urandom(PACK))


def _other_owners_flush(writer: BlobWriter) -> None:
    """Another owner's checkpoint takes every open pack for its own flush."""
    writer.flush()


@pytest.mark.parametrize("closes", [_large_save, _other_owners_flush], ids=lambda f: f.__name__)
def test_a_checkpoint_waits_for_the_hand_off_of_a_pack_holding_its_blobs(
    tmp_path: Path, closes: Callable[[BlobWriter], None]
) -> None:
    root = tmp_path / "repo"
    repo = make_repo(root, pack_size=PACK)
    writer = HeldHandOff(repo)
    run = BackupRun(repo, checkpoint_seconds=3600, writer=writer)
    session = run.owner(OWNER)
    # The owner's message is queued in the open data pack, which another thread
    # closes; that thread's hand-off of the pack to an upload waits.
    session.add_item("inbox/1.eml", b"the owner's own message", version="v1")
    done: list[bool] = []

    def close_it() -> None:
        closes(writer)
        done.append(True)

    closer = threading.Thread(target=close_it, name=CLOSER)
    closer.start()
    try:
        assert writer.holding.wait(timeout=60), "the pack was not closed"
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
    assert done, "the other thread did not finish"
    after = _as_another_process_sees_it(root, tmp_path / "cache-after")
    assert list(after.values()) == [{"inbox/1.eml": b"the owner's own message"}]
    session.close()
    run.abort()
    repo.close()
