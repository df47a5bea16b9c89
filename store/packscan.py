"""Reading whole packs back: verification and index reconstruction from packs alone.

A thin, repository-level face of :mod:`store.packverify` (which does the
work: trailer authentication covering the header, every blob decrypted and
re-hashed, blobs tiling the pack) for callers that hold a Repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from store.errors import IntegrityError
from store.ids import PACK_DATA, PACK_PREFIX, PACK_TREE, PackId, from_hex, pack_key
from store.index import PackRecord
from store.inventory import PackFile
from store.pack import BlobEntry
from store.packverify import verify_pack
from store.repository import Repository


@dataclass
class PackProblem:
    """A pack that failed verification, and the blobs that could still be read."""

    pack_id: PackId
    kind: int
    reason: str
    good: list[BlobEntry] = field(default_factory=list)
    bad: list[BlobEntry] = field(default_factory=list)


def list_packs(repo: Repository) -> Iterator[tuple[PackId, int, int]]:
    """(pack ID, kind, size) of every pack file in the repository."""
    for kind in (PACK_DATA, PACK_TREE):
        for info in repo.backend.list(f"{PACK_PREFIX[kind]}/"):
            name = info.key.rsplit("/", 1)[-1]
            try:
                yield PackId(from_hex(name)), kind, info.size
            except ValueError:
                continue  # not a pack (stray file); check reports it


def scan_pack(
    repo: Repository, pack_id: PackId, kind: int, size: int = 0
) -> tuple[PackRecord, PackProblem | None]:
    """Verify a pack blob by blob. Returns the record of its good blobs and,
    if anything is wrong (or it is missing), a problem naming good and bad blobs."""
    pack = PackFile(pack_id, kind, size, pack_key(pack_id, kind))
    verdict = verify_pack(repo.backend.get, pack, repo.keyring, None)
    record = PackRecord(pack_id, kind, verdict.epoch or 0, list(verdict.good))
    if verdict.ok:
        return record, None
    bad = [e for e in verdict.entries or [] if e.blob_id in verdict.bad]
    reasons = verdict.problems + sorted(set(verdict.bad.values()))
    reason = "; ".join(reasons) or "damaged"
    return record, PackProblem(pack_id, kind, reason, list(verdict.good), bad)


def read_pack(repo: Repository, pack_id: PackId, kind: int) -> PackRecord:
    """Read and verify a whole pack. Raises IntegrityError naming the fault."""
    record, problem = scan_pack(repo, pack_id, kind)
    if problem is not None:
        raise IntegrityError(f"pack {pack_id.hex()}: {problem.reason}")
    return record


def records_from_packs(repo: Repository) -> Iterator[PackRecord | PackProblem]:
    """Every pack's verified record (or its problem), for rebuilding the index."""
    for pack_id, kind, size in list_packs(repo):
        record, problem = scan_pack(repo, pack_id, kind, size)
        yield problem if problem is not None else record


__all__ = ["PackProblem", "list_packs", "read_pack", "records_from_packs", "scan_pack"]
