"""Damage, then check, repair index, repair snapshots, and the next backup heals it."""

from __future__ import annotations

import random
from pathlib import Path

from store import CheckState, LocalBackend, Repository, repair_index, repair_snapshots
from tests.store.support.ops_helpers import (
    ALICE,
    BOB,
    PASSWORD,
    backup,
    check,
    make_repo,
    restore_all,
)

A = random.Random(11).randbytes(20000)
B = random.Random(12).randbytes(20000)
C = random.Random(13).randbytes(20000)


def _two_owners(root: Path) -> Repository:
    repo = make_repo(root)
    backup(repo, ALICE, {"keep/a": A, "docs/b": B})  # one data pack per run here
    backup(repo, BOB, {"c": C})
    check(repo, record=True)
    return repo


def _pack_of(repo: Repository, blob_content: bytes) -> str:
    blob_id = repo.blob_writer().blob_id(blob_content)
    location = repo.blob_index.lookup(blob_id)
    assert location is not None
    name = location.pack_id.hex()
    return f"data/{name[:2]}/{name}"


def test_lost_pack_check_repair_and_heal(tmp_path: Path) -> None:
    repo = _two_owners(tmp_path)
    lost_key = _pack_of(repo, C)  # bob's only data pack
    (tmp_path / "repo" / lost_key).unlink()
    result = check(repo, read_data=False, record=True)
    assert result.damaged
    assert {f"{s.owner.kind}/{s.owner.name}" for s in result.affected} == {"users/bob@example.com"}
    assert any(p.code == "pack-missing" for p in result.errors)
    state = CheckState(repo.cache_dir)
    fixed = repair_index(repo, state=state)
    assert fixed.missing_packs == [lost_key.rpartition("/")[2]]
    assert repo.blob_writer().blob_id(C).hex() in fixed.lost_blobs
    # Dedup no longer points at the lost blob.
    assert not repo.blob_index.contains(repo.blob_writer().blob_id(C))
    assert lost_key in fixed.acknowledged  # the anchor's record of the pack is settled
    repaired = repair_snapshots(repo, state=state)
    assert [r.old.owner for r in repaired.repaired] == [BOB]
    assert repaired.repaired[0].lost == ["c (file content)"]
    result = check(repo, record=True)
    assert not result.errors, [p.message for p in result.errors]
    bob_now = next(s for s in repo.list_snapshots() if s.owner == BOB)
    assert "repaired" in bob_now.tags
    assert restore_all(repo, bob_now) == {}
    # The next backup stores the content again instead of deduplicating into the void.
    healed = backup(repo, BOB, {"c": C})
    fresh = Repository.open(LocalBackend(tmp_path / "repo"), PASSWORD, cache_root=tmp_path / "f")
    assert restore_all(fresh, healed) == {"c": C}
    assert not check(repo).errors


def test_corrupt_blob_is_salvaged_around(tmp_path: Path) -> None:
    repo = _two_owners(tmp_path)
    key = _pack_of(repo, A)  # alice's pack holds a and b
    location = repo.blob_index.lookup(repo.blob_writer().blob_id(A))
    assert location is not None
    path = tmp_path / "repo" / key
    data = bytearray(path.read_bytes())
    data[location.offset + 5] ^= 0x40
    path.write_bytes(bytes(data))
    structure_only = check(repo, read_data=False)
    assert not structure_only.errors  # the structure is fine: only reading the data tells
    result = check(repo, record=True)
    assert key.rpartition("/")[2] in result.bad_packs
    assert {s.owner for s in result.affected} == {ALICE}
    state = CheckState(repo.cache_dir)
    fixed = repair_index(repo, state=state)  # reads the pack the last check flagged
    assert fixed.damaged_packs == [key]
    assert fixed.salvaged_blobs >= 1  # b (and the tree-less rest) copied out
    assert not path.exists()
    repaired = repair_snapshots(repo, state=state)
    assert repaired.repaired[0].lost == ["keep/a (file content)"]
    alice = next(s for s in repo.list_snapshots() if s.owner == ALICE)
    assert restore_all(repo, alice) == {"docs/b": B}
    assert not check(repo).errors


def test_lost_tree_pack_loses_the_folders(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    backup(repo, ALICE, {"x/y/deep.txt": A, "top.txt": B})
    check(repo, record=True)
    for info in list(repo.backend.list("tree/")):
        repo.backend.delete(info.key)
    result = check(repo, record=True)
    assert result.damaged
    state = CheckState(repo.cache_dir)
    repair_index(repo, state=state)
    repaired = repair_snapshots(repo, state=state)
    assert repaired.repaired[0].lost[0].startswith("/ (everything")
    assert not check(repo).errors
    healed = backup(repo, ALICE, {"x/y/deep.txt": A, "top.txt": B})
    assert restore_all(repo, healed) == {"x/y/deep.txt": A, "top.txt": B}


def test_repair_index_rebuilds_a_deleted_index(tmp_path: Path) -> None:
    repo = _two_owners(tmp_path)
    for info in list(repo.backend.list("index/")):
        repo.backend.delete(info.key)
    result = check(repo, read_data=False)
    assert any(p.code == "blob-missing" for p in result.errors)
    fixed = repair_index(repo, state=CheckState(repo.cache_dir))
    assert not fixed.lost_blobs
    assert fixed.packs_indexed == len(list(repo.backend.list("data/"))) + len(
        list(repo.backend.list("tree/"))
    )
    assert not check(repo).errors
    assert not repair_snapshots(repo).repaired


def test_dry_runs_change_nothing(tmp_path: Path) -> None:
    repo = _two_owners(tmp_path)
    (tmp_path / "repo" / _pack_of(repo, C)).unlink()
    listing = sorted(info.key for info in repo.backend.list(""))
    assert repair_index(repo, dry_run=True).missing_packs
    assert sorted(info.key for info in repo.backend.list("")) == listing
