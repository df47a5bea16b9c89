"""prune: marks, grace period, sweep, repack, revival, sessions (one process, fake clock).

Cross-process concurrency and kill -9 are in test_prune_concurrent.py.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from store import (
    BackupRun,
    LocalBackend,
    PruneOptions,
    Repository,
    RetentionPolicy,
    execute_forget,
    forget_snapshots,
    plan_forget,
    prune,
)
from store.format.crypto import encode_payload
from store.format.index import PackRecord
from store.format.pack import PackBuilder
from store.ids import DATA
from store.names import pack_name
from tests.store.support.ops_helpers import (
    ALICE,
    BOB,
    DAY,
    HOUR,
    PASSWORD,
    T0,
    backup,
    check,
    make_repo,
    restore_all,
)

# 16 KiB each, incompressible, each one chunk
BIG_A = random.Random(1).randbytes(16384)
BIG_B = random.Random(2).randbytes(16384)


def opts(now: int, **more: object) -> PruneOptions:
    return PruneOptions(clock=lambda: now, clock_margin_ns=0, **more)  # type: ignore[arg-type]


def packs(repo: Repository) -> set[str]:
    return {info.key for info in repo.backend.list("data/")} | {
        info.key for info in repo.backend.list("tree/")
    }


def second_machine(root: Path, name: str) -> Repository:
    """The same repository opened with its own cache (another host or process)."""
    return Repository.open(
        LocalBackend(root / "repo", durable=False), PASSWORD, cache_root=root / name
    )


def test_nothing_to_do_on_a_clean_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    backup(repo, ALICE, {"a": BIG_A})
    before = packs(repo)
    result = prune(repo, opts(T0))
    assert not result.marked
    assert not result.deleted
    assert not result.repacked
    assert packs(repo) == before
    assert not check(repo).problems


def test_mark_then_sweep_after_the_grace_period(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    old = backup(repo, ALICE, {"a": BIG_A}, time_ns=T0)
    new = backup(repo, ALICE, {"b": BIG_B}, time_ns=T0 + DAY)
    forget_snapshots(repo, [old])
    before = packs(repo)
    first = prune(repo, opts(T0 + 2 * DAY))
    assert first.marked
    assert not first.deleted
    marked_keys = {k for k in before if k.rpartition("/")[2] in first.marked}
    assert packs(repo) == before  # nothing deleted yet
    assert not check(repo).errors
    # Within the grace period nothing goes; after it the marked packs do.
    assert not prune(repo, opts(T0 + 2 * DAY + 23 * HOUR)).deleted
    swept = prune(repo, opts(T0 + 3 * DAY + HOUR))
    assert set(swept.deleted) == marked_keys
    assert packs(repo) == before - marked_keys
    result = check(repo)
    assert not result.problems, [p.message for p in result.problems]
    assert restore_all(repo, new) == {"b": BIG_B}


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    old = backup(repo, ALICE, {"a": BIG_A}, time_ns=T0)
    backup(repo, ALICE, {"b": BIG_B}, time_ns=T0 + DAY)
    forget_snapshots(repo, [old])
    listing = sorted(info.key for info in repo.backend.list(""))
    result = prune(repo, opts(T0 + 2 * DAY, dry_run=True))
    assert result.marked
    assert sorted(info.key for info in repo.backend.list("")) == listing


@pytest.mark.parametrize(("max_unused", "repacked"), [(0.0, True), (float("inf"), False)])
def test_partly_used_packs_are_repacked(tmp_path: Path, max_unused: float, repacked: bool) -> None:
    repo = make_repo(tmp_path)
    both = backup(repo, ALICE, {"a": BIG_A, "b": BIG_B}, time_ns=T0)  # one data pack, two blobs
    only_a = backup(repo, ALICE, {"a": BIG_A}, time_ns=T0 + DAY)
    forget_snapshots(repo, [both])
    result = prune(repo, opts(T0 + 2 * DAY, max_unused_percent=max_unused))
    assert bool(result.repacked) == repacked
    if repacked:
        assert result.new_packs
        assert result.unused_bytes_after == 0
    prune(repo, opts(T0 + 4 * DAY, max_unused_percent=max_unused))
    assert not check(repo).errors
    assert restore_all(repo, only_a) == {"a": BIG_A}
    data_bytes = sum(info.size for info in repo.backend.list("data/"))
    assert (data_bytes < len(BIG_A) * 1.5) == repacked


def test_backup_that_overlaps_the_mark_revives_the_pack(tmp_path: Path) -> None:
    """The revive case: a backup that loaded the index before prune marked a pack
    deduplicates against it; its snapshot names a marked blob, which stays
    readable, and the next prune revives the pack instead of deleting it."""
    backup_host = make_repo(tmp_path)
    old = backup(backup_host, ALICE, {"a": BIG_A}, time_ns=T0)
    backup(backup_host, ALICE, {"b": BIG_B}, time_ns=T0 + DAY)
    admin = second_machine(tmp_path, "admin-cache")
    forget_snapshots(admin, [old])
    with BackupRun(backup_host, time_ns=T0 + 2 * DAY) as run, run.owner(BOB) as session:
        session.full_scope()
        session.add_item("warmup", b"loads the index before the mark")
        mark = prune(admin, opts(T0 + 2 * DAY + HOUR))
        assert mark.marked
        session.add_item("copy-of-a", BIG_A)  # dedup against the marked pack
        bob = session.commit()
    result = check(admin)
    assert not result.errors, [p.message for p in result.errors]
    assert any(p.code == "blob-marked" for p in result.warnings)
    # Readable meanwhile, from a machine whose index never had the pack.
    third = second_machine(tmp_path, "third-cache")
    assert restore_all(third, bob)["copy-of-a"] == BIG_A
    sweep = prune(admin, opts(T0 + 4 * DAY))
    assert sweep.revived
    result = check(admin)
    assert not result.problems, [p.message for p in result.problems]
    assert restore_all(second_machine(tmp_path, "fourth-cache"), bob)["copy-of-a"] == BIG_A


def test_unchanged_items_of_a_forgotten_parent_are_revived(tmp_path: Path) -> None:
    """Catalogue reuse (no dedup check at all): the backup keeps items of its
    parent snapshot, which was forgotten and pruned while it ran."""
    backup_host = make_repo(tmp_path)
    parent = backup(backup_host, ALICE, {"keep/a": BIG_A}, time_ns=T0)
    admin = second_machine(tmp_path, "admin-cache")
    with BackupRun(backup_host, time_ns=T0 + DAY) as run, run.owner(ALICE) as session:
        session.full_scope()
        forget_snapshots(admin, [parent])
        assert prune(admin, opts(T0 + DAY + HOUR)).marked
        entry = session.entry("keep/a")
        assert entry is not None
        assert entry.version is not None
        assert session.unchanged("keep/a", entry.version)
        child = session.commit()
    sweep = prune(admin, opts(T0 + 3 * DAY))
    assert sweep.revived
    assert not sweep.deleted
    assert not check(admin).problems
    assert restore_all(second_machine(tmp_path, "c3"), child) == {"keep/a": BIG_A}


def test_a_live_session_older_than_the_mark_postpones_the_sweep(tmp_path: Path) -> None:
    backup_host = make_repo(tmp_path)
    old = backup(backup_host, ALICE, {"a": BIG_A}, time_ns=T0)
    backup(backup_host, ALICE, {"b": BIG_B}, time_ns=T0 + DAY)
    admin = second_machine(tmp_path, "admin-cache")
    forget_snapshots(admin, [old])
    # The session's start time is real time; the mark is taken later in fake time.
    import time

    start = time.time_ns()
    with BackupRun(backup_host, time_ns=start) as run, run.owner(BOB) as session:
        session.full_scope()
        session.add_item("warmup", b"x")
        marked = prune(admin, opts(start + HOUR)).marked
        assert marked
        before = packs(admin)
        late = prune(admin, opts(start + 3 * DAY, session_stale_ns=10 * DAY))
        assert late.postponed
        assert not late.deleted
        assert packs(admin) == before
        session.add_item("copy-of-a", BIG_A)
        bob = session.commit()
    # The session ended: its snapshot revives what it used, the rest goes.
    done = prune(admin, opts(start + 3 * DAY, session_stale_ns=10 * DAY))
    assert done.revived
    assert not check(admin).problems
    assert restore_all(second_machine(tmp_path, "c3"), bob)["copy-of-a"] == BIG_A


def test_a_stale_session_does_not_block_forever(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    old = backup(repo, ALICE, {"a": BIG_A}, time_ns=T0)
    backup(repo, ALICE, {"b": BIG_B}, time_ns=T0 + DAY)
    forget_snapshots(repo, [old])
    import time

    start = time.time_ns()
    run = BackupRun(repo, time_ns=start - HOUR)  # a backup that died without cleaning up
    prune(repo, opts(start))
    result = prune(repo, opts(start + 2 * DAY))  # marker not refreshed for two days
    assert result.deleted
    assert run._session_key in result.sessions_removed
    run._stop.set()


def _orphan_pack(repo: Repository) -> PackRecord:
    """A pack uploaded by a backup that never indexed it (crashed, or still running)."""
    builder = PackBuilder(1, repo.keyring.current, repo.keyring.current_key)
    data = b"orphan content " * 100
    blob_id = repo.blob_writer().blob_id(data)
    builder.add(DATA, blob_id, len(data), encode_payload(data, 3))
    raw, entries = builder.finish()
    repo.backend.put(pack_name(builder.pack_id, 1), raw)
    return PackRecord(builder.pack_id, 1, repo.keyring.current, entries)


def test_orphan_packs_are_marked_and_swept(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    backup(repo, ALICE, {"a": BIG_A})
    record = _orphan_pack(repo)
    assert any(p.code == "pack-unindexed" for p in check(repo).warnings)
    assert record.pack_id.hex() in prune(repo, opts(T0)).marked
    assert pack_name(record.pack_id, 1) in prune(repo, opts(T0 + 2 * DAY)).deleted
    assert not check(repo).problems


def test_an_orphan_that_a_backup_indexes_later_is_revived(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    backup(repo, ALICE, {"a": BIG_A})
    record = _orphan_pack(repo)
    prune(repo, opts(T0))
    repo.write_index([record])  # the slow backup finally writes its index
    result = prune(repo, opts(T0 + 2 * DAY))
    assert record.pack_id.hex() in result.revived
    assert pack_name(record.pack_id, 1) not in result.deleted
    assert repo.backend.exists(pack_name(record.pack_id, 1))
    assert not check(repo).problems


def test_prune_refuses_when_snapshots_reference_lost_data(tmp_path: Path) -> None:
    from store import IntegrityError

    repo = make_repo(tmp_path)
    backup(repo, ALICE, {"a": BIG_A})
    for info in list(repo.backend.list("data/")):
        repo.backend.delete(info.key)
    with pytest.raises(IntegrityError, match="lost"):
        prune(repo, opts(T0))


def test_forget_then_prune_frees_space_per_owner(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    for i in range(4):
        backup(repo, ALICE, {"a": bytes([i]) * 5000 + BIG_A[i:]}, time_ns=T0 + i * DAY)
        backup(repo, BOB, {"b": bytes([i]) * 7000 + BIG_B[i:]}, time_ns=T0 + i * DAY + 1)
    execute_forget(repo, plan_forget(repo, lambda _o: RetentionPolicy(last=1), now_ns=T0 + 5 * DAY))
    before = sum(info.size for info in repo.backend.list("data/"))
    prune(repo, opts(T0 + 5 * DAY, max_unused_percent=0.0))
    prune(repo, opts(T0 + 7 * DAY, max_unused_percent=0.0))
    after = sum(info.size for info in repo.backend.list("data/"))
    assert after < before / 2
    assert not check(repo).problems
    latest = {s.owner.name: s for s in repo.list_snapshots()}
    assert restore_all(repo, latest[ALICE.name])["a"] == bytes([3]) * 5000 + BIG_A[3:]


def test_a_second_prune_is_refused_while_one_runs(tmp_path: Path) -> None:
    from store import RepositoryLocked
    from store.maintenance.maintlock import MaintenanceLock

    repo = make_repo(tmp_path)
    with MaintenanceLock(repo, "prune"), pytest.raises(RepositoryLocked, match="prune"):
        prune(second_machine(tmp_path, "other"), PruneOptions())
    assert prune(repo, PruneOptions()) is not None  # released
