"""Content is stored by a bounded number of threads at once, however many add items.

A tenant backup adds items from dozens of download threads; each item being
cut and compressed holds a chunker window and chunk copies, so the run's
memory is bounded only if their number is (BackupRun's ``store_slots``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from store import BackupRun, Owner
from tests.store.support.helpers import make_repo, read_all

OWNER = Owner("users", "ann", "ann@example.com")


def test_no_more_items_are_stored_at_once_than_the_run_has_slots(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    lock = threading.Lock()
    active = 0
    most = 0

    def content(index: int) -> Iterator[bytes]:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        try:
            for part in range(3):
                time.sleep(0.02)  # other threads get every chance to start theirs
                yield f"item {index} part {part}\n".encode() * 50
        finally:
            with lock:
                active -= 1

    with BackupRun(repo, store_slots=2) as run, run.owner(OWNER) as session:
        threads = [
            threading.Thread(target=session.add_item, args=(f"f{i}.txt", content(i)))
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        snapshot = session.commit()
    assert most == 2
    files = read_all(repo, snapshot)
    assert files["f5.txt"] == b"".join(f"item 5 part {p}\n".encode() * 50 for p in range(3))
    assert len(files) == 8
