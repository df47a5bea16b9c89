"""A backup whose base names blobs that are in no index (store/backup/audit.py).

The situation is planted for real: a real backup writes the base (a complete
snapshot, or a checkpoint of a ``coffer backup`` killed with SIGKILL), then the
packs holding some of its blobs are deleted from storage and the index is
rewritten without them (what the blob writer before docs/engine.md's
"Checkpoint durability" fix left, or storage that lost a pack and its index
object). The next ``coffer backup`` must succeed, warn once, read those items
again, and commit a snapshot that ``check --read-data`` passes and that
restores to the source's bytes. Without the audit the next run either failed
the owner ("blob ... is not in any index") or committed a snapshot naming the
missing blobs, which check and restore then failed on.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from sources.folder import folder_owner
from store import Repository
from store.backend.local import LocalBackend
from store.format.snapshot import Snapshot
from store.format.tree import TreeReader
from store.ids import TREE, BlobId, PackId
from store.names import index_name, pack_name
from tests.cli.support.helpers import CofferEnv, files_of, init, make_tree, new_env

WARNING = "this backup builds on"
_HEX64 = re.compile("[0-9a-f]{64}")


def _source(tmp_path: Path, files: int) -> tuple[CofferEnv, Path]:
    """A new repository and a source tree of ``files`` files to back up into it."""
    env = new_env(tmp_path / "env")
    init(env)
    source = tmp_path / "src"
    make_tree(source, files=files)
    return env, source


def _planting(env: CofferEnv, tmp_path: Path) -> Repository:
    """The repository opened as the test's own client (its own cache, not the CLI's),
    to plant the loss with; a context manager that closes it."""
    return Repository.open(
        LocalBackend(env.repo),
        env.password_file.read_bytes().rstrip(b"\n"),
        cache_root=tmp_path / "plant-cache",
    )


def _base(repo: Repository, root: Path) -> Snapshot:
    """The snapshot the next backup of ``root`` builds on."""
    mine = [s for s in repo.list_snapshots() if s.owner.identity == folder_owner(root).identity]
    assert mine
    return max(mine, key=lambda s: (s.time_ns, not s.partial))


def _blobs(repo: Repository, snapshot: Snapshot) -> tuple[set[BlobId], set[BlobId], int]:
    """(data chunks, directories' root pages, files with content) of the snapshot."""
    reader = TreeReader(lambda blob_id: repo.load_blob(blob_id, TREE))
    data: set[BlobId] = set()
    pages: set[BlobId] = {snapshot.tree}
    files = 0
    stack = [snapshot.tree]
    while stack:
        page = stack.pop()
        for entry in reader.entries(page):
            data.update(chunk for chunk, _ in entry.chunks)
            files += bool(entry.chunks)
            if entry.subtree is not None:
                pages.add(entry.subtree)
                stack.append(entry.subtree)
    return data, pages, files


def lose(repo: Repository, blobs: Iterable[BlobId]) -> set[PackId]:
    """Delete the packs holding ``blobs`` and rewrite the index without them (one
    new index object superseding all the others, which are deleted). Returns the
    packs lost."""
    lost = {loc.pack_id for b in blobs if (loc := repo.blob_index.lookup(b)) is not None}
    assert lost
    old = repo.list_index_ids()
    records = [
        record
        for index_id in old
        for record in repo.load_index(index_id).packs
        if record.pack_id not in lost
    ]
    kinds = {
        record.pack_id: record.kind
        for index_id in old
        for record in repo.load_index(index_id).packs
        if record.pack_id in lost
    }
    repo.write_index(records, supersedes=old)
    for index_id in old:
        repo.backend.delete(index_name(index_id))
    for pack_id in lost:
        repo.backend.delete(pack_name(pack_id, kinds[pack_id]))
    return lost


def backup(env: CofferEnv, source: Path) -> tuple[dict[str, Any], str]:
    result = env.run("backup", "--path", str(source), "--json", check=False)
    assert result.code == 0, (result.code, result.err)
    report: dict[str, Any] = result.json()
    return report, result.err


def assert_whole(env: CofferEnv, source: Path, tmp_path: Path) -> None:
    """``check --read-data`` passes and the latest snapshot restores to the source."""
    check = env.run("check", "--read-data", check=False)
    assert check.code == 0, check.err + check.out
    target = tmp_path / f"restored-{time.monotonic_ns()}"
    env.run("restore", "latest", "--to-dir", str(target))
    assert files_of(target) == files_of(source)


def stats(report: dict[str, Any]) -> dict[str, Any]:
    """The snapshot stats of the one folder of a ``backup --path --json`` report."""
    (owner,) = report["owners"]
    out: dict[str, Any] = owner["stats"]
    return out


def test_a_complete_snapshot_whose_data_pack_is_lost_is_read_again(tmp_path: Path) -> None:
    """Storage lost the data pack (and its index entries) under the last snapshot; the
    source has not changed, so without the audit every item was kept as unchanged and
    the new snapshot named the lost chunks."""
    env, source = _source(tmp_path, 30)
    backup(env, source)
    with _planting(env, tmp_path) as repo:
        data, _, files = _blobs(repo, _base(repo, source))
        lose(repo, data)
    report, err = backup(env, source)
    assert_whole(env, source, tmp_path)
    assert err.count(WARNING) == 1, err
    assert stats(report)["base_reread"] == files


def _killed_after_checkpoints(env: CofferEnv, source: Path, count: int = 20) -> None:
    """``coffer backup`` checkpointing after every item, killed with SIGKILL once it has
    stored ``count`` checkpoints (each replaces the one before; hundreds of items are
    left to go)."""
    proc = env.popen("backup", "--path", str(source), "--checkpoint-interval", "0")
    snapshots = env.repo / "snapshots"
    seen: set[str] = set()
    deadline = time.monotonic() + 300
    try:
        while len(seen) < count:
            assert proc.poll() is None, f"the backup ended first: {proc.communicate()}"
            assert time.monotonic() < deadline
            if snapshots.is_dir():
                # A stored snapshot has its 64-hex-digit name (not a temporary file's).
                seen.update(p.name for p in snapshots.iterdir() if _HEX64.fullmatch(p.name))
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)


@pytest.mark.parametrize("cache", ["as the kill left it", "cleared"])
def test_the_checkpoint_of_a_killed_backup_whose_packs_are_lost_is_resumed(
    tmp_path: Path, cache: str
) -> None:
    """The checkpoint of a killed backup names chunks and tree pages in no index (the
    blob writer's old defect: its last packs were never uploaded). The kill usually
    lands inside a checkpoint's commit, which leaves the owner's catalogue to be
    rebuilt from the checkpoint's tree, as a cleared cache (another machine) does: that
    tree cannot be listed, and without the audit the owner failed with "blob ... is not
    in any index" (exit 13) on every run. Where the catalogue is still the
    checkpoint's, its items are read again one by one."""
    env, source = _source(tmp_path, 400)
    _killed_after_checkpoints(env, source)
    with _planting(env, tmp_path) as repo:
        base = _base(repo, source)
        assert base.partial
        data, pages, files = _blobs(repo, base)
        assert files
        lose(repo, data | pages)
    if cache == "cleared":
        shutil.rmtree(env.root / "cache")
    report, err = backup(env, source)
    assert_whole(env, source, tmp_path)
    assert err.count(WARNING) == 1, err
    # "all": nothing of the checkpoint could be listed, every item was read again.
    expected = ("all",) if cache == "cleared" else ("all", files)
    assert stats(report)["base_reread"] in expected
