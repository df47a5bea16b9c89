"""Helpers for the key-slot attack and crash tests.

:func:`make_legacy_repo` writes a repository exactly as Coffer did before
the key set: one ``keys/<slot id>`` file per slot, its ``mac`` keyed by
``derive("coffer v1 slot mac", root)`` over the canonical JSON of the other
fields, no ``epoch`` field (the slot format of FORMAT.md §3, version 1).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from store import KdfParams, Keyring, KeySlot, LocalBackend, Repository
from store.format.crypto import keyed_hash
from store.format.keys import new_escrow_slot, new_password_slot

CHEAP_KDF = KdfParams(iterations=1, lanes=1, memory_kib=8)
PASSWORD = b"correct horse"


def canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, indent=1, sort_keys=True).encode()


def legacy_bytes(slot: KeySlot, keyring: Keyring) -> bytes:
    """``slot`` as a pre-key-set ``keys/<slot id>`` file MACed under ``keyring``'s root."""
    body = {k: v for k, v in slot.fields.items() if k not in ("mac", "epoch")}
    body["mac"] = keyed_hash(keyring.slot_mac_key, canonical(body)).hex()
    return canonical(body)


def keyset_path(root: Path) -> Path:
    return root / "repo" / "keys" / "keyset"


def read_keyset_json(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(keyset_path(root).read_bytes())
    return data


def write_keyset_json(root: Path, data: dict[str, Any]) -> None:
    """Rewrite keys/keyset as someone with write access to the storage would."""
    keyset_path(root).write_bytes(canonical(data))


def make_legacy_repo(
    root: Path, passwords: list[bytes], escrow_pems: list[bytes] | None = None
) -> tuple[Keyring, list[KeySlot]]:
    """A repository under ``root/repo`` with legacy slot files, one per password/escrow key.

    Returns the keyring and the slots. No cache anchor is left behind.
    """
    repo = Repository.init(
        LocalBackend(root / "repo", durable=False),
        passwords[0],
        kdf=CHEAP_KDF,
        cache_root=root / "init-cache",
    )
    keyring, repo_id = repo.keyring, repo.repo_id
    if keyset_path(root).exists():
        first = canonical(read_keyset_json(root)["slots"][repo.slot_id])
        keyset_path(root).unlink()
    else:  # a Coffer from before the key set (to show these tests fail against it)
        first = (root / "repo" / "keys" / repo.slot_id).read_bytes()
    repo.close()
    shutil.rmtree(root / "init-cache")
    slots = [KeySlot.parse(first, "first")]
    slots += [new_password_slot(repo_id, keyring, p, kdf=CHEAP_KDF) for p in passwords[1:]]
    slots += [new_escrow_slot(repo_id, keyring, pem) for pem in escrow_pems or []]
    for slot in slots:
        (root / "repo" / slot.legacy_name).write_bytes(legacy_bytes(slot, keyring))
    return keyring, slots


def open_repo(root: Path, password: bytes, cache: str, **kwargs: Any) -> Repository:
    return Repository.open(
        LocalBackend(root / "repo", durable=False), password, cache_root=root / cache, **kwargs
    )
