"""Helpers for engine tests: repositories with cheap keys, snapshots from dicts."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import strategies as st

from store import (
    BackupRun,
    ChunkerParams,
    IntegrityError,
    KdfParams,
    LocalBackend,
    Owner,
    RepoConfig,
    Repository,
    Snapshot,
)
from store.format.index import PackRecord
from store.maintenance.inventory import take_inventory
from store.maintenance.packverify import verify_pack

FAST_KDF = KdfParams(iterations=1, lanes=1, memory_kib=8192)
PASSWORD = b"correct horse battery staple"
# Small chunks so that modest test inputs exercise chunking and packing.
SMALL_CHUNKS = ChunkerParams(min=1024, normal_size=4096, max=16384)

# Cases of a chunking test, for ``@given(*CUT_CASES)``: (size, seed of the
# test's random.Random, period of periodic_content, most bytes per read or write).
CUT_CASES = (
    st.integers(min_value=0, max_value=200_000),
    st.integers(min_value=1, max_value=2**62),
    st.integers(min_value=1, max_value=255),
    st.sampled_from([1, 700, 5000, 40_000, 1 << 20]),
)


class Clock:
    """A clock the test moves: a call returns ``now`` (seconds), which the test sets."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def periodic_content(rng: random.Random, size: int, period: int) -> bytes:
    """``size`` bytes: random ones, then runs of ``period`` bytes repeated (FastCDC's
    worst case: cuts at max size)."""
    half = size // 2
    return (rng.randbytes(half) + bytes(range(period)) * ((size - half) // period + 1))[:size]


def make_repo(
    path: Path, *, small: bool = False, pack_size: int | None = None, cache: Path | None = None
) -> Repository:
    overrides: dict[str, object] = {}
    if small:
        overrides["chunker"] = SMALL_CHUNKS
    if pack_size is not None:
        overrides["pack_size"] = pack_size
    return Repository.init(
        LocalBackend(path, durable=False),
        PASSWORD,
        kdf=FAST_KDF,
        config=RepoConfig.new(**overrides),
        cache_root=cache or path.parent / f"{path.name}-cache",
    )


def reopen(repo: Repository, *, cache: Path | None = None) -> Repository:
    root = Path(repo.backend.location)
    repo.close()
    return Repository.open(
        LocalBackend(root, durable=False),
        PASSWORD,
        cache_root=cache or root.parent / f"{root.name}-cache",
    )


OWNER = Owner("folders", "test:/data", "test:/data")


def snapshot_of(
    repo: Repository, files: dict[str, bytes], owner: Owner = OWNER, *, full: bool = True
) -> Snapshot:
    """Commit ``files`` (path -> content) as one snapshot of ``owner``."""
    with BackupRun(repo) as run, run.owner(owner) as session:
        if full:
            session.full_scope()
        for path, content in files.items():
            session.add_item(path, content, mtime_ns=1_000_000_000, version=str(hash(content)))
        return session.commit()


def read_all(repo: Repository, snapshot: Snapshot) -> dict[str, bytes]:
    reader = repo.reader(snapshot)
    return {path: reader.open(entry).read() for path, entry in reader.walk() if entry.is_file}


def verified_pack_records(repo: Repository) -> list[PackRecord]:
    """Read back and verify every pack file the repository lists (what check
    --read-data and repair index do), returning each one's record rebuilt from
    the pack alone. Raises IntegrityError naming the first damaged pack."""
    records = []
    for pack in take_inventory(repo.backend).packs.values():
        verdict = verify_pack(repo.backend.get, pack, repo.keyring, None)
        if not verdict.ok:
            reasons = verdict.problems + sorted(set(verdict.bad.values()))
            raise IntegrityError(f"pack {pack.pack_id.hex()}: {'; '.join(reasons) or 'damaged'}")
        records.append(PackRecord(pack.pack_id, pack.kind, verdict.epoch or 0, list(verdict.good)))
    return records
