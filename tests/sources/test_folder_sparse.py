"""Sparse files (issue 14): their holes are not read, yet they are cut into
exactly the chunks and blob IDs a plain read gives, and restore byte-exact."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from sources.folder import backup_folder
from sources.folder.sparse import SparseReader, is_sparse
from sources.localdir import restore_to_dir
from store import BackupRun
from store.format.crypto import keyed_hash
from tests.store.support.helpers import make_repo

MIB = 1 << 20


def _sparse(path: Path, size: int, extents: list[tuple[int, bytes]]) -> bytes:
    """Write a sparse file (holes between ``extents``); returns its bytes."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        for offset, data in extents:
            handle.seek(offset)
            handle.write(data)
    return path.read_bytes()


def _layouts(rng: random.Random) -> list[tuple[int, list[tuple[int, bytes]]]]:
    return [
        # data at the start, in the middle (not page-aligned) and a hole to the end
        (24 * MIB, [(0, rng.randbytes(300_000)), (7 * MIB + 123, rng.randbytes(MIB))]),
        # a hole first, data to the very end
        (9 * MIB, [(8 * MIB, rng.randbytes(MIB))]),
        # all hole
        (12 * MIB, []),
        # dense
        (5 * MIB, [(0, rng.randbytes(5 * MIB))]),
    ]


def _read_all(reader: SparseReader, piece: int) -> bytes:
    out = bytearray()
    buffer = bytearray(piece)
    while count := reader.readinto(buffer):
        out += buffer[:count]
    return bytes(out)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_sparse_reader_gives_the_bytes_of_a_plain_read(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    for number, (size, extents) in enumerate(_layouts(rng)):
        path = tmp_path / f"f{number}"
        expected = _sparse(path, size, extents)
        fd = os.open(path, os.O_RDONLY)
        try:
            for piece in (4096, 65_537, 3 * MIB):
                os.lseek(fd, 0, os.SEEK_SET)
                assert _read_all(SparseReader(fd, size), piece) == expected
        finally:
            os.close(fd)


def _rchar() -> int:
    with open("/proc/self/io") as io:
        return int(next(line for line in io if line.startswith("rchar:")).split()[1])


def test_the_holes_are_not_read(tmp_path: Path) -> None:
    path = tmp_path / "image"
    _sparse(path, 64 * MIB, [(16 * MIB, random.Random(3).randbytes(MIB))])
    assert is_sparse(path.stat())
    fd = os.open(path, os.O_RDONLY)
    try:
        before = _rchar()
        data = _read_all(SparseReader(fd, 64 * MIB), 4 * MIB)
        read = _rchar() - before
        os.lseek(fd, 0, os.SEEK_SET)
        before = _rchar()
        while os.read(fd, 4 * MIB):
            pass
        plain = _rchar() - before
    finally:
        os.close(fd)
    assert len(data) == 64 * MIB
    assert read <= 2 * MIB  # the one data extent (and a little of /proc/self/io)
    assert plain >= 64 * MIB  # the measure can tell


def test_a_sparse_file_backs_up_like_its_dense_copy_and_restores(tmp_path: Path) -> None:
    rng = random.Random(5)
    root = tmp_path / "data"
    root.mkdir()
    extents = [(MIB + 17, rng.randbytes(2 * MIB)), (20 * MIB, rng.randbytes(MIB // 2))]
    content = _sparse(root / "sparse.img", 40 * MIB, extents)
    (root / "dense.img").write_bytes(content)  # the same bytes, every block written
    assert is_sparse((root / "sparse.img").stat())
    assert not is_sparse((root / "dense.img").stat())
    repo = make_repo(tmp_path / "repo")  # the default chunker: 2 MiB chunks of zeros
    with BackupRun(repo) as run:
        snapshot = backup_folder(run, root, processes=0).snapshot
    reader = repo.reader(snapshot)
    sparse, dense = reader.stat("sparse.img"), reader.stat("dense.img")
    assert sparse.chunks == dense.chunks  # same boundaries, same blob IDs
    assert len(set(sparse.chunks)) < len(sparse.chunks)  # zero chunks repeat
    out = tmp_path / "out"
    restore_to_dir(repo.reader(snapshot), out)
    assert (out / "sparse.img").read_bytes() == content
    assert (out / "dense.img").read_bytes() == content


def test_an_all_zero_chunk_has_the_id_of_its_hash(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    writer = repo.blob_writer()
    key = repo.keyring.blob_id_key
    for data in (bytes(2 * MIB), bytes(2 * MIB), bytes(1000), bytes(999) + b"\x01", b"\x00"):
        assert writer.blob_id(data) == keyed_hash(key, data)
    writer.close(flush=False)
