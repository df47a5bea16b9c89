"""Known-answer vectors of format version 1: how they are built.

Every object kind of store/FORMAT.md is built here through the real writing
functions, with fixed keys and fixed "random" inputs: while a vector is built,
``os.urandom`` (salts, pack IDs, slot IDs) and X25519 key generation draw from
a seeded stream, and the key slot's clock reads a fixed time. Nothing of the
format code is replaced. ``tests/data/make_vectors.py`` wrote the committed
``tests/data/vectors/v1.json`` with these builders once;
``tests/store/test_vectors.py`` checks that they still give those bytes and
that the committed bytes still decode to the values below.

Compressed payloads are pinned in the reading direction only: zstd's output
may change between zstd releases without changing the format. Every vector
written byte for byte uses the raw codec (``level=None``, or a payload too
small to compress).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from cryptography.hazmat.primitives.asymmetric import x25519

from store import ChunkerParams, Keyring
from store.format import keys as keys_module
from store.format.chunker import Chunker
from store.format.config import RepoConfig
from store.format.crypto import encode_payload, keyed_hash, seal
from store.format.index import IndexObject, PackRecord
from store.format.keys import KdfParams, new_password_slot
from store.format.pack import BlobEntry, PackBuilder
from store.format.snapshot import Owner, Snapshot
from store.format.tree import Entry, PageWriter, TreeSplitParams, interior_page, leaf_page
from store.ids import BlobId, IndexId, PackId
from store.repository.marks import MarkedPack, _encode

ROOT = bytes(range(32))
EPOCH_KEY = bytes(range(32, 64))
EPOCH_KEY_1 = bytes(range(64, 96))
KEYRING = Keyring(root=ROOT, epochs={0: EPOCH_KEY, 1: EPOCH_KEY_1}, current=1)
REPO_ID = "0123456789abcdef0123456789abcdef"
CREATED = "2026-01-05T00:00:00Z"
PASSWORD = b"vector password"
CHEAP_KDF = KdfParams(iterations=1, lanes=1, memory_kib=8)
T0 = 1_767_571_200 * 10**9


@contextlib.contextmanager
def fixed_entropy(seed: int) -> Iterator[None]:
    """Make ``os.urandom`` and X25519 key generation deterministic, and fix the slot clock."""
    rng = random.Random(seed)
    saved = (os.urandom, x25519.X25519PrivateKey.__dict__["generate"], keys_module._now_iso)

    def urandom(size: int) -> bytes:
        return rng.randbytes(size)

    def generate() -> x25519.X25519PrivateKey:
        return x25519.X25519PrivateKey.from_private_bytes(rng.randbytes(32))

    os.urandom = urandom
    x25519.X25519PrivateKey.generate = staticmethod(generate)  # type: ignore[method-assign,assignment]
    keys_module._now_iso = lambda: CREATED
    try:
        yield
    finally:
        os.urandom = saved[0]
        setattr(x25519.X25519PrivateKey, "generate", saved[1])  # noqa: B010
        keys_module._now_iso = saved[2]


def blob_id(data: bytes) -> BlobId:
    return BlobId(keyed_hash(KEYRING.blob_id_key, data))


def chunker_input() -> bytes:
    return bytes((i * 7919 + (i >> 8) * 31) % 251 for i in range(200_000))


def chunker_input_default() -> bytes:
    return random.Random(7).randbytes(3_000_000)


def chunk_sizes() -> dict[str, list[int]]:
    small = Chunker(ChunkerParams(min=1024, normal_size=4096, max=16384), KEYRING.chunker_seed)
    default = Chunker(ChunkerParams(), KEYRING.chunker_seed)
    return {
        "small": [len(c) for c in small.cut_bytes(chunker_input())],
        "default": [len(c) for c in default.cut_bytes(chunker_input_default())],
    }


SEALED_NAME = "snapshots/" + "ab" * 32
SEALED_PLAINTEXT = b"a sealed object's plaintext"
SEALED_ZSTD_PLAINTEXT = b"compressible plaintext, " * 20


def sealed() -> bytes:
    with fixed_entropy(1):
        return seal(1, EPOCH_KEY_1, "snapshot", SEALED_NAME, SEALED_PLAINTEXT)


def sealed_zstd() -> bytes:
    with fixed_entropy(2):
        return seal(1, EPOCH_KEY_1, "report", "reports/backup/x", SEALED_ZSTD_PLAINTEXT)


PACK_BLOB = b"one data blob in a pack\n"
TREE_PACK_BLOBS = (b"first tree blob", b"second tree blob " * 10, b"")


def data_pack() -> tuple[PackId, bytes]:
    """A data pack of epoch 1 with one raw blob (one blob: no shuffle to pin)."""
    with fixed_entropy(3):
        builder = PackBuilder(1, 1, EPOCH_KEY_1)
        builder.add(0, blob_id(PACK_BLOB), len(PACK_BLOB), encode_payload(PACK_BLOB, None))
        data, _ = builder.finish()
    return builder.pack_id, data


def tree_pack() -> tuple[PackId, bytes]:
    """A tree pack of epoch 0 with three blobs, one compressed (read direction only)."""
    with fixed_entropy(4):
        builder = PackBuilder(2, 0, EPOCH_KEY)
        for data in TREE_PACK_BLOBS:
            builder.add(1, blob_id(data), len(data), encode_payload(data, 3))
        raw, _ = builder.finish()
    return builder.pack_id, raw


INDEX_PACK_A = PackId(bytes([0xA0]) * 32)
INDEX_PACK_B = PackId(bytes([0xB0]) * 32)


def index_object() -> IndexObject:
    return IndexObject(
        packs=[
            PackRecord(
                INDEX_PACK_A,
                1,
                1,
                [
                    BlobEntry(0, blob_id(b"x"), 10, 41, 24),
                    BlobEntry(0, blob_id(b"y"), 51, 1000, 2000),
                ],
            ),
            PackRecord(INDEX_PACK_B, 2, 0, [BlobEntry(1, blob_id(b"z"), 10, 77, 60)]),
        ],
        supersedes=[IndexId(bytes([0xCC]) * 32)],
    )


def sealed_object(kind: str, prefix: str, plain: bytes, seed: int) -> tuple[str, bytes]:
    """Seal ``plain`` as the repository does, under ``prefix`` + its keyed ID (raw codec)."""
    name = prefix + keyed_hash(KEYRING.blob_id_key, plain).hex()
    with fixed_entropy(seed):
        return name, seal(KEYRING.current, KEYRING.current_key, kind, name, plain, None)


TREE_ENTRIES = (
    Entry(
        name=b"a file.txt",
        type="f",
        mode=0o640,
        mtime_ns=T0 + 123,
        size=300,
        chunks=((blob_id(b"c1"), 100), (blob_id(b"c2"), 200)),
        version="etag-1",
        item_id="ITEM-1",
        attrs={"z": "last", "a": "first"},
    ),
    Entry(name=b"folder", type="d", mode=0o755, mtime_ns=T0, subtree=blob_id(b"sub")),
    Entry(name=b"link", type="l", mode=0o777, mtime_ns=T0 - 1, target=b"../elsewhere"),
)


def tree_leaf() -> bytes:
    return leaf_page([entry.encode() for entry in TREE_ENTRIES])


def tree_interior() -> bytes:
    return interior_page([(b"a", blob_id(b"p1"), 16), (b"m", blob_id(b"p2"), 40)])


def tree_split() -> list[list[Any]]:
    """Page boundaries of a 300-entry directory: [first name, page ID hex, count] per page."""
    pages: list[bytes] = []

    def save(page: bytes) -> BlobId:
        pages.append(page)
        return blob_id(page)

    writer = PageWriter(save, TreeSplitParams(), KEYRING.tree_split_key)
    for i in range(300):
        name = f"item-{i:04d}".encode()
        writer.add(name, Entry(name=name, type="f", size=i).encode())
    root = writer.finish()
    out: list[list[Any]] = [[root.hex(), len(pages)]]
    return out + [[blob_id(p).hex()] for p in pages]


SNAPSHOT = Snapshot(
    owner=Owner("users", "2f1c-id", "ann@contoso.com"),
    run="11" * 16,
    time_ns=T0 + 5,
    tree=blob_id(b"root page"),
    partial=False,
    parent=None,
    sync=(blob_id(b"sync 1"), blob_id(b"sync 2")),
    host="vector-host",
    source={"delta": "token"},
    stats={"items_new": 3},
    tags=("nightly",),
)


MARK_TIME = T0 + 7
MARK_HOST = "vector-host"
MARK_PACKS = [
    MarkedPack(INDEX_PACK_A, 1, 1, (BlobEntry(0, blob_id(b"x"), 10, 41, 24),)),
    MarkedPack(INDEX_PACK_B, 2, None, None),
]


def mark_plain() -> bytes:
    return _encode(MARK_TIME, MARK_HOST, list(MARK_PACKS))


def key_slot() -> bytes:
    with fixed_entropy(8):
        slot = new_password_slot(
            REPO_ID, KEYRING, PASSWORD, label="vector", kdf=CHEAP_KDF, slot_id="5e" * 16
        )
    return slot.to_json()


def config_object() -> bytes:
    with fixed_entropy(9):
        return RepoConfig(repo_id=REPO_ID, created=CREATED).encode(KEYRING)


def build() -> dict[str, Any]:
    """Every vector, as committed in tests/data/vectors/v1.json (bytes as hex)."""
    data_id, data_bytes = data_pack()
    tree_id, tree_bytes = tree_pack()
    index_plain = index_object().encode()
    index_name, index_sealed = sealed_object("index", "index/", index_plain, 5)
    snap_plain = SNAPSHOT.encode()
    snap_name, snap_sealed = sealed_object("snapshot", "snapshots/", snap_plain, 6)
    mark_name, mark_sealed = sealed_object("mark", "marks/", mark_plain(), 7)
    return {
        "keyring": KEYRING.encode().hex(),
        "chunks": chunk_sizes(),
        "sealed": sealed().hex(),
        "sealed_zstd": sealed_zstd().hex(),
        "data_pack": {"id": data_id.hex(), "bytes": data_bytes.hex()},
        "tree_pack": {"id": tree_id.hex(), "bytes": tree_bytes.hex()},
        "index": {"plain": index_plain.hex(), "name": index_name, "bytes": index_sealed.hex()},
        "tree_leaf": tree_leaf().hex(),
        "tree_interior": tree_interior().hex(),
        "tree_split": tree_split(),
        "snapshot": {"plain": snap_plain.hex(), "name": snap_name, "bytes": snap_sealed.hex()},
        "mark": {"plain": mark_plain().hex(), "name": mark_name, "bytes": mark_sealed.hex()},
        "key_slot": key_slot().decode(),
        "config": config_object().hex(),
        "config_params": config_params(),
    }


def config_params() -> dict[str, object]:
    """The default parameters, the chunker's as the config object stores them."""
    config = RepoConfig(repo_id=REPO_ID, created=CREATED)
    return {**asdict(config), "chunker": config.chunker.to_map()}
