"""How restore writes a file's content: holes for zero runs, windows read ahead,
and a hostile repository refused as before (sources/localdir/content.py)."""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sources.localdir import restore_to_dir
from sources.localdir.content import ZERO_BLOCK, data_ranges
from sources.localdir.prefetch import (
    CACHE_BYTES,
    LARGE,
    SERIAL_CACHE_BYTES,
    Prefetcher,
    batched,
)
from store import DATA, BlobId, LocalBackend, Repository, Snapshot
from store.format.crypto import encode_payload, keyed_hash
from store.format.tree import Entry, leaf_page
from tests.store.support.helpers import PASSWORD, make_repo, snapshot_of

MIB = 1024 * 1024


def _rebuilt(data: bytes) -> bytes:
    """What a file holds after writing only ``data_ranges(data)`` (zeros elsewhere)."""
    out = bytearray(len(data))
    for low, high in data_ranges(data):
        out[low:high] = data[low:high]
    return bytes(out)


_PARTS = st.lists(
    st.one_of(
        st.integers(1, 3 * ZERO_BLOCK).map(bytes),  # a zero run
        st.binary(min_size=1, max_size=2 * ZERO_BLOCK),  # bytes, zeros among them
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(_PARTS)
def test_data_ranges_keep_every_nonzero_byte(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert _rebuilt(data) == data
    ranges = data_ranges(data)
    assert ranges == sorted(ranges)
    assert all(0 <= low < high <= len(data) for low, high in ranges)


def test_zero_blocks_are_left_out_and_a_plain_chunk_is_one_range() -> None:
    text = b"x" * (3 * ZERO_BLOCK)
    assert data_ranges(text) == [(0, len(text))]
    assert data_ranges(bytes(5 * ZERO_BLOCK + 17)) == []
    sparse = bytes(2 * ZERO_BLOCK) + b"data" + bytes(3 * ZERO_BLOCK)
    assert data_ranges(sparse) == [(2 * ZERO_BLOCK, 3 * ZERO_BLOCK)]
    # A short zero run inside text is text: written as it is.
    assert data_ranges(b"a" + bytes(1000) + b"b") == [(0, 1002)]


def _sparse_image(rng: random.Random, size: int) -> bytes:
    image = bytearray(size)
    for start in range(3 * MIB + 4321, size - MIB, 7 * MIB):
        image[start : start + 300_000] = rng.randbytes(300_000)
    return bytes(image)


def test_sparse_and_large_files_are_exact_with_holes(tmp_path: Path) -> None:
    rng = random.Random(14)
    content = {
        "vm/disk.img": _sparse_image(rng, 40 * MIB),  # many windows, trailing hole
        "zeros.bin": bytes(5 * MIB),  # nothing but a hole
        "big.bin": rng.randbytes(20 * MIB),  # several windows of data
        "text-with-zeros.txt": b"a" * 5000 + bytes(200_000) + b"b" * 5000,
        "small.txt": b"hello\n",
        "empty": b"",
    }
    repo = make_repo(tmp_path / "repo")
    snapshot = snapshot_of(repo, content)
    result = restore_to_dir(repo.reader(snapshot), tmp_path / "out")
    repo.close()
    assert result.failures == []
    assert result.created == len(content)
    assert result.bytes_written == sum(len(c) for c in content.values())
    out = tmp_path / "out"
    for path, data in content.items():
        assert (out / path).read_bytes() == data, path
    image = (out / "vm/disk.img").stat()
    assert image.st_size == 40 * MIB
    assert image.st_blocks * 512 < 12 * MIB  # 1.5 MiB of data, not 40
    assert (out / "zeros.bin").stat().st_blocks * 512 < 64 * 1024
    assert (out / "big.bin").stat().st_blocks * 512 >= 20 * MIB


def _forged_snapshot(
    repo: Repository, honest: bytes, forged: bytes, before: list[bytes]
) -> Snapshot:
    """A snapshot whose file ``f`` names the blob ID of ``honest`` but whose
    stored blob under that ID holds ``forged`` (what a key holder could plant),
    after the chunks ``before`` (stored honestly)."""
    with repo.blob_writer() as writer:
        chunks = [(writer.save_data(part), len(part)) for part in before]
        forged_id = BlobId(keyed_hash(repo.keyring.blob_id_key, honest))
        writer.save_encoded(DATA, forged_id, len(forged), encode_payload(forged, 3))
    chunks.append((forged_id, len(forged)))
    size = sum(length for _, length in chunks)
    good = snapshot_of(repo, {"ok.txt": b"fine\n"})
    entries = [
        Entry(name=b"f", type="f", mode=0o644, size=size, chunks=tuple(chunks)).encode(),
        repo.reader(good).stat("ok.txt").encode(),
    ]
    with repo.blob_writer() as writer:
        tree = writer.save_tree(leaf_page(entries))
    return repo.save_snapshot(dataclasses.replace(good, tree=tree, snapshot_id=None))


def test_a_chunk_that_decrypts_to_other_bytes_fails_its_file_only(tmp_path: Path) -> None:
    rng = random.Random(3)
    for before in ([], [rng.randbytes(2 * MIB) for _ in range(6)]):  # small, then windowed
        repo = make_repo(tmp_path / f"repo-{len(before)}")
        honest, forged = rng.randbytes(100_000), rng.randbytes(100_000)
        snapshot = _forged_snapshot(repo, honest, forged, before)
        out = tmp_path / f"out-{len(before)}"
        result = restore_to_dir(repo.reader(snapshot), out)
        repo.close()
        assert [f.path for f in result.failures] == ["f"]
        assert "does not match its ID" in result.failures[0].reason
        # Neither the file nor a partly written temporary is left behind.
        assert sorted(os.listdir(out)) == ["ok.txt"]
        assert (out / "ok.txt").read_bytes() == b"fine\n"


def test_a_chunk_shorter_than_the_tree_says_fails_its_file(tmp_path: Path) -> None:
    """A tree entry (sealed by a key holder) claiming 100 bytes for a 50-byte chunk."""
    repo = make_repo(tmp_path / "repo")
    with repo.blob_writer() as writer:
        chunk_id = writer.save_data(b"x" * 50)
    good = snapshot_of(repo, {"ok.txt": b"fine\n"})
    lying = Entry(name=b"f", type="f", mode=0o644, size=100, chunks=((chunk_id, 100),))
    entries = [lying.encode(), repo.reader(good).stat("ok.txt").encode()]
    with repo.blob_writer() as writer:
        tree = writer.save_tree(leaf_page(entries))
    snapshot = repo.save_snapshot(dataclasses.replace(good, tree=tree, snapshot_id=None))
    result = restore_to_dir(repo.reader(snapshot), tmp_path / "out")
    repo.close()
    assert [(f.path, f.reason) for f in result.failures] == [
        ("f", "f: chunk 0 is 50 bytes, the tree says 100")
    ]
    assert sorted(os.listdir(tmp_path / "out")) == ["ok.txt"]


@pytest.mark.parametrize(
    ("threads", "capacity"),
    [(Prefetcher.THREADS, CACHE_BYTES), (0, SERIAL_CACHE_BYTES)],
    ids=["threads", "in-thread"],
)
def test_batches_come_in_order_with_their_chunks_loaded(
    tmp_path: Path, threads: int, capacity: int
) -> None:
    """Each batch is handed out with its chunks in the cache, in order. Loaded
    in the calling thread (a restore from a local repository), nothing is
    loaded ahead: the cache never holds more than one batch, so the smaller
    cache of that mode evicts nothing before it is written (loading a batch
    ahead, as the threads do, overflows it: the chunk check fails)."""
    rng = random.Random(8)
    content = {f"d/{i:04d}.txt": rng.randbytes(rng.randrange(1, 400_000)) for i in range(120)}
    content["d/0050-large.bin"] = rng.randbytes(LARGE + 1)
    # Batches of three files just below LARGE: more than half the smaller cache each.
    content |= {f"d/{i:04d}-big.bin": rng.randbytes(LARGE - 1000) for i in range(60, 72)}
    repo = make_repo(tmp_path / "repo")
    snapshot = snapshot_of(repo, content)
    repo.close()
    with Repository.open(
        LocalBackend(tmp_path / "repo", durable=False), PASSWORD, cache_root=tmp_path / "c2"
    ) as again:
        reader = again.reader(snapshot).with_chunk_cache(capacity)
        walked = [(path, entry) for path, entry in reader.walk() if entry.is_file]
        prefetcher = Prefetcher(reader, threads=threads)
        try:
            seen = []
            for path, entry in batched(((item, item[1]) for item in walked), prefetcher):
                seen.append(path)
                if entry.size <= LARGE:  # loaded before it was handed out
                    assert all(reader.chunks.contains(c) for c, _ in entry.chunks), path
        finally:
            prefetcher.close()
    assert seen == [path for path, _ in walked]
