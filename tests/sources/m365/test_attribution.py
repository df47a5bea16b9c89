"""New repository bytes credited to the service that stored them (backup/writer.py).

Each new data blob is credited once, to the first service that saves it; a
blob already in flight or in the index is credited to nobody. The writer
keeps no per-blob record of its own, so its memory does not grow with the run.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

from sources.m365.backup import writer as writer_module
from sources.m365.backup.report import ServiceReport
from sources.m365.backup.writer import AttributingWriter, attributed_to
from store import DATA, TREE
from tests.store.support.helpers import make_repo


def test_a_new_blob_is_credited_once_to_the_service_that_stored_it_first(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    writer = AttributingWriter(repo)
    mail, drive = ServiceReport("mail"), ServiceReport("onedrive")
    shared, own = os.urandom(5000), os.urandom(7000)
    with attributed_to(mail):
        writer.save(DATA, shared)
        writer.save(TREE, os.urandom(300))  # trees are not content
    with attributed_to(drive):
        writer.save(DATA, shared)  # in flight: not new
        writer.save(DATA, own)
    writer.flush()
    with attributed_to(drive):
        writer.save(DATA, shared)  # in the index now: not new either
    writer.close()
    assert mail.bytes_added == len(shared)
    assert drive.bytes_added == len(own)


def test_the_writer_keeps_no_record_per_blob(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    writer = AttributingWriter(repo)
    report = ServiceReport("mail")
    blobs = [os.urandom(64) for _ in range(20_000)]
    only_writer = [tracemalloc.Filter(True, writer_module.__file__)]
    tracemalloc.start()
    try:
        with attributed_to(report):
            for blob in blobs:
                writer.save(DATA, blob)
        held = tracemalloc.take_snapshot().filter_traces(only_writer)
    finally:
        tracemalloc.stop()
        writer.close()
    assert report.bytes_added == 64 * 20_000
    assert sum(stat.size for stat in held.statistics("filename")) < 64 * 1024
