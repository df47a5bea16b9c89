"""Every single-byte corruption and every deleted object is found by check --read-data.

The repository is small on purpose (two owners, a few files, two password
slots and an escrow slot, backup and check reports) so that the sweep over
every byte of every file stays quick; ``test_bigger_sweep`` (slow) does more
owners, more packs and three different corruptions per byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from store import Repository, add_escrow_slot, add_password_slot
from tests.store.support.ops_helpers import ALICE, BOB, CHEAP_KDF, SITE, backup, check, make_repo


def _escrow_pem() -> bytes:
    return (
        x25519.X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _small_repo(root: Path) -> Repository:
    """One of every kind of object: config, a password and an escrow slot, a
    data pack, a tree pack (two directory pages), an index object, a snapshot,
    and key, backup and check reports."""
    repo = make_repo(root)
    add_escrow_slot(repo, _escrow_pem())
    backup(repo, ALICE, {"inbox/1.eml": b"hello " * 50, "notes.txt": b"n"})
    baseline = check(repo, record=True)
    assert not baseline.problems, [p.message for p in baseline.problems]
    return repo


def _files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "repo").rglob("*") if p.is_file())


def _found(repo: Repository, rel: str) -> tuple[bool, list[str]]:
    result = check(repo)
    messages = [f"{p.key}: {p.message}" for p in result.errors]
    named = any(
        p.key == rel or rel in p.message or rel.rpartition("/")[2] in p.message
        for p in result.errors
    )
    return result.damaged and named, messages


def _sweep(root: Path, repo: Repository, flips: tuple[int, ...]) -> list[str]:
    missed: list[str] = []
    files = _files(root)
    assert files
    for path in files:
        rel = path.relative_to(root / "repo").as_posix()
        original = path.read_bytes()
        try:
            for position in range(len(original)):
                for flip in flips:
                    damaged = bytearray(original)
                    damaged[position] ^= flip
                    path.write_bytes(bytes(damaged))
                    found, messages = _found(repo, rel)
                    if not found:
                        missed.append(f"{rel} byte {position} ^{flip:#x}: {messages}")
            path.unlink()
            found, messages = _found(repo, rel)
            if not found:
                missed.append(f"{rel} deleted: {messages}")
        finally:
            path.write_bytes(original)
    return missed


def test_every_byte_and_every_object(tmp_path: Path) -> None:
    repo = _small_repo(tmp_path)
    kinds = {p.relative_to(tmp_path / "repo").parts[0] for p in _files(tmp_path)}
    assert kinds >= {"config", "keys", "data", "tree", "index", "snapshots", "reports"}
    missed = _sweep(tmp_path, repo, (0x01,))
    assert missed == []
    # And after all that, the repository is intact again.
    assert not check(repo).problems


def test_truncation_and_appended_bytes(tmp_path: Path) -> None:
    repo = _small_repo(tmp_path)
    missed = []
    for path in _files(tmp_path):
        rel = path.relative_to(tmp_path / "repo").as_posix()
        original = path.read_bytes()
        for damaged in (original[:-1], original + b"\x00", b""):
            path.write_bytes(damaged)
            found, messages = _found(repo, rel)
            if not found:
                missed.append(f"{rel} ({len(damaged)} bytes): {messages}")
        path.write_bytes(original)
    assert missed == []


@pytest.mark.slow
def test_bigger_sweep(tmp_path: Path) -> None:
    repo = _small_repo(tmp_path)
    add_password_slot(repo, b"second password", kdf=CHEAP_KDF)
    backup(repo, BOB, {"drive/a.bin": bytes(range(200))})
    backup(repo, SITE, {f"lib/doc{i}.txt": f"document {i} ".encode() * 40 for i in range(12)})
    backup(repo, ALICE, {"inbox/1.eml": b"hello " * 50, "inbox/2.eml": b"second mail" * 9})
    check(repo, record=True)
    assert _sweep(tmp_path, repo, (0x01, 0x80, 0xFF)) == []
