"""Managing key slots: list, add, remove, change password, rotate, escrow, recover.

The slot format and the cryptography are in store/keys.py; this module does
the I/O and enforces the rules: the last password slot cannot be removed,
nor the slot in use; a repository holds at most :data:`MAX_SLOTS` slots (so
opening it never means hundreds of Argon2 runs); every change is journaled in
a ``key`` report (a removed slot is listed under ``deleted``, so ``check``
knows its absence is intended). Every write of a slot is one atomic put.
Not safe to run two key commands on one repository at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from store.backend import Backend
from store.errors import ObjectNotFound, StoreError
from store.keys import KdfParams, KeySlot, PrivateKey, new_escrow_slot, new_password_slot
from store.repository import Repository, read_slots

MAX_SLOTS = 32


@dataclass
class SlotStatus:
    """One slot as ``key list`` shows it."""

    key: str
    slot_id: str
    kind: str
    label: str
    created: str
    algorithm: str
    current: bool
    problem: str | None = None


def slot_statuses(repo: Repository) -> list[SlotStatus]:
    """Every slot, damaged ones included (with the reason). Read-only."""
    out: list[SlotStatus] = []
    slots, damaged = read_slots(repo.backend)
    for slot in slots:
        try:
            raw: bytes | None = repo.backend.get(slot.key)
        except ObjectNotFound:
            raw = None
        problem = "removed meanwhile" if raw is None else slot.verify(raw, repo.keyring)
        info = slot.fields.get("public_key")
        algorithm = str(info.get("alg", "?")) if isinstance(info, dict) else "?"
        out.append(
            SlotStatus(
                slot.key,
                slot.slot_id,
                slot.kind,
                slot.label,
                slot.created,
                algorithm,
                slot.slot_id == repo.slot_id,
                problem,
            )
        )
    for key, reason in damaged.items():
        name = key.rpartition("/")[2]
        out.append(SlotStatus(key, name, "?", "", "", "?", False, reason))
    return sorted(out, key=lambda s: (s.created, s.slot_id))


def current_kdf(repo: Repository) -> KdfParams:
    """The Argon2id cost of the slot that opened ``repo`` (default for new slots)."""
    for slot in read_slots(repo.backend)[0]:
        if slot.slot_id == repo.slot_id and slot.kind == "password":
            kdf = slot.fields.get("kdf", {})
            try:
                return KdfParams(int(kdf["iterations"]), int(kdf["lanes"]), int(kdf["memory_kib"]))
            except (KeyError, TypeError, ValueError):
                break
    return KdfParams()


def _check_room(backend: Backend) -> None:
    slots, damaged = read_slots(backend)
    if len(slots) + len(damaged) >= MAX_SLOTS:
        raise StoreError(
            f"the repository already has {MAX_SLOTS} key slots; remove one before adding another"
        )


def _report(repo: Repository, action: str, **fields: object) -> str:
    return repo.save_report("key", {"action": action, **fields})


def add_password_slot(
    repo: Repository, password: bytes, *, label: str | None = None, kdf: KdfParams | None = None
) -> KeySlot:
    """Add a password slot for ``password``. Raises StoreError when full or empty."""
    _check_room(repo.backend)
    slot = new_password_slot(repo.repo_id, repo.keyring, password, label=label, kdf=kdf)
    repo.backend.put(slot.key, slot.to_json())
    _report(repo, "add", slot=slot.slot_id, kind="password", label=slot.label)
    return slot


def add_escrow_slot(repo: Repository, public_pem: bytes, *, label: str | None = None) -> KeySlot:
    """Add an escrow slot sealing the keyring to an administrator's public key."""
    _check_room(repo.backend)
    slot = new_escrow_slot(repo.repo_id, repo.keyring, public_pem, label=label)
    repo.backend.put(slot.key, slot.to_json())
    alg = slot.fields["public_key"]["alg"]
    _report(repo, "escrow-add", slot=slot.slot_id, kind="escrow", algorithm=alg, label=slot.label)
    return slot


def find_slot(repo: Repository, prefix: str) -> str:
    """The backend key of the one slot whose ID starts with ``prefix``. Raises StoreError."""
    keys = [info.key for info in repo.backend.list("keys/")]
    matches = [k for k in keys if k.rpartition("/")[2].startswith(prefix.lower())]
    if not prefix or not matches:
        raise StoreError(f"no key slot with ID {prefix!r}")
    if len(matches) > 1:
        raise StoreError(f"key slot ID {prefix!r} is ambiguous; give more digits")
    return matches[0]


def remove_slot(repo: Repository, prefix: str) -> str:
    """Delete a slot; returns its key.

    Refuses the slot in use and the last intact password slot (the
    repository would be left without a password). A damaged slot can always
    be removed.
    """
    key = find_slot(repo, prefix)
    slot_id = key.rpartition("/")[2]
    if slot_id == repo.slot_id:
        raise StoreError(
            "refusing to remove the key slot in use; open the repository with another "
            "password to remove this one"
        )
    slots, _damaged = read_slots(repo.backend)
    target = next((s for s in slots if s.key == key), None)
    if target is not None and target.kind == "password":
        others = [s for s in slots if s.kind == "password" and s.key != key]
        if not others:
            raise StoreError("refusing to remove the last password slot")
    repo.backend.delete(key)
    _report(repo, "remove", slot=slot_id, deleted=[key])
    return key


def change_password(repo: Repository, password: bytes, *, kdf: KdfParams | None = None) -> KeySlot:
    """Give the slot in use a new password (new key pair and salt, same slot ID).

    The slot is replaced in one atomic write: the old password stops working
    at once, and there is never a moment without a slot.
    """
    slots, _damaged = read_slots(repo.backend)
    current = next((s for s in slots if s.slot_id == repo.slot_id), None)
    if current is None or current.kind != "password":
        raise StoreError("the repository was not opened with a password slot")
    slot = new_password_slot(
        repo.repo_id,
        repo.keyring,
        password,
        label=current.label,
        kdf=kdf or current_kdf(repo),
        slot_id=current.slot_id,
    )
    repo.backend.put(slot.key, slot.to_json())
    _report(repo, "passwd", slot=slot.slot_id)
    return slot


@dataclass
class Rotation:
    """What ``rotate`` did."""

    epoch: int
    rewrapped: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # damaged slots


def rotate_master_key(repo: Repository) -> Rotation:
    """Make a fresh data key current and rewrap every slot with the new keyring.

    Old epochs stay in the keyring, so old packs stay readable; from now on
    new objects are written under the new key (``repo.keyring`` is replaced).
    A copy of a slot removed before the rotation opens nothing written after
    it. Damaged slots cannot be rewrapped: they are listed in ``skipped``.
    If interrupted, run it again: no data is written under the new key until
    every slot is rewrapped.
    """
    new = repo.keyring.rotated()
    slots, damaged = read_slots(repo.backend)
    rotation = Rotation(new.current, skipped=list(damaged.items()))
    # The slot in use last: until it is rewritten, a rerun starts from the old keyring.
    for slot in sorted(slots, key=lambda s: s.slot_id == repo.slot_id):
        try:
            rewrapped = slot.rewrapped(repo.repo_id, new)
        except StoreError as exc:
            rotation.skipped.append((slot.key, str(exc)))
            continue
        repo.backend.put(rewrapped.key, rewrapped.to_json())
        rotation.rewrapped.append(slot.slot_id)
    repo.keyring = new
    _report(
        repo,
        "rotate",
        epoch=new.current,
        rewrapped=rotation.rewrapped,
        skipped=[key for key, _reason in rotation.skipped],
    )
    return rotation


def recover_with_escrow(
    backend: Backend,
    private_key: PrivateKey,
    new_password: bytes,
    *,
    label: str | None = None,
    kdf: KdfParams | None = None,
    cache_root: Path | None = None,
) -> tuple[Repository, KeySlot]:
    """Open with an administrator's escrow private key and add a password slot.

    Raises WrongPassword when the key matches no escrow slot.
    """
    repo = Repository.open(backend, private_key=private_key, cache_root=cache_root)
    _check_room(backend)
    slot = new_password_slot(
        repo.repo_id, repo.keyring, new_password, label=label or "recovered", kdf=kdf
    )
    backend.put(slot.key, slot.to_json())
    _report(repo, "recover", slot=slot.slot_id, escrow=repo.slot_id)
    return repo, slot
