"""check: subsets, resume, attribution of damage, read-only, the anchor."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from store import (
    CheckState,
    StoreError,
    check_repository,
    forget_snapshots,
    record_check,
    repair_snapshots,
)
from store.maintenance.check.read_data import select_packs, validate_subset
from store.maintenance.inventory import take_inventory
from tests.store.support.ops_helpers import ALICE, BOB, SITE, backup, check, make_repo


def _many_packs(root: Path, count: int = 12):  # type: ignore[no-untyped-def]
    repo = make_repo(root, pack_size=8 * 1024)
    rng = random.Random(5)
    backup(repo, ALICE, {f"f{i}": rng.randbytes(9000) for i in range(count)})
    return repo


def test_parts_cover_every_pack_once(tmp_path: Path) -> None:
    repo = _many_packs(tmp_path)
    packs = list(take_inventory(repo.backend).packs.values())
    assert len(packs) > 10
    parts = [select_packs(packs, f"{n}/3") for n in (1, 2, 3)]
    ids = [p.pack_id for part in parts for p in part]
    assert sorted(ids) == sorted(p.pack_id for p in packs)
    assert len(ids) == len(set(ids))


def test_percentage_subsets(tmp_path: Path) -> None:
    repo = _many_packs(tmp_path)
    packs = list(take_inventory(repo.backend).packs.values())
    assert len(select_packs(packs, "10%", random.Random(1))) == -(-len(packs) // 10)
    assert len(select_packs(packs, "0.1%")) == 1  # at least one
    assert len(select_packs(packs, "100%")) == len(packs)
    result = check_repository(repo, read_data=True, subset="25%", state=CheckState(repo.cache_dir))
    assert result.counts["packs_read"] == -(-len(packs) // 4)


@pytest.mark.parametrize("subset", ["0%", "101%", "0/3", "4/3", "x", "1/0", "10"])
def test_bad_subsets(subset: str) -> None:
    with pytest.raises(ValueError, match="subset"):
        validate_subset(subset)


def test_resume_continues_an_interrupted_read(tmp_path: Path) -> None:
    repo = _many_packs(tmp_path)
    state = CheckState(repo.cache_dir)
    total = len(take_inventory(repo.backend).packs)
    calls = []

    def interrupt(done: int, count: int, _bytes: int, _total: int) -> None:
        calls.append(done)
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        check_repository(repo, read_data=True, state=state, progress=interrupt, workers=1)
    resumed = check_repository(repo, read_data=True, resume=True, state=state)
    assert resumed.resumed
    assert resumed.counts["packs_read"] == total - 4
    assert not resumed.problems
    # Done: nothing left to resume, and a new run reads everything afresh.
    with pytest.raises(StoreError, match="resume"):
        check_repository(repo, read_data=True, resume=True, state=state)
    assert check_repository(repo, read_data=True, state=state).counts["packs_read"] == total


def test_damage_names_the_pack_and_whom_it_affects(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    rng = random.Random(9)
    backup(repo, ALICE, {"a": rng.randbytes(5000)})
    bob = backup(repo, BOB, {"b": rng.randbytes(5000)})
    bob2 = backup(repo, BOB, {"b": rng.randbytes(10), "old": b""})  # bob's b changed
    backup(repo, SITE, {"s": rng.randbytes(5000)})
    bob_chunk = next(iter(repo.reader(bob).stat("b").chunks))[0]
    location = repo.blob_index.lookup(bob_chunk)
    assert location is not None
    name = location.pack_id.hex()
    path = tmp_path / "repo" / "data" / name[:2] / name
    data = bytearray(path.read_bytes())
    data[location.offset] ^= 1
    path.write_bytes(bytes(data))
    result = check(repo)
    assert list(result.bad_packs) == [name]
    assert result.pack_affects[name] == [bob.id_hex]
    assert [s.id_hex for s in result.affected] == [bob.id_hex]
    assert result.to_report()["affected_owners"] == ["users/bob@example.com"]
    assert bob2.id_hex not in result.pack_affects[name]


def test_check_changes_nothing_but_its_report(tmp_path: Path) -> None:
    repo = _many_packs(tmp_path, 3)
    before = sorted((i.key, i.size) for i in repo.backend.list(""))
    result = check(repo)
    assert sorted((i.key, i.size) for i in repo.backend.list("")) == before
    key = record_check(repo, result, CheckState(repo.cache_dir))
    after = sorted((i.key, i.size) for i in repo.backend.list(""))
    assert [k for k, _ in after if (k, _) not in before] == [key]


def test_forgotten_snapshots_are_not_reported_lost(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = backup(repo, ALICE, {"a": b"1"})
    backup(repo, ALICE, {"a": b"2"})
    check(repo, record=True)
    forget_snapshots(repo, [first])
    assert not check(repo).problems
    # Removed behind Coffer's back, it is.
    other = next(s for s in repo.list_snapshots())
    (tmp_path / "repo" / "snapshots" / other.id_hex).unlink()
    result = check(repo)
    assert [p.code for p in result.errors] == ["object-lost"]
    # And it stays reported until a repair acknowledges it.
    check(repo, record=True)
    assert [p.code for p in check(repo).errors] == ["object-lost"]
    # A repair acknowledges the loss (it cannot bring the snapshot back).
    repaired = repair_snapshots(repo, state=CheckState(repo.cache_dir))
    assert repaired.acknowledged == [f"snapshots/{other.id_hex}"]
    assert not check(repo).problems
