"""Attacks on the key slots and the metadata cache (issue 12, items 1-5).

Each test performs one attack against a real repository on disk and fails
without its defence (store/maintenance/keyops.py, store/repository/keyopen.py,
store/repository/keyset.py, store/backend/cache.py, the ``read_storage`` of check and repair).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from store import (
    IntegrityError,
    Keyring,
    LocalBackend,
    Repository,
    WrongPassword,
    add_password_slot,
    change_password,
    remove_slot,
    rotate_master_key,
    slot_statuses,
)
from store.backend import CachingBackend
from store.format.keys import new_escrow_slot, new_password_slot
from tests.store.support.key_helpers import (
    CHEAP_KDF,
    PASSWORD,
    canonical,
    keyset_path,
    legacy_bytes,
    make_legacy_repo,
    open_repo,
    read_keyset_json,
    write_keyset_json,
)
from tests.store.support.ops_helpers import ALICE, BOB, SITE, backup, check, make_repo, restore_all

ROOT = Path(__file__).resolve().parents[2]
SECOND = b"second host password"


def attacker() -> tuple[x25519.X25519PrivateKey, bytes]:
    private = x25519.X25519PrivateKey.generate()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, pem


def open_as_attacker(root: Path, private: x25519.X25519PrivateKey) -> Repository:
    return Repository.open(
        LocalBackend(root / "repo", durable=False),
        private_key=private,
        cache_root=root / "attacker-cache",
    )


# -- 1. planted slots never receive the keyring ----------------------------


@pytest.mark.parametrize("layout", ["legacy", "keyset"])
def test_rotation_never_hands_the_keyring_to_a_planted_escrow_slot(
    tmp_path: Path, layout: str
) -> None:
    private, pem = attacker()
    if layout == "legacy":
        make_legacy_repo(tmp_path, [PASSWORD])
        repo = open_repo(tmp_path, PASSWORD, "cache")
    else:
        repo = make_repo(tmp_path)
    snap = backup(repo, ALICE, {"secret.txt": b"the board minutes"})
    # Someone with write access to keys/ (and no key) plants an escrow slot
    # for their own public key, MACed with a keyring of their own making.
    theirs = Keyring.generate()
    planted = new_escrow_slot(repo.repo_id, theirs, pem, label="escrow")
    (tmp_path / "repo" / planted.legacy_name).write_bytes(legacy_bytes(planted, theirs))
    if layout == "keyset":
        data = read_keyset_json(tmp_path)
        data["slots"][planted.slot_id] = planted.fields
        write_keyset_json(tmp_path, data)

    rotation = rotate_master_key(repo)

    named = " ".join(f"{name} {why}" for name, why in rotation.skipped)
    assert planted.slot_id[:8] in named
    assert planted.slot_id not in rotation.rewrapped
    assert planted.slot_id not in read_keyset_json(tmp_path)["slots"]
    with pytest.raises(WrongPassword):
        open_as_attacker(tmp_path, private)
    # The repository's own slot still opens, and the data reads.
    again = open_repo(tmp_path, PASSWORD, "other")
    assert restore_all(again, snap) == {"secret.txt": b"the board minutes"}
    # check names the planted file (it stays, quarantined, until removed).
    result = check(again, read_data=False)
    assert any(planted.slot_id in p.message for p in result.errors), result.problems


def test_a_former_key_holder_cannot_plant_a_slot_the_next_rotation_accepts(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path)
    leaver = add_password_slot(repo, b"leaver", kdf=CHEAP_KDF)
    stolen = open_repo(tmp_path, b"leaver", "leaver-cache").keyring  # epoch 0, root
    remove_slot(repo, leaver.slot_id)  # rotates to epoch 1
    private, pem = attacker()
    # With the keyring they held, the leaver forges slots whose MACs verify
    # under it: a key-set slot of epoch 0, and a legacy file under the root.
    forged = new_escrow_slot(repo.repo_id, stolen, pem)
    data = read_keyset_json(tmp_path)
    data["slots"][forged.slot_id] = forged.fields
    write_keyset_json(tmp_path, data)
    forged_file = new_escrow_slot(repo.repo_id, stolen, pem)
    (tmp_path / "repo" / forged_file.legacy_name).write_bytes(legacy_bytes(forged_file, stolen))

    rotation = rotate_master_key(repo)

    skipped = " ".join(name for name, _why in rotation.skipped)
    assert forged.slot_id[:8] in skipped
    assert forged_file.slot_id[:8] in skipped
    assert rotation.rewrapped == [repo.slot_id]
    with pytest.raises(WrongPassword):
        open_as_attacker(tmp_path, private)


def test_a_replaced_slot_put_back_opens_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    old_entry = read_keyset_json(tmp_path)["slots"][repo.slot_id]
    old_file = canonical(old_entry)
    change_password(repo, b"new password", kdf=CHEAP_KDF)  # rotates
    current = keyset_path(tmp_path).read_bytes()
    # Whoever stole the old password puts the old slot back into the key set ...
    data = read_keyset_json(tmp_path)
    data["slots"][repo.slot_id] = old_entry
    write_keyset_json(tmp_path, data)
    with pytest.raises(WrongPassword, match="not current"):
        open_repo(tmp_path, PASSWORD, "thief")
    # ... or beside it, as a slot file.
    keyset_path(tmp_path).write_bytes(current)
    (tmp_path / "repo" / "keys" / repo.slot_id).write_bytes(old_file)
    with pytest.raises(WrongPassword):
        open_repo(tmp_path, PASSWORD, "thief2")
    owner = open_repo(tmp_path, b"new password", "owner")
    assert owner.keyring.current == 1
    rotation = rotate_master_key(owner)  # never gives it the new key
    assert [name for name, _ in rotation.skipped] == [f"keys/{repo.slot_id}"]
    with pytest.raises(WrongPassword):
        open_repo(tmp_path, PASSWORD, "thief3")


def test_a_legacy_repository_opens_and_the_next_key_command_moves_it_into_a_key_set(
    tmp_path: Path,
) -> None:
    private, pem = attacker()
    keyring, slots = make_legacy_repo(tmp_path, [PASSWORD, SECOND], [pem])
    repo = open_repo(tmp_path, SECOND, "cache")
    assert repo.slot_id == slots[1].slot_id
    snap = backup(repo, ALICE, {"a": b"before the upgrade"})
    assert not check(repo, record=True).errors  # remembers the legacy files it saw
    third = add_password_slot(repo, b"third", kdf=CHEAP_KDF)
    assert sorted(p.name for p in (tmp_path / "repo" / "keys").iterdir()) == ["keyset"]
    # Every legacy slot carried over, the new one added.
    assert set(read_keyset_json(tmp_path)["slots"]) == {s.slot_id for s in slots} | {third.slot_id}
    for password in (PASSWORD, SECOND, b"third"):
        other = open_repo(tmp_path, password, f"c-{password.decode()}")
        assert restore_all(other, snap) == {"a": b"before the upgrade"}
    assert open_as_attacker(tmp_path, private).keyring.root == keyring.root  # escrow kept
    # The legacy files' deletion is journaled: check does not call them lost.
    assert not check(open_repo(tmp_path, PASSWORD, "cache")).problems


# -- 3. opening stays bounded --------------------------------------------


def test_open_tries_a_bounded_number_of_password_slots(tmp_path: Path) -> None:
    _keyring, slots = make_legacy_repo(tmp_path, [PASSWORD])
    mine = slots[0]
    repo_id = open_repo(tmp_path, PASSWORD, "setup", key_id=mine.slot_id).repo_id
    for number in range(40):
        theirs = Keyring.generate()
        planted = new_password_slot(repo_id, theirs, b"x", kdf=CHEAP_KDF, slot_id=f"{number:032x}")
        (tmp_path / "repo" / planted.legacy_name).write_bytes(legacy_bytes(planted, theirs))
    with pytest.raises(WrongPassword, match="--key-id") as info:
        open_repo(tmp_path, PASSWORD, "new-host")
    assert "not tried" in str(info.value)
    # Naming the slot opens at once; the host remembers it for next time.
    assert open_repo(tmp_path, PASSWORD, "new-host", key_id=mine.slot_id[:8]).slot_id == (
        mine.slot_id
    )
    assert open_repo(tmp_path, PASSWORD, "new-host").slot_id == mine.slot_id


def test_a_slot_asking_for_too_much_argon2_is_refused_before_the_kdf(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    theirs = Keyring.generate()
    hostile = new_password_slot(repo.repo_id, theirs, b"x", kdf=CHEAP_KDF)
    hostile.fields["kdf"].update(memory_kib=4 * 1024 * 1024, iterations=64)
    data = read_keyset_json(tmp_path)
    data["slots"] = {hostile.slot_id: hostile.fields, **data["slots"]}
    write_keyset_json(tmp_path, data)
    started = time.monotonic()
    with pytest.raises(WrongPassword) as info:
        open_repo(tmp_path, b"wrong", "new-host")
    assert time.monotonic() - started < 10
    assert f"{hostile.slot_id[:8]} (key slot {hostile.slot_id[:8]} is refused" in str(info.value)
    assert open_repo(tmp_path, PASSWORD, "new-host").slot_id == repo.slot_id


def test_a_rolled_back_key_set_is_refused_by_a_host_that_saw_a_newer_one(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    before = keyset_path(tmp_path).read_bytes()
    rotate_master_key(repo)
    assert open_repo(tmp_path, PASSWORD, "cache").keyring.current == 1
    keyset_path(tmp_path).write_bytes(before)
    with pytest.raises(IntegrityError, match="already used epoch 1"):
        open_repo(tmp_path, PASSWORD, "cache")
    keyset_path(tmp_path).unlink()
    stale = new_password_slot(repo.repo_id, Keyring.generate(), PASSWORD, kdf=CHEAP_KDF)
    (tmp_path / "repo" / stale.legacy_name).write_bytes(stale.to_json())
    with pytest.raises(IntegrityError, match=r"other keys|disappeared"):
        open_repo(tmp_path, PASSWORD, "cache")


# -- 4. a new password is seen by hosts with a warm cache ------------------


def test_a_new_password_is_seen_at_once_by_a_host_with_a_warm_metadata_cache(
    tmp_path: Path,
) -> None:
    make_repo(tmp_path)
    add_password_slot(open_repo(tmp_path, PASSWORD, "a"), SECOND, kdf=CHEAP_KDF)

    def host_b(password: bytes) -> Repository:
        cached = CachingBackend(LocalBackend(tmp_path / "repo", durable=False), tmp_path / "b-meta")
        return Repository.open(cached, password, cache_root=tmp_path / "b")

    host_b(PASSWORD).close()  # warms B's metadata cache
    change_password(open_repo(tmp_path, PASSWORD, "a"), b"changed", kdf=CHEAP_KDF)
    with pytest.raises(WrongPassword):
        host_b(PASSWORD)
    assert host_b(b"changed").keyring.current == 1
    assert host_b(SECOND).keyring.current == 1


# -- 5. check reads the storage, not the cache ------------------------------


def _flip(path: Path, at: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("prefix", ["index", "snapshots", "tree"])
def test_check_reads_the_storage_not_a_warm_cache(tmp_path: Path, prefix: str) -> None:
    repo = make_repo(tmp_path)
    backup(repo, ALICE, {f"f{i}.txt": f"file {i}".encode() * 50 for i in range(5)})
    storage = tmp_path / "repo"
    cache_dir = tmp_path / "meta"
    host = Repository.open(
        CachingBackend(LocalBackend(storage, durable=False), cache_dir),
        PASSWORD,
        cache_root=tmp_path / "host",
    )
    for snapshot in host.list_snapshots():  # everyday use warms the cache
        restore_all(host, snapshot)
    victim = next(p for p in sorted((storage / prefix).rglob("*")) if p.is_file())
    key = victim.relative_to(storage).as_posix()
    assert (cache_dir / key).exists()
    _flip(victim, victim.stat().st_size // 2)  # same size: the cache's size test passes
    host = Repository.open(
        CachingBackend(LocalBackend(storage, durable=False), cache_dir),
        PASSWORD,
        cache_root=tmp_path / "host",
    )
    result = check(host)
    assert result.errors, f"a same-size corruption of {key} went unnoticed"
    assert any(
        key in (p.key or "") or key.rpartition("/")[2][:8] in p.message for p in result.problems
    )
    assert not (cache_dir / key).exists()  # the stale cached copy was dropped


# -- 2. kill -9 at every step of a key change, another host backing up between


def _child(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (root / "pw1").write_bytes(PASSWORD)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.store.support.keys_child",
            "crashkey",
            str(root / "repo"),
            str(root / "h1"),
            str(root / "pw1"),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _crash_then_rerun(root: Path, layout: str, op: str, crash_at: int, when: str) -> None:
    if layout == "legacy":
        _keyring, slots = make_legacy_repo(root, [PASSWORD, SECOND, b"third"])
        third = slots[2].slot_id
    else:
        repo = make_repo(root)
        add_password_slot(repo, SECOND, kdf=CHEAP_KDF)
        third = add_password_slot(repo, b"third", kdf=CHEAP_KDF).slot_id
        repo.close()
    expected: dict[str, dict[str, bytes]] = {}
    h1 = open_repo(root, PASSWORD, "h1")
    snap = backup(h1, ALICE, {"a.txt": b"before the key change"})
    expected[snap.id_hex] = {"a.txt": b"before the key change"}
    h1.close()
    arg = [third] if op == "remove" else []

    died = _child(root, op, str(crash_at), when, *arg)
    assert died.returncode == -9, died.stderr

    # Another host backs up before the command is run again.
    h2 = open_repo(root, SECOND, "h2")
    snap = backup(h2, BOB, {"b.txt": b"between the crash and the rerun"})
    expected[snap.id_hex] = {"b.txt": b"between the crash and the rerun"}
    h2.close()

    rerun = _child(root, op, "0", "never", *arg)
    if rerun.returncode != 0:
        # The change was complete before the crash: rerunning remove names a
        # slot that is gone. Anything else is a failure.
        assert op == "remove", rerun.stderr
        assert "no key slot" in rerun.stderr, rerun.stderr
    h1 = open_repo(root, PASSWORD, "h1")
    snap = backup(h1, SITE, {"c.txt": b"after the rerun"})
    expected[snap.id_hex] = {"c.txt": b"after the rerun"}
    h1.close()

    for password in (PASSWORD, SECOND):
        fresh = open_repo(root, password, f"fresh-{password.decode()}")
        restored = {snap.id_hex: restore_all(fresh, snap) for snap in fresh.list_snapshots()}
        assert restored == expected  # every snapshot, byte-identical
        result = check(fresh)
        assert not result.errors, [p.message for p in result.errors]
        fresh.close()


def _mutations(root: Path, layout: str, op: str) -> int:
    """How many storage writes and deletes ``op`` makes on a fresh repository."""
    probe = root / "probe"
    probe.mkdir()
    if layout == "legacy":
        _keyring, slots = make_legacy_repo(probe, [PASSWORD, SECOND, b"third"])
        third = slots[2].slot_id
    else:
        repo = make_repo(probe)
        add_password_slot(repo, SECOND, kdf=CHEAP_KDF)
        third = add_password_slot(repo, b"third", kdf=CHEAP_KDF).slot_id
        repo.close()
    done = _child(probe, op, "0", "never", *([third] if op == "remove" else []))
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.mark.parametrize("crash_at", [1, 2])
def test_a_rotation_killed_after_a_write_loses_nothing(tmp_path: Path, crash_at: int) -> None:
    # Before the key set, a rotation killed after its second write had
    # rewritten both other slots (the second host's among them) but not its
    # own: the rerun made a second, different epoch-1 key.
    _crash_then_rerun(tmp_path, "legacy", "rotate", crash_at, "after")


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["legacy", "keyset"])
@pytest.mark.parametrize("op", ["rotate", "remove"])
def test_a_key_change_killed_at_every_step_loses_nothing(
    tmp_path: Path, layout: str, op: str
) -> None:
    steps = _mutations(tmp_path, layout, op)
    assert steps >= 2
    for crash_at in range(1, steps + 1):
        for when in ("before", "after"):
            case = tmp_path / f"{crash_at}-{when}"
            case.mkdir()
            _crash_then_rerun(case, layout, op, crash_at, when)


def test_key_list_names_planted_slots(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    _private, pem = attacker()
    theirs = Keyring.generate()
    planted = new_escrow_slot(repo.repo_id, theirs, pem)
    (tmp_path / "repo" / planted.legacy_name).write_bytes(legacy_bytes(planted, theirs))
    statuses = {s.slot_id: s for s in slot_statuses(repo)}
    assert statuses[repo.slot_id].problem is None
    assert "planted" in (statuses[planted.slot_id].problem or "")
