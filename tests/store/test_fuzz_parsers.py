"""Fuzzing every parser of stored bytes: only the documented errors, bounded memory.

Two kinds of hostile input go through the real decoding paths of a real
repository:

- plaintext chosen by an attacker who holds a key (a former administrator),
  sealed with the repository's real keys so it authenticates: structurally
  plausible objects with fields of any type and range, and mutated encodings;
- raw ciphertext: random or mutated sealed objects and packs.

Each target may raise only IntegrityError (13) or FormatTooNew (14), and must
stay under a memory bound (tests/fuzzing.py). ``COFFER_FUZZ_EXAMPLES`` sets the
number of inputs (docs/fuzzing.md).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from store import FormatTooNew, IntegrityError, Repository, StoreError
from store.format.config import decode_config, read_header
from store.format.crypto import (
    _SEALED_HEADER,
    SEALED_MAGIC,
    SEALED_VERSION,
    TRAILER_NONCE,
    ZERO_NONCE,
    decode_payload,
    derive,
    encrypt,
    seal,
)
from store.format.keys import Keyring, KeySlot
from store.format.pack import _HEADER, PACK_MAGIC, PACK_VERSION, pack_aead_key, read_trailer
from store.format.snapshot import OWNER_KINDS, format_time
from store.format.tree import Page
from store.ids import PACK_DATA, IndexId, PackId, SnapshotId
from store.maintenance.inventory import PackFile
from store.maintenance.packverify import verify_pack_bytes
from store.maintenance.prune.pruning import PruneOptions, prune
from store.names import CONFIG, MARKS
from store.repository.marks import load_mark
from tests.fuzzing import FUZZ, MISSING, bounded, json_values, maybe, mutated, record, values
from tests.store.support.helpers import make_repo

DOCUMENTED = (IntegrityError, FormatTooNew)

ids = st.binary(min_size=32, max_size=32)
u32 = st.integers(0, 2**32 - 1)
names = st.binary(min_size=1, max_size=12)
texts = st.text(max_size=20)
entries_of_pack = st.lists(
    st.lists(st.one_of(st.sampled_from([0, 1]), u32, ids, values), min_size=5, max_size=5)
    | st.tuples(st.sampled_from([0, 1]), ids, u32, u32, u32).map(list),
    max_size=4,
)


def _packed(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return mutated(strategy.map(lambda obj: msgpack.packb(obj, use_bin_type=True)))


snapshot_maps = record(
    {
        "v": maybe(st.just(1), st.integers(-2, 3) | values),
        "owner": maybe(
            record(
                {
                    "kind": maybe(st.sampled_from(OWNER_KINDS)),
                    "key": maybe(texts),
                    "name": maybe(texts),
                }
            )
        ),
        "run": maybe(texts),
        "time": maybe(st.integers(-(2**63), 2**64 - 1)),
        "partial": maybe(st.booleans()),
        "tree": maybe(ids),
        "parent": maybe(st.none() | ids),
        "sync": maybe(st.lists(ids, max_size=3)),
        "host": maybe(texts),
        "source": maybe(st.dictionaries(texts, values, max_size=3)),
        "stats": maybe(st.dictionaries(texts, values, max_size=3)),
        "tags": maybe(st.lists(texts, max_size=3)),
    }
)

pack_records = st.lists(
    st.tuples(maybe(ids), maybe(st.sampled_from([1, 2])), maybe(u32), maybe(entries_of_pack)).map(
        lambda t: [x for x in t if x is not MISSING]
    ),
    max_size=3,
)
index_maps = record(
    {
        "v": maybe(st.just(1), st.integers(-2, 3) | values),
        "packs": maybe(pack_records),
        "supersedes": maybe(st.lists(ids, max_size=2)),
    }
)
mark_maps = record(
    {
        "v": maybe(st.just(1), st.integers(-2, 3) | values),
        "time": maybe(st.integers(-(2**63), 2**64 - 1)),
        "host": maybe(texts),
        "packs": maybe(
            st.lists(
                st.tuples(
                    maybe(ids),
                    maybe(st.sampled_from([1, 2])),
                    maybe(st.none() | u32),
                    maybe(st.none() | entries_of_pack),
                ).map(lambda t: [x for x in t if x is not MISSING]),
                max_size=3,
            )
        ),
    }
)
entry_maps = record(
    {
        "n": maybe(names),
        "t": maybe(st.sampled_from(["f", "d", "l"])),
        "p": maybe(st.integers(0, 0o7777)),
        "m": maybe(st.integers(-(2**63), 2**63)),
        "s": maybe(st.integers(0, 2**40)),
        "c": maybe(st.lists(st.tuples(ids, st.integers(0, 2**22)).map(list), max_size=3)),
        "x": maybe(ids),
        "l": maybe(names),
        "v": maybe(texts),
        "i": maybe(texts),
        "a": maybe(st.dictionaries(texts, texts, max_size=2)),
    }
)
page_maps = st.one_of(
    record({"v": maybe(st.just(1)), "e": maybe(st.lists(entry_maps, max_size=4))}),
    record(
        {
            "v": maybe(st.just(1)),
            "p": maybe(
                st.lists(
                    st.tuples(maybe(names), maybe(ids), maybe(st.integers(0, 2**64 - 1))).map(
                        lambda t: [x for x in t if x is not MISSING]
                    ),
                    max_size=3,
                )
            ),
        }
    ),
)


def _new_repo(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Repository]:
    """A new repository (and its cache) under a new directory ``name``; closed on leaving."""
    base = tmp_path_factory.mktemp(name)
    with make_repo(base / "repo", cache=base / "cache") as repository:
        yield repository


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repository]:
    yield from _new_repo(tmp_path_factory, "fuzz")


@pytest.fixture(scope="module")
def quiet_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repository]:
    """A repository no other target writes into, for a target that lists the
    repository (prune): in the shared one it met every object the targets before
    it left (a hostile snapshot each), so each input cost more than the last and
    2000 inputs ran past pytest-timeout's 900 s (a FlakyFailure, as the replayed
    input was fast)."""
    yield from _new_repo(tmp_path_factory, "fuzz-quiet")


def _store(repo: Repository, kind: str, prefix: str, plain: bytes) -> bytes:
    """Seal ``plain`` with the real key under its content-derived name; return the ID."""
    object_id = repo.object_id(plain)
    repo.save_object(kind, prefix + object_id.hex(), plain)
    return object_id


# -- plaintext sealed with a real key ---------------------------------------------


@FUZZ
@given(plain=_packed(snapshot_maps))
def test_fuzz_snapshot(repo: Repository, plain: bytes) -> None:
    def read() -> None:
        snapshot_id = SnapshotId(_store(repo, "snapshot", "snapshots/", plain))
        try:
            snapshot = repo.load_snapshot(snapshot_id)
            # What `coffer snapshots` and the mount show of it.
            format_time(snapshot.time_ns)
            _ = snapshot.time, snapshot.owner.path, snapshot.owner.identity
        finally:
            repo.backend.delete(f"snapshots/{snapshot_id.hex()}")

    bounded("snapshot", read, DOCUMENTED)


@FUZZ
@given(plain=_packed(index_maps))
def test_fuzz_index(repo: Repository, plain: bytes) -> None:
    def read() -> None:
        index_id = IndexId(_store(repo, "index", "index/", plain))
        try:
            repo.load_index(index_id)
        finally:
            repo.backend.delete(f"index/{index_id.hex()}")

    bounded("index", read, DOCUMENTED)


@FUZZ
@given(plain=_packed(mark_maps))
def test_fuzz_mark(repo: Repository, plain: bytes) -> None:
    def read() -> None:
        mark_id = _store(repo, "mark", MARKS, plain)
        try:
            load_mark(repo, MARKS + mark_id.hex())
        finally:
            repo.backend.delete(MARKS + mark_id.hex())

    bounded("mark", read, DOCUMENTED)


@FUZZ
@given(plain=_packed(page_maps))
def test_fuzz_tree_page(plain: bytes) -> None:
    def read() -> None:
        page = Page.decode(plain, "tree page")
        _ = page.names, page.weight
        for entry in page.entries or ():
            _ = entry.st_mode, entry.display_name, entry.to_map()

    bounded("tree page", read, DOCUMENTED)


def _pack_with_trailer(repo: Repository, pack_id: bytes, body: bytes, payload: bytes) -> bytes:
    kr = repo.keyring
    header = _HEADER.pack(PACK_MAGIC, PACK_VERSION, PACK_DATA, kr.current)
    length = struct.pack(">I", len(payload) + 16)
    key = pack_aead_key(kr.current_key, pack_id)
    return header + body + encrypt(key, TRAILER_NONCE, payload, header + length) + length


@FUZZ
@given(
    pack_id=ids,
    body=st.binary(max_size=64),
    trailer=_packed(entries_of_pack | values),
    codec=st.sampled_from([b"\x00", b"\x00", b"\x01", b"\x07"]),
)
def test_fuzz_pack_trailer(
    repo: Repository, pack_id: bytes, body: bytes, trailer: bytes, codec: bytes
) -> None:
    payload = codec + (zstandard.compress(trailer) if codec == b"\x01" else trailer)
    data = _pack_with_trailer(repo, pack_id, body, payload)

    def read() -> None:
        read_trailer(data, repo.keyring.current_key, pack_id, "pack")

    bounded("pack trailer", read, DOCUMENTED)
    # What `check --read-data` does with the same pack: a verdict, never a crash.
    pack = PackFile(PackId(pack_id), PACK_DATA, len(data), "data/xx/pack")
    bounded("pack verify", lambda: verify_pack_bytes(data, pack, repo.keyring, None), ())


config_bodies = record(
    {
        "v": maybe(st.just(1)),
        "id": maybe(texts),
        "chunker": maybe(
            record({"min": maybe(u32), "avg": maybe(u32), "max": maybe(u32), "nc": maybe(u32)})
        ),
        "pack_size": maybe(u32),
        "zstd_level": maybe(st.integers(-5, 30)),
        "tree_split": maybe(st.dictionaries(texts, values, max_size=3)),
    }
)


@FUZZ
@given(header=json_values | st.just({"format": "coffer-repository"}), body=_packed(config_bodies))
def test_fuzz_config(repo: Repository, header: Any, body: bytes) -> None:
    if isinstance(header, dict) and header.get("format") == "coffer-repository":
        header.setdefault("version", 1)
        header.setdefault("id", repo.repo_id)
    line = json.dumps(header).encode()
    kr = repo.keyring
    raw = line + b"\n" + seal(kr.current, kr.current_key, "config", CONFIG, body, None, line)

    def read() -> None:
        decode_config(read_header(raw), kr)

    bounded("config", read, DOCUMENTED)


slot_fields = record(
    {
        "format": maybe(st.just("coffer-key"), json_values),
        "version": maybe(st.just(1), json_values | st.sampled_from([1e400, -1e400, 2.5])),
        "slot": maybe(st.just("00" * 16), json_values),
        "kind": maybe(st.sampled_from(["password", "escrow"]), json_values),
        "created": maybe(texts, json_values),
        "label": maybe(texts, json_values),
        "public_key": maybe(
            record(
                {
                    "alg": maybe(st.sampled_from(["x25519", "rsa-oaep-sha256"]), json_values),
                    "pem": maybe(texts, json_values),
                }
            ),
            json_values,
        ),
        "kdf": maybe(st.dictionaries(texts, json_values, max_size=3), json_values),
        "private_key": maybe(texts, json_values),
        "keyring": maybe(texts, json_values),
        "mac": maybe(st.just("00" * 32), json_values),
    }
)


@FUZZ
@given(raw=mutated(slot_fields.map(lambda f: json.dumps(f, indent=1, sort_keys=True).encode())))
def test_fuzz_key_slot(repo: Repository, raw: bytes) -> None:
    def read() -> None:
        slot = KeySlot.parse(raw, "keys/" + "00" * 16)
        slot.verify(raw, repo.keyring)

    bounded("key slot", read, (StoreError,))


keyring_maps = record(
    {
        "v": maybe(st.just(1)),
        "root": maybe(ids),
        "epochs": maybe(st.dictionaries(st.integers(0, 3), ids, max_size=2)),
        "current": maybe(st.integers(0, 3)),
    }
)


@FUZZ
@given(plain=_packed(keyring_maps))
def test_fuzz_keyring(plain: bytes) -> None:
    """The keyring inside a slot's box: anyone can seal a box to a slot's public key."""
    bounded("keyring", lambda: Keyring.decode(plain), DOCUMENTED)


session_maps = record(
    {
        "v": maybe(st.just(1)),
        "host": maybe(texts),
        "pid": maybe(u32),
        "started": maybe(st.integers(0, 2**63 - 1)),
        "refreshed": maybe(st.integers(0, 2**63 - 1)),
        "run": maybe(texts),
    }
)


@FUZZ
@given(plain=_packed(session_maps))
def test_fuzz_session_marker(quiet_repo: Repository, plain: bytes) -> None:
    """A session marker read by prune (dry run): a hostile one is a live writer, not a crash."""
    repo = quiet_repo
    key = "sessions/" + "ab" * 16

    def read() -> None:
        repo.save_object("session", key, plain)
        try:
            prune(repo, PruneOptions(dry_run=True))
        finally:
            repo.backend.delete(key)

    bounded("session marker", read, DOCUMENTED)


# -- raw ciphertext and payloads -----------------------------------------------------


def _sealed_payload(repo: Repository, kind: str, name: str, payload: bytes) -> bytes:
    kr = repo.keyring
    salt = os.urandom(32)
    header = _SEALED_HEADER.pack(SEALED_MAGIC, SEALED_VERSION, kr.current, salt)
    key = derive("coffer v1 object key", kr.current_key + salt)
    return header + encrypt(
        key, ZERO_NONCE, payload, header + kind.encode() + b"\x00" + name.encode()
    )


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        mutated(st.binary(max_size=60).map(lambda p: b"CFOB\x01" + bytes(4) + bytes(32) + p)),
    ),
    sealed_plain=st.binary(max_size=100),
    mutate_at=st.integers(0, 200),
)
def test_fuzz_sealed_ciphertext(
    repo: Repository, raw: bytes, sealed_plain: bytes, mutate_at: int
) -> None:
    name = "snapshots/" + "ee" * 32
    real = bytearray(
        seal(repo.keyring.current, repo.keyring.current_key, "snapshot", name, sealed_plain)
    )
    real[mutate_at % len(real)] ^= 0x01

    def read() -> None:
        for candidate in (raw, bytes(real)):
            repo.backend.put(name, candidate)
            try:
                repo.load_object("snapshot", name)
            except IntegrityError:
                continue
            raise AssertionError("damaged ciphertext was accepted")

    bounded("sealed ciphertext", read, DOCUMENTED)


@FUZZ
@given(raw=st.binary(max_size=300), pack_id=ids)
def test_fuzz_pack_bytes(repo: Repository, raw: bytes, pack_id: bytes) -> None:
    data = (
        _HEADER.pack(PACK_MAGIC, PACK_VERSION, PACK_DATA, repo.keyring.current) + raw
        if raw[:1] == b"\x00"
        else raw
    )
    bounded(
        "pack bytes", lambda: read_trailer(data, repo.keyring.current_key, pack_id, "p"), DOCUMENTED
    )
    pack = PackFile(PackId(pack_id), PACK_DATA, len(data), "data/xx/pack")
    bounded("pack verify", lambda: verify_pack_bytes(data, pack, repo.keyring, None), ())


zstd_frames = st.one_of(
    st.binary(max_size=200).map(zstandard.compress),
    st.binary(max_size=40),
    st.integers(0, 2**64 - 1).map(
        lambda n: struct.pack("<IB", 0xFD2FB528, 0xE0) + struct.pack("<Q", n) + b"\x09\x00\x00a"
    ),
)


@FUZZ
@given(
    codec=st.sampled_from([b"\x00", b"\x01", b"\x01", b"\x02"]),
    body=mutated(zstd_frames),
    expected=st.none() | st.integers(0, 2**32 - 1),
)
def test_fuzz_payload_codec(codec: bytes, body: bytes, expected: int | None) -> None:
    def read() -> None:
        plain = decode_payload(codec + body, "payload", expected)
        if expected is not None:
            assert len(plain) == expected

    bounded("payload codec", read, DOCUMENTED)
