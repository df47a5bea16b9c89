"""Merging an index object into the local blob index (store/cache/blobindex.py).

A mount, restore or backup with a cold cache merges every index object of the
repository first; in the order the blobs arrive (random IDs) every insert
dirtied a page of its own and every durable commit wrote and synced them all.
"""

from __future__ import annotations

import random
from pathlib import Path

from store.cache.blobindex import BlobIndex
from store.format.index import PackRecord
from store.format.pack import BlobEntry
from store.ids import DATA, IndexId, PackId


def written_bytes() -> int:
    """Bytes this thread has passed to write calls so far (LMDB writes in the
    committing thread), from /proc."""
    for line in Path("/proc/thread-self/io").read_text().splitlines():
        name, _, value = line.partition(": ")
        if name == "wchar":
            return int(value)
    raise AssertionError("no wchar in /proc/thread-self/io")


def random_packs(rng: random.Random, blobs: int, per_pack: int = 1000) -> list[PackRecord]:
    packs = []
    for _ in range(blobs // per_pack):
        record = PackRecord(PackId(rng.randbytes(32)), 1, 0)
        for number in range(per_pack):
            record.entries.append(BlobEntry(DATA, rng.randbytes(32), number * 100, 100, 80))
        packs.append(record)
    return packs


def test_merging_writes_about_the_size_of_the_index(tmp_path: Path) -> None:
    rng = random.Random(7)
    packs = random_packs(rng, 30_000)
    index = BlobIndex(tmp_path / "blobs")
    before = written_bytes()
    index.add_index(IndexId(rng.randbytes(32)), packs)
    written = written_bytes() - before
    index.close()
    # What the entries themselves take: a 32-byte key and a 49-byte location.
    payload = 30_000 * (32 + 49)
    # In arrival order: 7.8 times that (every commit rewrote a page per entry,
    # and the split pages left the file three times as large).
    assert written < 3 * payload, (written, payload)
    reopened = BlobIndex(tmp_path / "blobs")
    for record in rng.sample(packs, 5):
        for entry in rng.sample(record.entries, 20):
            found = reopened.lookup(entry.blob_id)
            assert found is not None
            assert (found.pack_id, found.offset) == (record.pack_id, entry.offset)
    assert reopened.count() == 30_000
    reopened.close()


def test_a_later_copy_of_a_blob_in_one_index_object_still_wins(tmp_path: Path) -> None:
    rng = random.Random(8)
    packs = random_packs(rng, 5_000)
    twice = packs[0].entries[10]
    later = PackRecord(
        PackId(rng.randbytes(32)), 1, 0, [BlobEntry(DATA, twice.blob_id, 4242, 100, 80)]
    )
    index = BlobIndex(tmp_path / "blobs")
    index.add_index(IndexId(rng.randbytes(32)), [*packs, later])
    found = index.lookup(twice.blob_id)
    assert found is not None
    assert (found.pack_id, found.offset) == (later.pack_id, 4242)
    index.close()
