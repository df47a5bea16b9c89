"""Letting go of an LMDB file's mapped pages.

When the cache's path is not UTF-8:

``COFFER_CACHE_DIR`` from a non-UTF-8 locale names a directory whose bytes are
not UTF-8; /proc/self/maps lists the mapping under those bytes. Reading the
maps file as text raised UnicodeDecodeError (``coffer repair index`` ended in
"unexpected error"); it is read as bytes.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from store.cache.blobindex import BlobIndex
from store.cache.cachedir import MappedPages
from store.format.index import PackRecord
from store.format.pack import BlobEntry
from store.ids import DATA, PACK_DATA, BlobId, IndexId, PackId


def test_the_mapping_of_a_cache_under_a_non_utf8_name_is_found(tmp_path: Path) -> None:
    root = Path(os.fsdecode(os.fsencode(tmp_path) + b"/cache-\xff\xfe"))
    root.mkdir()
    index = BlobIndex(root / "blobs")
    try:
        index.pages.release()  # raised UnicodeDecodeError
        assert index.pages._find(), "the data file's mapping was not found"
    finally:
        index.close()


def _mapped_kib(data_file: Path) -> int:
    """Resident KiB of this process's mapping of ``data_file`` (smaps)."""
    name = os.fsencode(data_file)
    total, inside = 0, False
    with open("/proc/self/smaps", "rb") as smaps:
        for line in smaps:
            if b"-" in line.split(b" ", 1)[0] and not line.startswith(b"Rss"):
                inside = line.rstrip().endswith(name)
            elif inside and line.startswith(b"Rss:"):
                total += int(line.split()[1])
    return total


def _index_of(path: Path, count: int) -> tuple[BlobIndex, list[bytes]]:
    index = BlobIndex(path)
    rng = random.Random(5)
    ids = [rng.randbytes(32) for _ in range(count)]
    packs = [
        PackRecord(
            PackId(rng.randbytes(32)),
            PACK_DATA,
            0,
            [BlobEntry(DATA, BlobId(b), i * 64, 64, 45) for i, b in enumerate(ids[n : n + 1000])],
        )
        for n in range(0, len(ids), 1000)
    ]
    index.add_index(IndexId(rng.randbytes(32)), packs)
    rng.shuffle(ids)
    return index, ids


def _peak_while_looking_up(index: BlobIndex, ids: list[bytes], data_file: Path) -> int:
    index.pages.release()
    peak = 0
    for start in range(0, len(ids), 500):
        assert all(index.lookup_many(ids[start : start + 500]))
        peak = max(peak, _mapped_kib(data_file))
    return peak


def test_batched_lookups_let_go_of_the_index_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore looks blobs up in batches of up to 4,096; the index pages
    they touch are released as they are counted, slice by slice, so the
    mapping's resident size stays a fraction of the file (it grew to the
    whole file: 170 MB in the million-item restore). Scaled down: 200,000
    blobs (an 18 MB file, counted as large) released every 16 lookups
    instead of a 170 MB file every 256."""
    index, ids = _index_of(tmp_path / "blobs", 200_000)
    data_file = tmp_path / "blobs" / "data.mdb"
    try:
        monkeypatch.setattr(BlobIndex, "LOOKUP_SLICE", 16)
        monkeypatch.setattr(BlobIndex, "SMALL_INDEX", 0)
        index.pages = MappedPages(data_file, every=16)
        file_kib = data_file.stat().st_size // 1024
        assert file_kib > 12 * 1024
        peak = _peak_while_looking_up(index, ids[:50_000], data_file)
        assert peak < file_kib // 3, (peak, file_kib)
    finally:
        index.close()
