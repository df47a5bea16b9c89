"""Identifier types. IDs are 32 raw bytes; object names use 64 hex digits."""

from __future__ import annotations

from typing import NewType

BlobId = NewType("BlobId", bytes)
PackId = NewType("PackId", bytes)
SnapshotId = NewType("SnapshotId", bytes)
IndexId = NewType("IndexId", bytes)

ID_SIZE = 32

# Blob types (the type byte bound into each blob's associated data).
DATA = 0
TREE = 1

# Pack kinds, from the pack header: data packs and tree packs live apart.
PACK_DATA = 1
PACK_TREE = 2

PACK_KIND_FOR_TYPE = {DATA: PACK_DATA, TREE: PACK_TREE}


def to_hex(raw: bytes) -> str:
    """Hex form used in object names and messages."""
    return raw.hex()


def short(raw: bytes) -> str:
    """The first 8 hex digits, for messages and listings."""
    return raw.hex()[:8]


def from_hex(text: str) -> bytes:
    """Parse a full 64-digit ID. Raises ValueError on anything else."""
    raw = bytes.fromhex(text)
    if len(raw) != ID_SIZE:
        raise ValueError(f"not a 64-digit ID: {text!r}")
    return raw
