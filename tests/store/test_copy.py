"""Copying snapshots between repositories with different keys (store/copy/copier.py)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from store import (
    BackupRun,
    Owner,
    Repository,
    RepositoryLocked,
    Snapshot,
    SnapshotCopier,
    StoreError,
    copy_snapshots,
    missing_snapshots,
    snapshot_identity,
)
from store.backend import LocalBackend
from store.cache.copymap import CopyMap
from store.format.index import PackRecord
from store.ids import PACK_DATA, PACK_TREE, BlobId, IndexId
from store.names import pack_name
from tests.store.support.faulty_backend import FaultyBackend
from tests.store.support.helpers import FAST_KDF, PASSWORD, make_repo, read_all, reopen, snapshot_of

ALICE = Owner("users", "id-alice", "alice@contoso.example")
BOB = Owner("users", "id-bob", "bob@contoso.example")


def content(
    seed: int, *, dirs: int = 6, files: int = 8, big: bool = True, largest: int = 6000
) -> dict[str, bytes]:
    """Items in folders, and one large file. Items up to SMALL_CHUNKS.min (1 KiB)
    are one chunk whatever the chunker seed; bigger ones are cut by the seed."""
    rng = random.Random(seed)
    out = {
        f"folder-{d:02d}/item-{f:02d}.eml": rng.randbytes(rng.randrange(0, largest))
        for d in range(dirs)
        for f in range(files)
    }
    if big:
        out["large/file.bin"] = rng.randbytes(300_000)  # many chunks with SMALL_CHUNKS
    return out


def tree_view(repo: Repository, snapshot: Snapshot) -> dict[str, tuple[Any, ...]]:
    """Everything of every entry except the (repository-keyed) IDs."""
    reader = repo.reader(snapshot)
    view: dict[str, tuple[Any, ...]] = {}
    for path, entry in reader.walk():
        data = reader.open(entry).read() if entry.is_file else None
        view[path] = (
            entry.type,
            entry.mode,
            entry.mtime_ns,
            entry.size,
            entry.target,
            entry.version,
            entry.item_id,
            entry.attrs,
            data,
        )
    return view


def rich_snapshot(repo: Repository, owner: Owner, files: dict[str, bytes]) -> Snapshot:
    """A snapshot with directories carrying metadata, symlinks and sync state."""
    with BackupRun(repo) as run, run.owner(owner, source={"kind": "test"}) as session:
        session.full_scope()
        session.add_directory("folder-00", mode=0o700, mtime_ns=5, item_id="d0", attrs={"k": "v"})
        for path, data in files.items():
            session.add_item(path, data, mtime_ns=7, version=str(len(data)), item_id=path)
        session.add_symlink("link", b"folder-00/item-00.eml", mtime_ns=9)
        session.set_sync_state(b"delta-token:" + bytes(range(256)) * 10)
        return session.commit(stats={"note": "x"})


def sync_state(repo: Repository, snapshot: Snapshot) -> bytes:
    return b"".join(repo.load_blob(blob_id) for blob_id in snapshot.sync)


@pytest.fixture
def source(tmp_path: Path) -> Repository:
    return make_repo(tmp_path / "source", small=True, pack_size=64 * 1024)


@pytest.fixture
def dest(tmp_path: Path) -> Repository:
    return make_repo(tmp_path / "dest", small=True, pack_size=64 * 1024)


def test_copy_translates_every_id_and_keeps_everything_else(
    source: Repository, dest: Repository
) -> None:
    first = rich_snapshot(source, ALICE, content(1))
    second = rich_snapshot(source, ALICE, dict(content(1), **{"folder-01/new.eml": b"new"}))
    other = rich_snapshot(source, BOB, content(2))
    result = copy_snapshots(source, dest, source.list_snapshots())
    assert [s for s, _ in result.copied] == [first, second, other]
    assert not result.failed
    assert not result.present
    copies = {snapshot_identity(c): c for c in dest.list_snapshots()}
    assert set(copies) == {snapshot_identity(s) for s in (first, second, other)}
    for original in (first, second, other):
        copy = copies[snapshot_identity(original)]
        assert copy.snapshot_id != original.snapshot_id
        assert copy.tree != original.tree
        assert (copy.owner, copy.run, copy.time_ns, copy.host) == (
            original.owner,
            original.run,
            original.time_ns,
            original.host,
        )
        assert (copy.source, copy.stats, copy.tags) == (original.source, original.stats, ())
        # Reading verifies every blob against the destination's keys.
        assert tree_view(dest, copy) == tree_view(source, original)
        assert sync_state(dest, copy) == sync_state(source, original)
    # Parents are translated, so the history reads the same.
    assert copies[snapshot_identity(second)].parent == copies[snapshot_identity(first)].snapshot_id
    assert copies[snapshot_identity(first)].parent is None
    assert result.stats.snapshots_copied == 3
    assert result.stats.blobs_added > 0


def test_copied_trees_are_the_trees_the_destination_would_write(
    source: Repository, dest: Repository
) -> None:
    files = content(3, largest=1024)
    original = snapshot_of(source, files)
    ((_, copy),) = copy_snapshots(source, dest, [original]).copied
    # The same items backed up straight into the destination give the same
    # directory pages, except for the large file's chunks (cut with the
    # source's seed, and kept as they are).
    direct = snapshot_of(dest, {k: v for k, v in files.items() if not k.startswith("large/")})
    copied_dirs = {p: e.subtree for p, e in dest.reader(copy).walk() if e.is_dir}
    direct_dirs = {p: e.subtree for p, e in dest.reader(direct).walk() if e.is_dir}
    for path, subtree in direct_dirs.items():
        assert copied_dirs[path] == subtree, path


def test_copy_is_idempotent(source: Repository, dest: Repository) -> None:
    snapshot_of(source, content(4))
    copy_snapshots(source, dest, source.list_snapshots())
    before = sorted((i.key, i.size) for i in dest.backend.list(""))
    again = copy_snapshots(source, dest, source.list_snapshots())
    assert not again.copied
    assert len(again.present) == 1
    assert again.stats.blobs_read == 0
    after = sorted((i.key, i.size) for i in dest.backend.list(""))
    assert after == before  # not even an index object


def test_incremental_copy_reads_only_what_changed(
    source: Repository, dest: Repository, tmp_path: Path
) -> None:
    files = content(5, dirs=12, files=10)
    first = snapshot_of(source, files)
    full = copy_snapshots(source, dest, [first])
    assert full.stats.dirs_rewritten == 14  # root, 12 folders, large/
    changed = dict(files, **{"folder-07/item-03.eml": b"edited " * 100})
    second = snapshot_of(source, changed)
    # A new process: everything it knows comes from the local copy map.
    dest = reopen(dest)
    source = reopen(source)
    result = copy_snapshots(source, dest, [first, second])
    assert [s.snapshot_id for s, _ in result.present] == [first.snapshot_id]
    assert result.stats.blobs_read == 1  # the edited item, nothing else
    assert result.stats.dirs_rewritten == 2  # the root and folder-07
    assert result.stats.dirs_reused == 12
    ((_, copy),) = result.copied
    assert read_all(dest, copy) == changed


def test_small_items_deduplicate_across_sources_large_files_do_not(
    source: Repository, dest: Repository
) -> None:
    files = content(6, largest=1024)
    snapshot_of(dest, files, Owner("folders", "direct", "direct"))  # the destination's own
    stored_before = sum(i.size for i in dest.backend.list("data/"))
    result = copy_snapshots(source, dest, [snapshot_of(source, files)])
    data_added = sum(i.size for i in dest.backend.list("data/")) - stored_before
    # Every small item is one chunk whatever the seed: nothing new. The large
    # file was cut with the source's seed: its chunks are new (documented).
    assert result.stats.blobs_read > 0
    assert 250_000 < data_added < 400_000


def test_a_lost_destination_index_makes_the_copy_walk_again(
    source: Repository, dest: Repository, tmp_path: Path
) -> None:
    files = content(7)
    snapshot = snapshot_of(source, files)
    copy_snapshots(source, dest, [snapshot])
    # A "prune" at the destination that kept the tree packs and dropped the
    # data packs (after the copied snapshot was forgotten): the copy map still
    # remembers the directories, whose pages are still indexed.
    (copy,) = dest.list_snapshots()
    assert copy.snapshot_id is not None
    dest.delete_snapshot(copy.snapshot_id)
    old_indexes = dest.list_index_ids()
    kept: list[PackRecord] = []
    for index_id in old_indexes:
        for record in dest.load_index(index_id).packs:
            if record.kind == PACK_TREE:
                kept.append(record)
            else:
                dest.backend.delete(pack_name(record.pack_id, PACK_DATA))
    assert kept
    dest.write_index(kept, old_indexes)
    for index_id in old_indexes:
        dest.backend.delete(f"index/{index_id.hex()}")
    dest = reopen(dest)
    result = copy_snapshots(source, dest, [snapshot])
    ((_, again),) = result.copied
    assert result.stats.dirs_reused == 0
    assert read_all(dest, again) == files


def test_damage_in_the_source_fails_only_the_snapshots_it_touches(
    source: Repository, dest: Repository
) -> None:
    good = snapshot_of(source, content(8, big=False), ALICE)
    with BackupRun(source) as run, run.owner(BOB) as session:
        session.add_item("unique.bin", random.Random(9).randbytes(200_000))
        bad = session.commit()
    # Damage every data pack that only Bob's snapshot uses.
    alice_chunks = {c for _, e in source.reader(good).walk() if e.is_file for c, _size in e.chunks}
    bob_packs = {
        source.locate(c).pack_id
        for _, e in source.reader(bad).walk()
        if e.is_file
        for c, _size in e.chunks
        if c not in alice_chunks
    }
    for pack_id in bob_packs:
        key = pack_name(pack_id, PACK_DATA)
        raw = bytearray(source.backend.get(key))
        raw[20] ^= 0xFF
        source.backend.put(key, bytes(raw))
    result = copy_snapshots(source, dest, source.list_snapshots())
    assert [s.snapshot_id for s, _ in result.copied] == [good.snapshot_id]
    ((failed, reason),) = result.failed
    assert failed.snapshot_id == bad.snapshot_id
    assert "authentication failed" in reason
    (copy,) = dest.list_snapshots()
    assert read_all(dest, copy) == content(8, big=False)


def test_a_copy_stopped_by_a_failing_destination_resumes(
    source: Repository, tmp_path: Path
) -> None:
    snapshots = [
        snapshot_of(source, content(10 + i), Owner("folders", f"f{i}", f"f{i}")) for i in range(3)
    ]
    target = tmp_path / "flaky"
    make_repo(target, small=True, pack_size=64 * 1024).close()
    cache = tmp_path / "flaky-cache"
    full = FaultyBackend(LocalBackend(target, durable=False), seed=1, full_after=700_000)
    with Repository.open(full, PASSWORD, cache_root=cache) as flaky:
        with pytest.raises(StoreError, match=r"full|space"):
            copy_snapshots(source, flaky, snapshots)
        done = flaky.list_snapshots()
    assert 0 < len(done) < 3  # packs, index, snapshot: what was done is whole
    with Repository.open(LocalBackend(target, durable=False), PASSWORD, cache_root=cache) as dest:
        result = copy_snapshots(source, dest, snapshots)
        assert len(result.present) == len(done)
        assert len(result.copied) == 3 - len(done)
        copies = {snapshot_identity(c): c for c in dest.list_snapshots()}
        for original in snapshots:
            assert read_all(dest, copies[snapshot_identity(original)]) == read_all(source, original)


def test_checkpoints_are_distinct_from_complete_snapshots(
    source: Repository, dest: Repository
) -> None:
    with BackupRun(source) as run, run.owner(ALICE) as session:
        session.add_item("a.txt", b"a")
        checkpoint = session.checkpoint()
        session.close()
    assert checkpoint.partial
    complete = snapshot_of(source, {"b.txt": b"b"}, ALICE)
    assert missing_snapshots([checkpoint, complete], []) == [checkpoint, complete]
    copy_snapshots(source, dest, [checkpoint])
    assert missing_snapshots(source.list_snapshots(), dest.list_snapshots()) == [complete]


def test_a_completed_run_supersedes_its_copied_checkpoint(
    source: Repository, dest: Repository
) -> None:
    with BackupRun(source) as run, run.owner(ALICE) as session:
        session.add_item("a.txt", b"a")
        checkpoint = session.checkpoint()
        copy_snapshots(source, dest, [checkpoint])  # copied while the run goes on
        session.add_item("b.txt", b"b")
        complete = session.commit()
    assert source.list_snapshots() == [complete]
    result = copy_snapshots(source, dest, [complete])
    assert len(result.copied) == 1
    (copy,) = dest.list_snapshots()  # the copied checkpoint is gone, as at the source
    assert not copy.partial
    assert read_all(dest, copy) == {"a.txt": b"a", "b.txt": b"b"}


def test_same_repository_and_concurrent_copies_are_refused(
    source: Repository, dest: Repository, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match="same repository"):
        SnapshotCopier(source, source)
    with SnapshotCopier(source, dest):
        # (Another process would hold the flock the same way.)
        with pytest.raises(RepositoryLocked, match="another copy"):
            SnapshotCopier(source, dest)
        assert len(list(dest.backend.list("sessions/"))) == 1
    # The refused attempt left no session marker behind, nor did the first.
    assert not list(dest.backend.list("sessions/"))


def test_fresh_destination_with_default_parameters(source: Repository, tmp_path: Path) -> None:
    files = content(11)
    original = snapshot_of(source, files)
    with Repository.init(
        LocalBackend(tmp_path / "plain", durable=False),
        PASSWORD,
        kdf=FAST_KDF,
        cache_root=tmp_path / "plain-cache",
    ) as dest:
        ((_, copy),) = copy_snapshots(source, dest, [original]).copied
        assert read_all(dest, copy) == files


def test_copy_map_trusts_directories_of_committed_runs_only(tmp_path: Path) -> None:
    def ids(n: int) -> BlobId:
        return BlobId(bytes([n]) * 32)

    index = [IndexId(bytes([9]) * 32)]
    path = tmp_path / "map"
    first = CopyMap(path, "test")
    first.begin(index)
    first.put_directory(ids(1), ids(2))
    first.put_blob(ids(3), ids(4))
    assert first.directory(ids(1)) == ids(2)  # this run's own entries
    first.commit(index)
    first.close()
    killed = CopyMap(path, "test")
    killed.begin(index)
    assert killed.directory(ids(1)) == ids(2)
    killed.put_directory(ids(5), ids(6))
    killed.close()  # never committed: as if killed after writing its entries
    later = CopyMap(path, "test")
    later.begin(index)
    assert later.directory(ids(5)) is None
    assert later.directory(ids(1)) == ids(2)
    assert later.blob(ids(3)) == ids(4)
    later.commit(index)
    later.close()
    pruned = CopyMap(path, "test")
    pruned.begin([IndexId(bytes([8]) * 32)])  # the index seen before is gone
    assert pruned.invalidated
    assert pruned.directory(ids(1)) is None
    assert pruned.blob(ids(3)) == ids(4)  # blob IDs stay true
    pruned.close()
