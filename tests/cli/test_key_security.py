"""Key-slot attacks through the real ``coffer`` executable: what the
administrator sees (one line per planted slot, exit codes), and --key-id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from store import Keyring, LocalBackend, Repository, WrongPassword
from store.format.keys import new_escrow_slot
from tests.cli.support.helpers import CofferEnv, init, new_env
from tests.store.support.key_helpers import legacy_bytes, read_keyset_json, write_keyset_json


def _planted(env: CofferEnv) -> tuple[str, str, x25519.X25519PrivateKey]:
    """Plant an escrow slot for an attacker's key: as a file and in the key set."""
    repo_id = json.loads((env.repo / "config").read_bytes().split(b"\n", 1)[0])["id"]
    private = x25519.X25519PrivateKey.generate()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = Keyring.generate()
    as_file = new_escrow_slot(repo_id, theirs, pem, label="backup escrow")
    (env.repo / as_file.legacy_name).write_bytes(legacy_bytes(as_file, theirs))
    in_set = new_escrow_slot(repo_id, theirs, pem, label="backup escrow")
    data = read_keyset_json(env.root)
    data["slots"][in_set.slot_id] = in_set.fields
    write_keyset_json(env.root, data)
    return as_file.slot_id, in_set.slot_id, private


def test_planted_slots_are_named_on_one_line_each_and_never_get_the_keys(tmp_path: Path) -> None:
    env = new_env(tmp_path)
    init(env)
    as_file, in_set, private = _planted(env)

    listed = env.run("key", "list").out
    assert "IGNORED: not part of the key set" in listed
    checked = env.run("check", check=False)
    assert checked.code == 13
    assert as_file in checked.err
    assert in_set[:8] in checked.err

    rotated = env.run("key", "rotate")
    lines = [line for line in rotated.err.splitlines() if "ignored, not given the new key" in line]
    assert len(lines) == 2
    assert any(as_file in line for line in lines)
    assert any(in_set[:8] in line for line in lines)
    assert "Traceback" not in rotated.err

    opened = env.run("snapshots", check=False)
    assert opened.code == 0
    with pytest.raises(WrongPassword, match="private key"):
        Repository.open(LocalBackend(env.repo), private_key=private, cache_root=tmp_path / "x")
    # The file stays quarantined until removed; removing it is journaled.
    env.run("key", "remove", as_file[:8])
    assert not (env.repo / "keys" / as_file).exists()
    assert env.run("check").code == 0


def test_key_id_names_the_slot_to_try(tmp_path: Path) -> None:
    env = new_env(tmp_path)
    init(env)
    slot = env.run("key", "list", "--json").json()[0]["slot_id"]
    assert env.run("--key-id", slot[:6], "snapshots").code == 0
    missing = env.run("--key-id", "ffffffffff", "snapshots", check=False)
    assert missing.code == 11
    assert "no key slot with ID 'ffffffffff'" in missing.err
    assert "Traceback" not in missing.err
