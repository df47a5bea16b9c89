"""diff (skipping unchanged subtrees, pairing moves) and repository statistics."""

from __future__ import annotations

import random
from pathlib import Path

from store import TREE, BlobId, TreeReader, diff_trees, pair_moves, repository_stats
from tests.store.support.ops_helpers import ALICE, BOB, SITE, backup, make_repo


def test_diff_lists_added_removed_changed_and_moved(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    ids = {"inbox/1": "m1", "inbox/2": "m2"}
    old = backup(
        repo,
        ALICE,
        {"inbox/1": b"one", "inbox/2": b"two", "notes": b"n", "gone/x": b"x"},
        item_ids=ids,
    )
    new = backup(
        repo,
        ALICE,
        {"inbox/1": b"one!", "archive/2": b"two", "notes": b"n", "new": b"hello"},
        item_ids={"inbox/1": "m1", "archive/2": "m2"},
    )
    changes = pair_moves(list(diff_trees(repo.tree_reader, old.tree, new.tree)))
    seen = {(c.kind, c.path) for c in changes}
    assert ("changed", "inbox/1") in seen
    assert ("moved", "archive/2") in seen
    assert next(c for c in changes if c.kind == "moved").old_path == "inbox/2"
    assert ("added", "new") in seen
    assert ("added", "archive") in seen
    assert ("removed", "gone") in seen
    assert ("removed", "gone/x") in seen
    assert not any(c.path == "notes" for c in changes)


def test_diff_skips_unchanged_folders_without_reading_them(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    big = {f"big/f{i:04d}": f"{i}".encode() for i in range(3000)}
    old = backup(repo, ALICE, {**big, "small/a": b"1"})
    new = backup(repo, ALICE, {**big, "small/a": b"2"})
    loads: list[BlobId] = []

    def load(blob_id: BlobId) -> bytes:
        loads.append(blob_id)
        return repo.load_blob(blob_id, TREE)

    changes = list(diff_trees(TreeReader(load), old.tree, new.tree))
    assert [(c.kind, c.path) for c in changes] == [("changed", "small/a")]
    # Two roots and the two small/ pages: big/ (many pages) is never opened.
    assert len(loads) == 4


def test_stats(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    rng = random.Random(4)
    shared = rng.randbytes(30000)  # one attachment many mailboxes received
    backup(repo, ALICE, {"a": shared, "own": rng.randbytes(1000)})
    backup(repo, BOB, {"b": shared})
    backup(repo, ALICE, {"a": shared, "own": rng.randbytes(1000)})
    backup(repo, SITE, {"doc": b"compressible " * 2000})
    stats = repository_stats(repo)
    assert stats.snapshots == 4
    assert stats.logical_bytes == (30000 + 1000) * 2 + 30000 + 26000
    assert stats.latest_bytes == 31000 + 30000 + 26000
    assert stats.dedup_ratio is not None
    assert stats.dedup_ratio > 1.8  # the shared attachment is stored once
    assert stats.compression_ratio is not None
    assert stats.compression_ratio > 1.2  # the site's document compresses
    owners = {o.name: o for o in stats.owners}
    assert owners[ALICE.name].snapshots == 2
    assert owners[ALICE.name].latest_items == 2
    kinds = {k.kind: k for k in stats.kinds}
    assert kinds["users"].owners == 2
    assert kinds["sites"].owners == 1
    assert len(stats.runs) == 4
    # Bob's run added no data blob: only its tree pages.
    assert stats.runs[1].added.data_raw_bytes == 0
    assert stats.runs[0].added.data_raw_bytes == 31000
    assert stats.referenced.stored_bytes <= stats.indexed.stored_bytes
    json_form = stats.to_json()
    assert json_form["unreferenced_stored_bytes"] == 0
