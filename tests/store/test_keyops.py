"""Key slots: add, remove, passwd, rotate, escrow (X25519 and RSA), recovery, damage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, x25519

from store import (
    MAX_SLOTS,
    KeySlotDamaged,
    LocalBackend,
    Repository,
    StoreError,
    WrongPassword,
    add_escrow_slot,
    add_password_slot,
    change_password,
    recover_with_escrow,
    remove_slot,
    rotate_master_key,
    slot_statuses,
)
from store.format.pack import read_header
from tests.store.support.ops_helpers import (
    ALICE,
    BOB,
    CHEAP_KDF,
    PASSWORD,
    backup,
    check,
    make_repo,
    restore_all,
)


def open_with(root: Path, password: bytes, cache: str = "other-cache") -> Repository:
    return Repository.open(LocalBackend(root / "repo"), password, cache_root=root / cache)


def read_keyset_json(root: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((root / "repo" / "keys" / "keyset").read_bytes())  # type: ignore[no-any-return]


def edit_keyset(root: Path, change: object) -> None:
    """Rewrite keys/keyset as someone with write access to the storage would."""
    data = read_keyset_json(root)
    change(data)  # type: ignore[operator]
    (root / "repo" / "keys" / "keyset").write_text(json.dumps(data, indent=1, sort_keys=True))


def public_pem(private: x25519.X25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_add_then_open_with_either_password(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    slot = add_password_slot(repo, b"second", kdf=CHEAP_KDF, label="ops team")
    assert open_with(tmp_path, b"second").slot_id == slot.slot_id
    assert open_with(tmp_path, PASSWORD).slot_id == repo.slot_id
    statuses = slot_statuses(repo)
    assert [s.label for s in statuses if not s.current] == ["ops team"]
    assert all(s.problem is None for s in statuses)
    assert not check(repo).problems


def test_wrong_password_names_the_slots_tried(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    add_password_slot(repo, b"second", kdf=CHEAP_KDF, label="ops team")
    with pytest.raises(WrongPassword) as info:
        open_with(tmp_path, b"nope")
    message = str(info.value)
    assert repo.slot_id[:8] in message
    assert "ops team" in message
    assert info.value.exit_code == 11


def test_remove_rules(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    with pytest.raises(StoreError, match="in use"):
        remove_slot(repo, repo.slot_id[:8])
    second = add_password_slot(repo, b"second", kdf=CHEAP_KDF)
    via_second = open_with(tmp_path, b"second")
    remove_slot(via_second, repo.slot_id[:8])  # the first password goes
    with pytest.raises(WrongPassword):
        open_with(tmp_path, PASSWORD)
    with pytest.raises(StoreError, match="in use"):
        remove_slot(via_second, second.slot_id)
    # An escrow slot does not count as a password: the last password stays.
    escrow = add_escrow_slot(via_second, public_pem(x25519.X25519PrivateKey.generate()))
    other = open_with(tmp_path, b"second", "c3")
    assert remove_slot(other, escrow.slot_id[:6]) == escrow.slot_id
    # A process that opened before a key change refuses to change keys with
    # its outdated keyring (it would see every current slot as stale).
    with pytest.raises(StoreError, match="open the repository again"):
        add_password_slot(via_second, b"third", kdf=CHEAP_KDF)
    assert not check(open_with(tmp_path, b"second", "c4")).errors  # the removal is journaled


def test_the_last_password_slot_cannot_be_removed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    private = x25519.X25519PrivateKey.generate()
    add_escrow_slot(repo, public_pem(private))
    by_escrow = Repository.open(
        LocalBackend(tmp_path / "repo"), private_key=private, cache_root=tmp_path / "c2"
    )
    with pytest.raises(StoreError, match="last password"):
        remove_slot(by_escrow, repo.slot_id)


def test_passwd_replaces_the_password_of_the_slot_in_use(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    slot = change_password(repo, b"new one", kdf=CHEAP_KDF)
    assert slot.slot_id == repo.slot_id
    with pytest.raises(WrongPassword):
        open_with(tmp_path, PASSWORD)
    assert open_with(tmp_path, b"new one").slot_id == repo.slot_id


def test_rotate(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    before = backup(repo, ALICE, {"old.txt": b"written before the rotation"})
    removed = add_password_slot(repo, b"leaver", kdf=CHEAP_KDF)
    removed_entry = read_keyset_json(tmp_path)["slots"][removed.slot_id]
    remove_slot(repo, removed.slot_id)  # rotates: epoch 1
    add_password_slot(repo, b"stays", kdf=CHEAP_KDF)
    old_packs = {info.key for info in repo.backend.list("data/")}
    rotation = rotate_master_key(repo)
    assert rotation.epoch == 2
    assert len(rotation.rewrapped) == 2
    after = backup(repo, BOB, {"new.txt": b"written after the rotation"})
    new_packs = {info.key for info in repo.backend.list("data/")} - old_packs
    assert new_packs
    for key in new_packs:
        assert read_header(repo.backend.get(key, 0, 10), key)[1] == 2
    # Every remaining slot opens the new keyring; old and new data both read.
    for password in (PASSWORD, b"stays"):
        other = open_with(tmp_path, password, f"cache-{password.decode()}")
        assert other.keyring.current == 2
        assert restore_all(other, before) == {"old.txt": b"written before the rotation"}
        assert restore_all(other, after) == {"new.txt": b"written after the rotation"}
    assert not check(repo).problems
    # A copy of the removed slot put back into the key set opens nothing.
    edit_keyset(tmp_path, lambda ks: ks["slots"].update({removed.slot_id: removed_entry}))
    with pytest.raises(WrongPassword, match="not current"):
        open_with(tmp_path, b"leaver", "leaver-cache")


@pytest.mark.parametrize("algorithm", ["x25519", "rsa"])
def test_escrow_recovery(tmp_path: Path, algorithm: str) -> None:
    repo = make_repo(tmp_path)
    snap = backup(repo, ALICE, {"a": b"important"})
    private: x25519.X25519PrivateKey | rsa.RSAPrivateKey = (
        x25519.X25519PrivateKey.generate()
        if algorithm == "x25519"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    slot = add_escrow_slot(repo, public_pem(private), label="admin")
    assert slot.fields["public_key"]["alg"] == (
        "x25519" if algorithm == "x25519" else "rsa-oaep-sha256"
    )
    # The password is forgotten; the administrator recovers with the private key.
    recovered, new = recover_with_escrow(
        LocalBackend(tmp_path / "repo"), private, b"fresh", kdf=CHEAP_KDF, cache_root=tmp_path / "r"
    )
    assert recovered.slot_id == slot.slot_id
    reopened = open_with(tmp_path, b"fresh")
    assert reopened.slot_id == new.slot_id
    assert restore_all(reopened, snap) == {"a": b"important"}
    # A private key that matches no escrow slot opens nothing.
    stranger = x25519.X25519PrivateKey.generate()
    with pytest.raises(WrongPassword, match="private key"):
        Repository.open(
            LocalBackend(tmp_path / "repo"), private_key=stranger, cache_root=tmp_path / "s"
        )
    assert not check(reopened).problems


def test_rsa_keys_below_2048_bits_are_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(StoreError, match="2048"):
        add_escrow_slot(repo, public_pem(weak))


def test_damaged_slots_are_reported_not_crashed_on(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    second = add_password_slot(repo, b"second", kdf=CHEAP_KDF)
    third = add_password_slot(repo, b"third", kdf=CHEAP_KDF)
    edit_keyset(tmp_path, lambda ks: ks["slots"].update({second.slot_id: "{ not a slot"}))
    # A hostile slot asking Argon2 for 1 TiB must not be tried.
    edit_keyset(tmp_path, lambda ks: ks["slots"][third.slot_id]["kdf"].update(memory_kib=1 << 30))
    opened = open_with(tmp_path, PASSWORD)  # the intact slot still opens
    statuses = {s.slot_id[:8]: s for s in slot_statuses(opened)}
    assert statuses[second.slot_id[:8]].problem
    assert statuses[third.slot_id[:8]].problem  # its MAC no longer matches
    with pytest.raises(WrongPassword) as info:
        open_with(tmp_path, b"second")
    assert second.slot_id[:8] in str(info.value)
    assert "refused" in str(info.value)  # the 1 TiB slot, named before any KDF
    result = check(opened)
    assert len(result.errors) == 2
    assert {p.key for p in result.errors} == {"keys/keyset"}


def test_a_damaged_keyring_box_is_damage_not_a_wrong_password(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    second = add_password_slot(repo, b"second", kdf=CHEAP_KDF)

    def break_box(keyset: dict) -> None:  # type: ignore[type-arg]
        fields = keyset["slots"][second.slot_id]
        box = bytearray(fields["keyring"].encode())
        box[60] = ord("A") if box[60] != ord("A") else ord("B")
        fields["keyring"] = box.decode()

    edit_keyset(tmp_path, break_box)
    with pytest.raises(KeySlotDamaged) as info:
        open_with(tmp_path, b"second")
    assert info.value.exit_code == 13
    assert second.slot_id[:8] in str(info.value)
    assert open_with(tmp_path, PASSWORD).slot_id == repo.slot_id


def test_too_many_slots_are_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    for number in range(MAX_SLOTS - 1):
        add_password_slot(repo, f"p{number}".encode(), kdf=CHEAP_KDF)
    with pytest.raises(StoreError, match="already has"):
        add_password_slot(repo, b"one too many", kdf=CHEAP_KDF)
    with pytest.raises(WrongPassword) as info:
        open_with(tmp_path, b"wrong")
    assert "more" in str(info.value)  # the message stays one readable line
