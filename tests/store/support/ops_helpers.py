"""Shared helpers for the repository-operations tests (check, prune, forget, keys)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from pathlib import Path

from store import (
    BackupRun,
    CheckResult,
    CheckState,
    KdfParams,
    LocalBackend,
    Owner,
    Repository,
    Snapshot,
    check_repository,
    record_check,
)

CHEAP_KDF = KdfParams(iterations=1, lanes=1, memory_kib=8)
PASSWORD = b"correct horse"
HOUR = 3600 * 10**9
DAY = 24 * HOUR
# 2026-01-05 00:00:00 UTC, a Monday
T0 = 1_767_571_200 * 10**9


def make_repo(root: Path, *, pack_size: int | None = None) -> Repository:
    """A fresh repository under ``root`` (cache beside it), with cheap Argon2."""
    from store import RepoConfig

    config = RepoConfig.new(pack_size=pack_size) if pack_size else None
    return Repository.init(
        LocalBackend(root / "repo", durable=False),
        PASSWORD,
        kdf=CHEAP_KDF,
        cache_root=root / "cache",
        config=config,
    )


def reopen(repo: Repository, root: Path, password: bytes = PASSWORD) -> Repository:
    return Repository.open(
        LocalBackend(root / "repo", durable=False), password, cache_root=root / "cache"
    )


def backup(
    repo: Repository,
    owner: Owner,
    files: Mapping[str, bytes],
    *,
    time_ns: int | None = None,
    item_ids: Mapping[str, str] | None = None,
    report: bool = True,
) -> Snapshot:
    """One run backing up exactly ``files`` for ``owner`` (a full enumeration)."""
    with BackupRun(repo, time_ns=time_ns) as run, run.owner(owner) as session:
        session.full_scope()
        for path, content in sorted(files.items()):
            item_id = (item_ids or {}).get(path)
            version = hashlib.sha256(content).hexdigest()[:16]
            session.add_item(path, content, mtime_ns=1, item_id=item_id, version=version)
        snapshot = session.commit()
    if report:
        repo.save_report(
            "backup",
            {"run": run.run_id, "owners": [{"owner": owner.name, "snapshot": snapshot.id_hex}]},
        )
    return snapshot


def check(
    repo: Repository, *, read_data: bool = True, record: bool = False, workers: int = 1
) -> CheckResult:
    state = CheckState(repo.cache_dir)
    result = check_repository(repo, read_data=read_data, state=state, workers=workers)
    if record:
        record_check(repo, result, state)
    return result


def restore_all(repo: Repository, snapshot: Snapshot) -> dict[str, bytes]:
    """Every file of a snapshot, read back through the normal read path."""
    reader = repo.reader(snapshot)
    out = {}
    for path, entry in reader.walk(""):
        if entry.is_file:
            out[path] = reader.open(path).read()
    return out


def copy_tree(src: Path, dst: Path) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)


ALICE = Owner("users", "id-alice", "alice@example.com")
BOB = Owner("users", "id-bob", "bob@example.com")
SITE = Owner("sites", "id-site", "https://example.sharepoint.com/sites/hr")
