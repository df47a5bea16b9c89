"""Damage is always detected: flipped bits and lost objects give errors, never wrong data."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from store import (
    BlobMissing,
    FormatTooNew,
    IntegrityError,
    KeySlotDamaged,
    LocalBackend,
    Repository,
    RepositoryNotFound,
    StoreError,
    WrongPassword,
)
from tests.store.support.helpers import (
    PASSWORD,
    make_repo,
    read_all,
    snapshot_of,
    verified_pack_records,
)

FILES = {
    "mail/inbox/a.eml": b"From: a\r\nSubject: hello\r\n\r\nbody " * 50,
    "mail/inbox/b.eml": random.Random(1).randbytes(40_000),
    "docs/report.txt": b"quarterly numbers\n" * 2000,
    "empty": b"",
}


def _everything(repo_path: Path, cache: Path) -> dict[str, bytes]:
    """Open afresh and read every object; raises on any damage."""
    repo = Repository.open(LocalBackend(repo_path), PASSWORD, cache_root=cache)
    try:
        if repo.damaged_indexes:
            raise IntegrityError(
                f"damaged index objects: {sorted(i.hex() for i in repo.damaged_indexes)}"
            )
        for index_id in repo.list_index_ids():
            repo.load_index(index_id)
        verified_pack_records(repo)
        out: dict[str, bytes] = {}
        snapshots = repo.list_snapshots()
        if not snapshots:
            raise IntegrityError("no snapshots left")
        for snapshot in snapshots:
            out.update(read_all(repo, snapshot))
        return out
    finally:
        repo.close()


@pytest.fixture(scope="module")
def sample_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("integrity")
    repo = make_repo(base / "repo", small=True, pack_size=32 * 1024)
    snapshot_of(repo, FILES)
    repo.close()
    return base / "repo"


def _objects(repo_path: Path) -> list[Path]:
    return sorted(p for p in repo_path.rglob("*") if p.is_file())


def _expected_error(kind: str, original: bytes, position: int) -> tuple[type[StoreError], ...]:
    """What a flipped bit at ``position`` of an object of ``kind`` must raise.

    Damage (exit code 13) everywhere, except where the format cannot tell
    damage from something else: the version byte of a pack or sealed object
    (a newer object, exit 14, once readers say so); and, before a key slot
    is open, a changed
    repository ID in ``config``'s header (bound into every key slot, so no
    slot opens: a wrong password, exit 11) or a changed version there (a
    newer repository, exit 14); and a key slot, whose fields are bound into
    its ciphertexts, so a damaged one looks like one the password does not
    open (exit 11; a slot the password does open but whose box fails is
    damage).
    """
    if kind == "keys":
        # The key set (FORMAT.md §3) must be canonical JSON: a flip that breaks
        # the JSON or its canonical form is damage; one inside a slot's fields
        # looks like a slot the password does not open.
        return (WrongPassword, KeySlotDamaged, IntegrityError)
    if position == 4 and kind in ("data", "tree", "index", "snapshots"):
        # The version byte of a pack or sealed object (FORMAT.md §5, §7): a
        # higher version may be read as written by a newer Coffer (exit 14).
        return (FormatTooNew, IntegrityError)
    if kind == "config":
        header = original.partition(b"\n")[0]
        for field, allowed in ((b'"id": "', WrongPassword), (b'"version": ', FormatTooNew)):
            start = header.find(field) + len(field)
            end = start + (32 if field.startswith(b'"id"') else 1)
            if start <= position < end:
                return (allowed, IntegrityError)
    return (IntegrityError,)


def test_intact_repository_reads_back(sample_repo: Path, tmp_path: Path) -> None:
    assert _everything(sample_repo, tmp_path / "cache") == FILES


def test_every_flipped_bit_is_detected(sample_repo: Path, tmp_path: Path) -> None:
    rng = random.Random(20261125)
    objects = _objects(sample_repo)
    assert {p.relative_to(sample_repo).parts[0] for p in objects} >= {
        "config",
        "keys",
        "data",
        "tree",
        "index",
        "snapshots",
    }
    trials = 0
    for path in objects:
        original = path.read_bytes()
        kind = path.relative_to(sample_repo).parts[0]
        # The first and last 64 bytes (headers, lengths, tags) and a sample of the rest.
        positions = set(range(min(64, len(original)))) | set(
            range(max(0, len(original) - 64), len(original))
        )
        positions |= {rng.randrange(len(original)) for _ in range(24)}
        for position in sorted(positions):
            damaged = bytearray(original)
            damaged[position] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(damaged))
            expected = _expected_error(kind, original, position)
            try:
                with pytest.raises(StoreError) as caught:
                    _everything(sample_repo, tmp_path / f"cache-{trials}")
            finally:
                path.write_bytes(original)
            assert isinstance(caught.value, expected), (path.name, position, caught.value)
            if expected == (IntegrityError,):
                assert caught.value.exit_code == 13
                assert not isinstance(caught.value, WrongPassword | FormatTooNew)
            trials += 1
    assert trials > 500
    assert _everything(sample_repo, tmp_path / "cache-final") == FILES


@pytest.mark.parametrize("kind", ["config", "keys", "data", "tree", "index"])
def test_every_lost_object_is_detected(sample_repo: Path, tmp_path: Path, kind: str) -> None:
    expected: type[StoreError] | tuple[type[StoreError], ...] = {
        "config": RepositoryNotFound,
        "keys": IntegrityError,
    }.get(kind, (BlobMissing, IntegrityError))
    for number, path in enumerate(
        p for p in _objects(sample_repo) if p.relative_to(sample_repo).parts[0] == kind
    ):
        original = path.read_bytes()
        path.unlink()
        try:
            with pytest.raises(expected):
                _everything(sample_repo, tmp_path / f"cache-{number}")
        finally:
            path.write_bytes(original)


def test_damage_in_cache_does_not_return_wrong_data(tmp_path: Path) -> None:
    """A blob swapped inside a pack is caught by its ID check, even if it decrypts."""
    repo = make_repo(tmp_path / "repo", small=True)
    snapshot = snapshot_of(repo, {"a": b"A" * 5000, "b": b"B" * 5000})
    reader = repo.reader(snapshot)
    entry_a, entry_b = reader.stat("a"), reader.stat("b")
    # Point blob a's index entry at blob b's location: decryption fails (the
    # ID is bound as associated data), so wrong data is never returned.
    location_b = repo.blob_index.lookup(entry_b.chunks[0][0])
    assert location_b is not None
    with repo.blob_index._env.begin(write=True) as txn:
        txn.put(entry_a.chunks[0][0], location_b.encode(), db=repo.blob_index._blobs)
    repo.chunk_cache._items.clear()
    with pytest.raises(IntegrityError):
        repo.reader(snapshot).open("a").read()


def test_index_rebuilt_from_packs_equals_original(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", small=True, pack_size=16 * 1024)
    for n in range(3):
        snapshot_of(repo, {f"f{n}-{i}": os.urandom(3000) + bytes(n) for i in range(20)})
    written = set()
    for index_id in repo.list_index_ids():
        for record in repo.load_index(index_id).packs:
            for entry in record.entries:
                written.add((record.pack_id, record.kind, record.epoch, entry))
    rebuilt = set()
    for item in verified_pack_records(repo):
        for entry in item.entries:
            rebuilt.add((item.pack_id, item.kind, item.epoch, entry))
    assert len(written) > 60
    assert rebuilt == written
