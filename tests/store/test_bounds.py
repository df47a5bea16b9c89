"""Hostile plaintexts sealed with a real key: bounded memory, explicit checks, one version error.

An attacker who holds a key (a former administrator) can produce objects that
authenticate. These tests seal such objects with the repository's own keys and
read them through the real paths: a decompression bomb or a tiny object
claiming a huge length is refused before anything large is allocated,
validation survives ``python -O``, and a version from the future is
FormatTooNew (exit code 14), not damage (13).
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import pytest
import zstandard

from store import FormatTooNew, IntegrityError, LocalBackend, Repository
from store.format.codec import decode
from store.format.crypto import (
    _SEALED_HEADER,
    SEALED_MAGIC,
    SEALED_VERSION,
    ZERO_NONCE,
    decode_payload,
    derive,
    encrypt,
    keyed_hash,
    unseal,
)
from store.format.index import IndexObject, PackRecord
from store.format.pack import BlobEntry, PackBuilder, read_trailer
from store.format.snapshot import Snapshot
from store.format.tree import Entry, Page
from store.ids import DATA, PACK_DATA, BlobId, IndexId, SnapshotId
from store.names import pack_name
from store.repository.blobread import read_blobs
from store.repository.marks import _decode as decode_mark
from store.repository.reader import ItemReader
from tests.cli.support.helpers import init, make_tree, new_env
from tests.store.support.helpers import make_repo, snapshot_of

# A bomb: 64 MiB of zeros in a zstd frame of a few KiB.
BOMB_SIZE = 64 * 1024 * 1024
# Reading a bomb must peak far below its size.
PEAK_LIMIT = 8 * 1024 * 1024


def _bomb() -> bytes:
    return zstandard.ZstdCompressor(level=19).compress(bytes(BOMB_SIZE))


def _frame_claiming(size: int) -> bytes:
    """A tiny zstd frame whose header claims ``size`` bytes of content.

    Magic, a descriptor with an 8-byte content size and single segment, the
    size, then one raw block of one byte.
    """
    return struct.pack("<IB", 0xFD2FB528, 0xE0) + struct.pack("<Q", size) + b"\x09\x00\x00a"


def _seal_payload(repo: Repository, kind: str, name: str, payload: bytes) -> bytes:
    """crypto.seal with an attacker-chosen payload (codec byte and body)."""
    kr = repo.keyring
    salt = os.urandom(32)
    header = _SEALED_HEADER.pack(SEALED_MAGIC, SEALED_VERSION, kr.current, salt)
    key = derive("coffer v1 object key", kr.current_key + salt)
    ad = header + kind.encode() + b"\x00" + name.encode()
    return header + encrypt(key, ZERO_NONCE, payload, ad)


def _peak(action: Callable[[], object]) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        action()
    except Exception as exc:  # returned to the test, which checks its type
        error: BaseException | None = exc
    else:
        error = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return error, peak


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    repository = make_repo(tmp_path / "repo")
    try:
        yield repository
    finally:
        repository.close()


def _store_blob(repo: Repository, blob_id: BlobId, raw_length: int, payload: bytes) -> None:
    """A pack holding one blob with this payload and recorded raw length, indexed."""
    kr = repo.keyring
    builder = PackBuilder(PACK_DATA, kr.current, kr.current_key)
    builder.add(DATA, blob_id, raw_length, payload)
    data, entries = builder.finish()
    repo.backend.put(pack_name(builder.pack_id, PACK_DATA), data)
    repo.write_index([PackRecord(builder.pack_id, PACK_DATA, kr.current, entries)])


# -- item 6: decompression bounded by the recorded length ----------------------


def test_blob_bomb_is_refused_before_it_is_decompressed(repo: Repository) -> None:
    blob_id = BlobId(keyed_hash(repo.keyring.blob_id_key, b"small"))
    _store_blob(repo, blob_id, 5, b"\x01" + _bomb())
    error, peak = _peak(lambda: repo.load_blob(blob_id))
    assert isinstance(error, IntegrityError)
    assert "recorded 5" in str(error)
    assert peak < PEAK_LIMIT


def test_blob_whose_recorded_length_disagrees_is_damage(repo: Repository) -> None:
    plain = b"twelve bytes" * 100
    blob_id = BlobId(keyed_hash(repo.keyring.blob_id_key, plain))
    _store_blob(repo, blob_id, len(plain) + 1, b"\x00" + plain)
    with pytest.raises(IntegrityError, match="recorded"):
        repo.load_blob(blob_id)


def test_blob_claiming_a_huge_length_is_refused_before_allocating(repo: Repository) -> None:
    blob_id = BlobId(keyed_hash(repo.keyring.blob_id_key, b"a"))
    _store_blob(repo, blob_id, 1, b"\x01" + _frame_claiming(1 << 40))
    error, peak = _peak(lambda: repo.load_blob(blob_id))
    assert isinstance(error, IntegrityError)
    assert peak < PEAK_LIMIT


def test_bulk_read_path_bounds_decompression_too(repo: Repository) -> None:
    blob_id = BlobId(keyed_hash(repo.keyring.blob_id_key, b"small"))
    _store_blob(repo, blob_id, 5, b"\x01" + _bomb())
    error, peak = _peak(lambda: list(read_blobs(repo, [blob_id])))
    assert isinstance(error, IntegrityError)
    assert peak < PEAK_LIMIT


def _store_blobs(repo: Repository, blobs: list[tuple[BlobId, int, bytes]]) -> None:
    """One pack holding these (ID, recorded raw length, payload) blobs, indexed."""
    kr = repo.keyring
    builder = PackBuilder(PACK_DATA, kr.current, kr.current_key)
    for blob_id, raw_length, payload in blobs:
        builder.add(DATA, blob_id, raw_length, payload)
    data, entries = builder.finish()
    repo.backend.put(pack_name(builder.pack_id, PACK_DATA), data)
    repo.write_index([PackRecord(builder.pack_id, PACK_DATA, kr.current, entries)])


def _zstd(plain: bytes) -> bytes:
    return b"\x01" + zstandard.ZstdCompressor(level=3, write_content_size=True).compress(plain)


def _batch(repo: Repository, seed: int) -> list[tuple[BlobId, bytes]]:
    """Six blobs of about 70 KiB compressed each, read in one range (with one
    cipher for all of them, store/repository/blobread.py)."""
    rng = random.Random(seed)
    plains = [rng.randbytes(70_000) + bytes(30_000) for _ in range(6)]
    return [(BlobId(keyed_hash(repo.keyring.blob_id_key, p)), p) for p in plains]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda frame: frame[:-500], "cannot decompress"),  # truncated
        (lambda frame: b"\x01" + _bomb(), "claims"),  # a bomb among honest frames
        (lambda frame: b"\x01" + _frame_claiming(1 << 40), "claims"),
        (lambda frame: _zstd(bytes(100_000)), "does not match its ID"),  # other content
    ],
)
def test_a_batch_of_frames_names_the_damaged_blob(
    repo: Repository, damage: Callable[[bytes], bytes], message: str
) -> None:
    blobs = _batch(repo, 3)
    payloads = [_zstd(plain) for _, plain in blobs]
    payloads[4] = damage(payloads[4])
    _store_blobs(
        repo, [(i, len(p), payload) for (i, p), payload in zip(blobs, payloads, strict=True)]
    )
    ids = [blob_id for blob_id, _ in blobs]
    error, peak = _peak(lambda: list(read_blobs(repo, ids, workers=0)))
    assert isinstance(error, IntegrityError)
    assert message in str(error)
    assert f"blob {ids[4].hex()[:8]}" in str(error)
    assert peak < PEAK_LIMIT + 2 * 1024 * 1024  # the honest frames' plaintexts


def test_a_batch_of_frames_reads_as_one_by_one(repo: Repository) -> None:
    blobs = _batch(repo, 4)
    raw = blobs[2]  # a raw payload in the middle of the batch
    _store_blobs(
        repo,
        [(i, len(p), b"\x00" + p if (i, p) == raw else _zstd(p)) for i, p in blobs],
    )
    ids = [blob_id for blob_id, _ in blobs]
    loaded = {blob.blob_id: blob.plaintext for blob in read_blobs(repo, ids, workers=0)}
    assert loaded == dict(blobs)
    assert all(repo.load_blob(blob_id) == plain for blob_id, plain in blobs)


def test_sealed_object_bomb_is_refused(repo: Repository) -> None:
    """A sealed object records no length: a 64 MiB plaintext from a few KiB is refused."""
    name = "index/" + "ab" * 32
    payload = b"\x01" + zstandard.ZstdCompressor(level=19).compress(bytes(BOMB_SIZE + 1))
    sealed = _seal_payload(repo, "index", name, payload)
    assert len(sealed) < 64 * 1024
    error, peak = _peak(lambda: unseal(sealed, repo.keyring.current_key, "index", name))
    assert isinstance(error, IntegrityError)
    assert peak < PEAK_LIMIT


def test_sealed_object_claiming_a_terabyte_is_refused(repo: Repository) -> None:
    name = "snapshots/" + "cd" * 32
    repo.backend.put(
        name, _seal_payload(repo, "snapshot", name, b"\x01" + _frame_claiming(1 << 40))
    )
    error, peak = _peak(lambda: repo.load_snapshot(SnapshotId(bytes.fromhex("cd" * 32))))
    assert isinstance(error, IntegrityError)
    assert peak < PEAK_LIMIT


def test_a_moderately_compressed_sealed_object_still_reads(repo: Repository) -> None:
    """The bound is generous for what Coffer writes: a 1 MiB report of repeated JSON."""
    report = {"problems": ["blob 0123abcd in pack 4567ef is missing"] * 25_000}
    key = repo.save_report("check", report)
    assert repo.load_report(key) == report


def test_msgpack_claiming_huge_lengths_is_refused_before_allocating() -> None:
    for raw in (
        b"\xdd\xff\xff\xff\xff",  # array of 2**32-1 items
        b"\xdf\xff\xff\xff\xff",  # map of 2**32-1 pairs
        b"\xc6\xff\xff\xff\xff",  # bin of 4 GiB
        b"\xdb\xff\xff\xff\xff",  # str of 4 GiB
        b"\x91" * 100_000 + b"\xc0",  # nesting deeper than any stack
    ):
        error, peak = _peak(lambda raw=raw: decode(raw, "hostile"))
        assert isinstance(error, IntegrityError), raw[:5]
        assert peak < PEAK_LIMIT


def test_huge_integers_where_ids_belong_are_refused_before_allocating() -> None:
    """``bytes(2**62)`` would try to allocate 4 EiB: IDs must be bin, never converted."""
    plain = msgpack.packb(
        {
            "v": 1,
            "owner": {"kind": "users", "key": "k", "name": "n"},
            "run": "r",
            "time": 1,
            "partial": False,
            "tree": 1 << 62,
        }
    )
    with pytest.raises(IntegrityError, match="tree"):
        Snapshot.decode(plain, SnapshotId(b"\x00" * 32), "snapshots/x")
    page = msgpack.packb({"v": 1, "p": [[b"a", 1 << 62, 1]]})
    with pytest.raises(IntegrityError, match="page ID"):
        Page.decode(page, "tree page")


# -- item 7: explicit checks survive python -O ----------------------------------


def test_blob_entry_validation_survives_python_optimize() -> None:
    script = (
        "from store.format.pack import BlobEntry\n"
        "from store.errors import IntegrityError\n"
        "for bad in ([0, b'short', 10, 20, 5], [0, b'x' * 32, -1, 20, 5],"
        " ['t', b'x' * 32, 10, 20, 5], [0, b'x' * 32, 10, 20], 'not a list'):\n"
        "    try:\n"
        "        BlobEntry.from_list(bad, 'pack')\n"
        "    except IntegrityError:\n"
        "        continue\n"
        "    raise SystemExit(f'accepted {bad!r}')\n"
    )
    result = subprocess.run(
        [sys.executable, "-O", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr + result.stdout


# -- item 8: one version check, one error ----------------------------------------


def _versioned(kind: str, version: int) -> bytes:
    entry = [0, b"\x01" * 32, 10, 30, 5]
    bodies: dict[str, dict[str, object]] = {
        "snapshot": {
            "owner": {"kind": "users", "key": "k", "name": "n"},
            "run": "r",
            "time": 1,
            "tree": b"\x02" * 32,
        },
        "index": {"packs": [[b"\x03" * 32, 1, 0, [entry]]], "supersedes": []},
        "tree": {"e": []},
        "mark": {"time": 1, "host": "h", "packs": [[b"\x04" * 32, 1, 0, [entry]]]},
    }
    return msgpack.packb({"v": version, **bodies[kind]})


DECODERS: dict[str, Callable[[bytes], object]] = {
    "snapshot": lambda raw: Snapshot.decode(raw, SnapshotId(b"\x00" * 32), "snapshots/x"),
    "index": lambda raw: IndexObject.decode(raw, "index/x"),
    "tree": lambda raw: Page.decode(raw, "tree page"),
    "mark": lambda raw: decode_mark(raw, "marks/x"),
}


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_a_newer_version_is_format_too_new_not_damage(kind: str) -> None:
    DECODERS[kind](_versioned(kind, 1))
    with pytest.raises(FormatTooNew) as raised:
        DECODERS[kind](_versioned(kind, 2))
    assert raised.value.exit_code == 14
    for bad in (0, -1, "1"):
        with pytest.raises(IntegrityError):
            DECODERS[kind](msgpack.packb({"v": bad}))


def test_cli_exits_14_on_a_snapshot_from_a_newer_coffer(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    source = tmp_path / "source"
    make_tree(source, files=3)
    env.run("backup", "--path", str(source))
    repo = Repository.open(
        LocalBackend(env.repo),
        env.password_file.read_bytes().rstrip(b"\n"),
        cache_root=tmp_path / "other-cache",
    )
    try:
        (snap,) = repo.list_snapshots()
        data = msgpack.unpackb(snap.encode())
        data["v"] = 2
        plain = msgpack.packb(data, use_bin_type=True)
        repo.save_object("snapshot", f"snapshots/{repo.object_id(plain).hex()}", plain)
    finally:
        repo.close()
    result = env.run("snapshots", check=False)
    assert result.code == 14, result.err
    assert "newer Coffer" in result.err
    assert "Traceback" not in result.err


def test_pack_trailer_with_hostile_entries_is_damage(repo: Repository) -> None:
    """A trailer sealed with the real pack key but listing a 5-byte blob ID."""
    snapshot_of(repo, {"a": b"x" * 100})
    record = next(iter(repo.load_index(IndexId(repo.list_index_ids()[0])).packs))
    data = repo.backend.get(pack_name(record.pack_id, record.kind))
    with pytest.raises(IntegrityError):
        read_trailer(data[:-1] + b"\x00", repo.keyring.current_key, record.pack_id, "pack")
    assert read_trailer(data, repo.keyring.current_key, record.pack_id, "pack")
    assert BlobEntry.from_list([0, b"\x05" * 32, 10, 30, 5], "x").raw_length == 5


def test_chunk_shorter_than_the_tree_says_is_damage_not_a_crash(repo: Repository) -> None:
    """A tree entry (sealed by a key holder) claiming 100 bytes for a 50-byte chunk."""
    with repo.blob_writer() as writer:
        chunk_id = writer.save_data(b"x" * 50)
    entry = Entry(name=b"f", type="f", size=100, chunks=((chunk_id, 100),))
    reader = ItemReader(entry, repo.chunk_cache)
    with pytest.raises(IntegrityError, match="the tree says 100"):
        reader.read()
    longer = Entry(name=b"g", type="f", size=20, chunks=((chunk_id, 20), (chunk_id, 20)))
    with pytest.raises(IntegrityError, match="the tree says 20"):
        ItemReader(longer, repo.chunk_cache).read()


def test_frame_claiming_more_than_zstd_can_expand_is_refused_before_allocating() -> None:
    """Found by fuzzing: a 17-byte frame claiming 80 MB, with a matching recorded length."""
    frame = _frame_claiming(80_000_000)
    error, peak = _peak(lambda: decode_payload(b"\x01" + frame, "blob", 80_000_000))
    assert isinstance(error, IntegrityError)
    assert peak < PEAK_LIMIT
    # The densest real frames stay within the bound.
    zeros = bytes(16 * 1024 * 1024)
    dense = zstandard.ZstdCompressor(level=22).compress(zeros)
    assert decode_payload(b"\x01" + dense, "blob", len(zeros)) == zeros
