"""Managing key slots: list, add, remove, change password, rotate, escrow, recover.

The slot format and the cryptography are in store/format/keys.py, the key set in
store/repository/keyset.py; this module does the I/O and enforces the rules:

- Every change writes the whole key set in one atomic put (``_commit``), so
  an interrupted key command either changed nothing or is complete; rerun it.
- Only the repository's current slots are carried over: in a key set, those
  whose MAC verifies under the current epoch key; in a legacy repository (one
  ``keys/<slot id>`` file per slot, written before the key set), those whose
  root-keyed MAC verifies, plus the slot in use. Anything else (a planted
  slot, a removed slot put back, a damaged one) never receives the keyring:
  it is named in ``ignored`` and left where it is (quarantined: ignored by
  every open).
- Removing a slot or changing a password also rotates the data key, so the
  holder of the old slot cannot forge a slot the next change would accept,
  and opens nothing written afterwards.
- The last password slot cannot be removed, nor the slot in use; a
  repository holds at most :data:`MAX_SLOTS` slots.
- Every change is journaled in a ``key`` report; legacy files the key set
  replaces are listed under ``deleted`` before they are deleted, so
  ``check`` knows their absence is intended.

Not safe to run two key commands on one repository at the same time (the
second put wins; each leaves a complete key set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from store.backend import Backend
from store.errors import ObjectNotFound, StoreError
from store.format.keys import (
    KdfParams,
    Keyring,
    KeySlot,
    PrivateKey,
    new_escrow_slot,
    new_password_slot,
)
from store.names import KEYS, KEYSET
from store.pipeline.kdf import derive_apart
from store.repository.keyset import Keyset, read_keyset, read_legacy_slots, stray_files
from store.repository.repository import Repository

MAX_SLOTS = 32


@dataclass
class SlotStatus:
    """One slot as ``key list`` shows it (``problem``: why it is not a current slot)."""

    key: str
    slot_id: str
    kind: str
    label: str
    created: str
    algorithm: str
    current: bool
    problem: str | None = None


@dataclass
class SlotSet:
    """The repository's current slots, and everything under ``keys/`` that is not one."""

    slots: list[KeySlot]
    ignored: dict[str, str]  # name (``keys/<file>`` or ``key slot <id>``) -> why
    legacy_files: list[str]  # legacy files of current slots: deleted once in a key set
    keyset: bool

    def find(self, prefix: str) -> KeySlot:
        """The one current slot whose ID starts with ``prefix``. Raises StoreError."""
        matches = [s for s in self.slots if prefix and s.slot_id.startswith(prefix.lower())]
        if not matches:
            raise StoreError(f"no key slot with ID {prefix!r}")
        if len(matches) > 1:
            raise StoreError(f"key slot ID {prefix!r} is ambiguous; give more digits")
        return matches[0]


def load_slot_set(repo: Repository) -> SlotSet:
    """Sort every slot of ``repo`` into current and ignored. Read-only.

    Raises StoreError when the key set is newer than ``repo``'s keyring (the
    keys changed since it was opened), IntegrityError when it is unreadable.
    """
    keyset = read_keyset(repo.backend)
    ignored: dict[str, str] = {}
    if keyset is not None and keyset.epoch > repo.keyring.current:
        # Another process changed the keys since this one opened the
        # repository: with the older keyring every current slot would look
        # stale, and a commit would drop them all.
        raise StoreError(
            f"the key set is of key epoch {keyset.epoch}, newer than this process's "
            f"{repo.keyring.current}; open the repository again"
        )
    if keyset is not None:
        ignored.update(keyset.damaged)
        if not keyset.canonical:
            ignored[KEYSET] = "is not in canonical form (bytes altered)"
        slots: list[KeySlot] = []
        for slot in keyset.slots:
            problem = slot.authenticate(repo.keyring)
            if problem is None:
                slots.append(slot)
            else:
                ignored[slot.name] = problem
        current = {s.slot_id for s in slots}
        legacy: list[str] = []
        for key in stray_files(repo.backend):
            if key.rpartition("/")[2] in current and _is_legacy_copy(repo, key):
                legacy.append(key)  # left over by an upgrade that was interrupted
            else:
                ignored[key] = "not part of the key set (planted, or a removed slot's copy)"
        return SlotSet(slots, ignored, legacy, True)
    files, damaged = read_legacy_slots(repo.backend, [repo.slot_id])
    ignored.update(damaged)
    slots = []
    legacy = []
    for slot, raw in files:
        problem = slot.verify(raw, repo.keyring)
        if problem is not None and slot.slot_id != repo.slot_id:
            ignored[slot.legacy_name] = problem
            continue
        slots.append(slot)
        legacy.append(slot.legacy_name)
    return SlotSet(slots, ignored, legacy, False)


def _is_legacy_copy(repo: Repository, key: str) -> bool:
    """True if ``key`` is an authentic legacy slot file (root-keyed MAC), i.e. a
    copy an interrupted upgrade left behind rather than something planted."""
    try:
        raw = repo.backend.get(key)
        slot = KeySlot.parse(raw, key)
    except (ObjectNotFound, StoreError):
        return False
    return slot.epoch is None and slot.verify(raw, repo.keyring) is None


def slot_statuses(repo: Repository) -> list[SlotStatus]:
    """Every current slot, then everything ignored (with the reason). Read-only."""
    found = load_slot_set(repo)
    out: list[SlotStatus] = []
    for slot in found.slots:
        info = slot.fields.get("public_key")
        algorithm = str(info.get("alg", "?")) if isinstance(info, dict) else "?"
        key = KEYSET if found.keyset else slot.legacy_name
        out.append(
            SlotStatus(
                key,
                slot.slot_id,
                slot.kind,
                slot.label,
                slot.created,
                algorithm,
                slot.slot_id == repo.slot_id,
            )
        )
    out.sort(key=lambda s: (s.created, s.slot_id))
    for name, reason in found.ignored.items():
        key = name if name.startswith(KEYS) else KEYSET
        slot_id = name.rpartition("/")[2].removeprefix("key slot ")
        out.append(SlotStatus(key, slot_id, "?", "", "", "?", False, reason))
    return out


def current_kdf(repo: Repository) -> KdfParams:
    """The Argon2id cost of the slot that opened ``repo`` (default for new slots)."""
    for slot in load_slot_set(repo).slots:
        if slot.slot_id == repo.slot_id and slot.kind == "password":
            try:
                return slot.kdf_params()
            except StoreError:
                break
    return KdfParams()


def _check_room(found: SlotSet) -> None:
    if len(found.slots) >= MAX_SLOTS:
        raise StoreError(
            f"the repository already has {MAX_SLOTS} key slots; remove one before adding another"
        )


def _report(repo: Repository, action: str, **fields: object) -> str:
    return repo.save_report("key", {"action": action, **fields})


def _commit(
    repo: Repository,
    found: SlotSet,
    slots: list[KeySlot],
    keyring: Keyring,
    action: str,
    **report: object,
) -> None:
    """Write ``slots`` (all sealing ``keyring``) as the key set; journal; tidy up.

    The put of the key set is the one step that changes the keys: before it
    nothing changed, after it the change is complete and every host opens the
    new key set. Then ``repo`` uses ``keyring``, the report is stored (naming
    the legacy files about to go) and those files are deleted. Each step after
    the put is idempotent; a rerun of the command redoes it.
    """
    repo.backend.put(KEYSET, Keyset(keyring.current, slots).to_json())
    repo.keyring = keyring
    ignored = sorted(found.ignored)
    _report(repo, action, **report, ignored=ignored, deleted=found.legacy_files)
    for key in found.legacy_files:
        repo.backend.delete(key)


def _rewrap_all(repo: Repository, slots: list[KeySlot], keyring: Keyring) -> list[KeySlot]:
    """Every slot resealed to ``keyring`` and MACed under its current epoch."""
    return [slot.rewrapped(repo.repo_id, keyring) for slot in slots]


def add_password_slot(
    repo: Repository, password: bytes, *, label: str | None = None, kdf: KdfParams | None = None
) -> KeySlot:
    """Add a password slot for ``password``. Raises StoreError when full or empty."""
    found = load_slot_set(repo)
    _check_room(found)
    slot = new_password_slot(
        repo.repo_id, repo.keyring, password, label=label, kdf=kdf, derive=derive_apart
    )
    slots = [*_rewrap_all(repo, found.slots, repo.keyring), slot]
    _commit(
        repo,
        found,
        slots,
        repo.keyring,
        "add",
        slot=slot.slot_id,
        kind="password",
        label=slot.label,
    )
    return slot


def add_escrow_slot(repo: Repository, public_pem: bytes, *, label: str | None = None) -> KeySlot:
    """Add an escrow slot sealing the keyring to an administrator's public key."""
    found = load_slot_set(repo)
    _check_room(found)
    slot = new_escrow_slot(repo.repo_id, repo.keyring, public_pem, label=label)
    slots = [*_rewrap_all(repo, found.slots, repo.keyring), slot]
    alg = slot.fields["public_key"]["alg"]
    _commit(
        repo,
        found,
        slots,
        repo.keyring,
        "escrow-add",
        slot=slot.slot_id,
        kind="escrow",
        algorithm=alg,
        label=slot.label,
    )
    return slot


def find_slot(repo: Repository, prefix: str) -> str:
    """The ID of the one current slot whose ID starts with ``prefix``. Raises StoreError."""
    return load_slot_set(repo).find(prefix).slot_id


def remove_slot(repo: Repository, prefix: str) -> str:
    """Remove a slot and rotate the data key; returns the slot's ID.

    Refuses the slot in use and the last password slot (the repository
    would be left without a password). ``prefix`` may also name an ignored
    file under ``keys/`` (a planted or left-over slot): that file is deleted.
    """
    found = load_slot_set(repo)
    strays = [k for k in found.ignored if k.startswith(KEYS) and k != KEYSET and prefix]
    stray = [k for k in strays if k.rpartition("/")[2].startswith(prefix.lower())]
    if stray and not any(s.slot_id.startswith(prefix.lower()) for s in found.slots):
        if len(stray) > 1:
            raise StoreError(f"key slot ID {prefix!r} is ambiguous; give more digits")
        _report(repo, "remove-ignored", file=stray[0], deleted=[stray[0]])
        repo.backend.delete(stray[0])
        return stray[0].rpartition("/")[2]
    target = found.find(prefix)
    if target.slot_id == repo.slot_id:
        raise StoreError(
            "refusing to remove the key slot in use; open the repository with another "
            "password to remove this one"
        )
    remaining = [s for s in found.slots if s.slot_id != target.slot_id]
    if target.kind == "password" and not any(s.kind == "password" for s in remaining):
        raise StoreError("refusing to remove the last password slot")
    new = repo.keyring.rotated()
    _commit(
        repo,
        found,
        _rewrap_all(repo, remaining, new),
        new,
        "remove",
        slot=target.slot_id,
        epoch=new.current,
    )
    return target.slot_id


def change_password(repo: Repository, password: bytes, *, kdf: KdfParams | None = None) -> KeySlot:
    """Give the slot in use a new password (new key pair and salt, same slot ID).

    Also rotates the data key: whoever knew the old password and opened the
    repository opens nothing written afterwards. One atomic write: the old
    password stops working at once, and there is never a moment without a slot.
    """
    found = load_slot_set(repo)
    current = next((s for s in found.slots if s.slot_id == repo.slot_id), None)
    if current is None or current.kind != "password":
        raise StoreError("the repository was not opened with a password slot")
    new = repo.keyring.rotated()
    slot = new_password_slot(
        repo.repo_id,
        new,
        password,
        label=current.label,
        kdf=kdf or current_kdf(repo),
        slot_id=current.slot_id,
        derive=derive_apart,
    )
    others = [s for s in found.slots if s.slot_id != current.slot_id]
    slots = [*_rewrap_all(repo, others, new), slot]
    _commit(repo, found, slots, new, "passwd", slot=slot.slot_id, epoch=new.current)
    return slot


@dataclass
class Rotation:
    """What ``rotate`` did."""

    epoch: int
    rewrapped: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # ignored: (name, why)


def rotate_master_key(repo: Repository) -> Rotation:
    """Make a fresh data key current and rewrap the current slots with the new keyring.

    Old epochs stay in the keyring, so old packs stay readable; from now on
    new objects are written under the new key (``repo.keyring`` is replaced).
    Only current slots (:func:`load_slot_set`) are rewrapped; everything
    else is listed in ``skipped``, never receives the new keyring, and is
    dropped from the key set. The new key set is one atomic put: if the
    command dies before it nothing changed, after it the rotation is done
    (a rerun rotates again, harmlessly: every epoch stays readable).
    """
    found = load_slot_set(repo)
    new = repo.keyring.rotated()
    slots = _rewrap_all(repo, found.slots, new)
    rotation = Rotation(new.current, [s.slot_id for s in slots], sorted(found.ignored.items()))
    _commit(repo, found, slots, new, "rotate", epoch=new.current, rewrapped=rotation.rewrapped)
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
    found = load_slot_set(repo)
    _check_room(found)
    slot = new_password_slot(
        repo.repo_id,
        repo.keyring,
        new_password,
        label=label or "recovered",
        kdf=kdf,
        derive=derive_apart,
    )
    slots = [*_rewrap_all(repo, found.slots, repo.keyring), slot]
    _commit(repo, found, slots, repo.keyring, "recover", slot=slot.slot_id, escrow=repo.slot_id)
    return repo, slot
