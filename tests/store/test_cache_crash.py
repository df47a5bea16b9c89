"""The local blob index after a crash: truncated, reverted, or ahead of the storage.

Each test simulates what an OS crash (or a lost write) can leave behind, then
runs the real ``coffer`` executable: the next backup must store everything its
snapshot references (``check --read-data`` passes and a restore gives back the
source). The CLI runs in a child process because a truncated LMDB file used to
kill the process with SIGBUS.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import lmdb

from store.cache.blobindex import BlobIndex
from tests.cli.support.helpers import CofferEnv, files_of, init, make_tree, new_env


def _blob_index_dir(env: CofferEnv) -> Path:
    (found,) = (env.root / "cache" / "coffer").glob("*/blobs")
    return found


def _backup_check_restore(env: CofferEnv, source: Path, tmp_path: Path, name: str) -> None:
    env.run("backup", "--path", str(source))
    env.run("check", "--read-data")
    target = tmp_path / name
    env.run("restore", "latest", "--to-dir", str(target))
    assert files_of(target) == files_of(source)


def test_truncated_blob_index_is_rebuilt_and_the_next_backup_is_whole(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    source = tmp_path / "source"
    make_tree(source, files=60)
    env.run("backup", "--path", str(source))
    data = _blob_index_dir(env) / "data.mdb"
    assert data.stat().st_size > 4 * 4096
    # Keep the two meta pages, lose every page they point to.
    with data.open("r+b") as handle:
        handle.truncate(2 * 4096)
    (source / "new-after-crash.txt").write_bytes(b"written after the crash\n" * 50)
    _backup_check_restore(env, source, tmp_path, "restored")


def test_blob_index_ahead_of_lost_storage_writes_is_rebuilt(tmp_path: Path) -> None:
    """The storage lost the last backup's packs and index; the cache still names them."""
    env = new_env(tmp_path / "env")
    init(env)
    source = tmp_path / "source"
    make_tree(source, files=30)
    env.run("backup", "--path", str(source))
    saved = tmp_path / "repo-before"
    shutil.copytree(env.repo, saved)
    for i in range(10):
        (source / f"second-{i}.bin").write_bytes(bytes([i]) * 5000 + str(i).encode() * 999)
    env.run("backup", "--path", str(source))
    shutil.rmtree(env.repo)
    shutil.copytree(saved, env.repo)
    # The same content again: dedup must not trust the cache's claims.
    _backup_check_restore(env, source, tmp_path, "restored")


def test_blob_index_reverted_to_before_a_prune_is_rebuilt(tmp_path: Path) -> None:
    """An older copy of the cache names packs that prune has deleted since."""
    env = new_env(tmp_path / "env")
    init(env)
    source = tmp_path / "source"
    make_tree(source, files=30)
    doomed = source / "doomed.bin"
    # Incompressible and most of its pack, so prune rewrites or deletes that pack.
    doomed.write_bytes(random.Random(7).randbytes(3 * 1024 * 1024))
    env.run("backup", "--path", str(source))
    (index_before,) = (p.name for p in (env.repo / "index").iterdir())
    old_cache = tmp_path / "blobs-before"
    shutil.copytree(_blob_index_dir(env), old_cache)
    content = doomed.read_bytes()
    doomed.unlink()
    env.run("backup", "--path", str(source))
    env.run("forget", "--keep-last", "1")
    env.run("prune", "--grace", "0h")
    env.run("prune", "--grace", "0h")
    assert not (env.repo / "index" / index_before).exists()
    blobs = _blob_index_dir(env)
    shutil.rmtree(blobs)
    shutil.copytree(old_cache, blobs)
    doomed.write_bytes(content)
    _backup_check_restore(env, source, tmp_path, "restored")


def test_blob_index_commits_are_durable(tmp_path: Path) -> None:
    """Data pages reach the disk before the meta page naming them (no torn state)."""
    index = BlobIndex(tmp_path / "blobs")
    try:
        env = index.env
        assert isinstance(env, lmdb.Environment)
        flags = env.flags()
        assert flags["sync"]
        assert flags["metasync"]
    finally:
        index.close()
