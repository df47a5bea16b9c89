"""The two ways a pack's trailer is read agree on every attack: the whole pack in memory
(``read_trailer``: check --read-data, prune) and three ranged reads (``read_pack_trailer``:
repair index). Both go through the one parser, ``store.format.pack.open_trailer``; each
damaged pack below is refused by both with IntegrityError, and the intact one gives both
the same entries."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from store import IntegrityError, LocalBackend, Repository
from store.format.pack import HEADER_SIZE, read_trailer
from store.maintenance.inventory import PackFile, take_inventory
from store.maintenance.packverify import read_pack_trailer
from tests.store.support.helpers import make_repo, snapshot_of


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def _length(data: bytes, length: int) -> bytes:
    return data[:-4] + struct.pack(">I", length)


ATTACKS: dict[str, Callable[[bytes], bytes]] = {
    "cut to the header": lambda d: d[:HEADER_SIZE],
    "cut inside the trailer": lambda d: d[:-5],
    "last byte dropped": lambda d: d[:-1],
    "a byte appended": lambda d: d + b"\x00",
    "trailer length larger than the pack": lambda d: _length(d, len(d) + 100),
    "trailer length zero": lambda d: _length(d, 0),
    "trailer length one less": lambda d: _length(d, struct.unpack(">I", d[-4:])[0] - 1),
    "trailer byte flipped": lambda d: _flip(d, len(d) - 10),
    "header epoch flipped": lambda d: _flip(d, HEADER_SIZE - 1),
    "a blob byte removed, the trailer intact": lambda d: d[:HEADER_SIZE] + d[HEADER_SIZE + 1 :],
    "trailer forged from another pack's": lambda d: d,  # replaced in the test
}


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Repository, PackFile, bytes, bytes]:
    """A repository with packs: one attacked, another's trailer for forging."""
    root = tmp_path_factory.mktemp("trailers") / "repo"
    repo = make_repo(root, small=True)
    snapshot_of(repo, {"a.txt": b"first pack\n" * 500})
    snapshot_of(repo, {"b.txt": b"second pack\n" * 700}, full=False)
    packs = sorted(take_inventory(repo.backend).packs.values(), key=lambda p: p.key)
    assert len(packs) >= 2
    first, second = packs[0], packs[1]
    return repo, first, repo.backend.get(first.key), repo.backend.get(second.key)


def _both(repo: Repository, pack: PackFile, data: bytes) -> list[str]:
    """What each reader says of ``data`` stored as ``pack``: "ok" or the error. A
    fresh backend reads it (the local backend keeps pack files open: packs never
    change, so one that did would be read from the file it replaced)."""
    backend = LocalBackend(repo.backend.location, durable=False)
    try:
        backend.put(pack.key, data)
        listed = PackFile(pack.pack_id, pack.kind, len(data), pack.key)
        readers: list[Callable[[], object]] = [
            lambda: read_trailer(data, repo.keyring.current_key, pack.pack_id, pack.key),
            lambda: read_pack_trailer(backend.get, listed, repo.keyring)[1],
        ]
        out = []
        for read in readers:
            try:
                read()
                out.append("ok")
            except IntegrityError as exc:
                out.append(f"refused: {exc}")
        return out
    finally:
        backend.close()


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_both_readers_refuse_a_damaged_trailer(
    packed: tuple[Repository, PackFile, bytes, bytes], attack: str
) -> None:
    repo, pack, data, other = packed
    if attack == "trailer forged from another pack's":
        # Another pack's authentic trailer (and length) after this pack's blobs.
        trailer_length = struct.unpack(">I", other[-4:])[0]
        body_end = len(data) - 4 - struct.unpack(">I", data[-4:])[0]
        damaged = data[:body_end] + other[-4 - trailer_length :]
    else:
        damaged = ATTACKS[attack](data)
    try:
        said = _both(repo, pack, damaged)
    finally:
        _both(repo, pack, data)
    assert [s.split(":")[0] for s in said] == ["refused", "refused"], said


def test_both_readers_give_the_same_entries_for_an_intact_pack(
    packed: tuple[Repository, PackFile, bytes, bytes],
) -> None:
    repo, pack, data, _other = packed
    whole = read_trailer(data, repo.keyring.current_key, pack.pack_id, pack.key)
    backend = LocalBackend(repo.backend.location, durable=False)
    try:
        epoch, ranged = read_pack_trailer(backend.get, pack, repo.keyring)
    finally:
        backend.close()
    assert epoch == repo.keyring.current
    assert ranged == whole
    assert len(whole) > 0
