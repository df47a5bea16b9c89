"""Restoring a folder snapshot reads packs in bulk, not one request per chunk."""

from __future__ import annotations

import random
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
