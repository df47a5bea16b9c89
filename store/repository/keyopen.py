"""Unlocking a repository: which slots to try, in which order, and what to trust.

Opening must stay cheap whatever an attacker wrote under ``keys/``:

- Argon2id parameters are checked against the bounds (store/format/keys.py) before
  the KDF runs; a slot beyond them is named and skipped.
- At most :data:`MAX_PASSWORD_TRIES` password slots are tried (each costs an
  Argon2id run); the slot named by ``--key-id`` and the slot this host opened
  last (remembered in its cache) are tried first.
- In a key set, a slot opens the repository only if it belongs to the
  current epoch (store/format/keys.py ``KeySlot.authenticate``): a removed or
  replaced slot put back after a rotation opens nothing.

The host's anchor (``keys.json`` in the repository's cache directory,
FORMAT.md §10) remembers the slot, the root's fingerprint and the highest
epoch this host saw. A keyring with another root, an older current epoch than
remembered, or a key set that disappeared, is refused (a rollback of the key
slots, or a substituted repository). Delete the anchor to accept such a change
deliberately.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from store.backend import Backend
from store.errors import IntegrityError, KeySlotDamaged, StoreError, WrongPassword
from store.format.keys import Keyring, KeySlot, PrivateKey
from store.pipeline.kdf import derive_apart
from store.repository.keyset import read_keyset, read_legacy_slots

log = logging.getLogger(__name__)

MAX_PASSWORD_TRIES = 8
ANCHOR_FILE = "keys.json"
# At most this many slots are named in a wrong-password message.
_SLOTS_NAMED = 12


@dataclass(frozen=True)
class Anchor:
    """What this host remembers of a repository's keys."""

    slot: str
    root: str
    epoch: int
    keyset: bool

    @classmethod
    def load(cls, cache_dir: Path) -> Anchor | None:
        """The anchor, or None when absent or unreadable (a damaged cache costs nothing)."""
        try:
            data = json.loads((cache_dir / ANCHOR_FILE).read_bytes())
            return cls(
                str(data["slot"]), str(data["root"]), int(data["epoch"]), bool(data["keyset"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, cache_dir: Path) -> None:
        """Write atomically; a cache that cannot be written only costs the ordering."""
        path = cache_dir / ANCHOR_FILE
        temp = path.with_name(f".{ANCHOR_FILE}.{os.getpid()}")
        body = {"v": 1, "slot": self.slot, "root": self.root, "epoch": self.epoch}
        try:
            temp.write_text(json.dumps({**body, "keyset": self.keyset}))
            os.replace(temp, path)
        except OSError:
            pass


@dataclass(frozen=True)
class Unlocked:
    """The keyring a slot gave, and that slot's ID."""

    keyring: Keyring
    slot_id: str


def _order(slots: list[KeySlot], key_id: str | None, anchor: Anchor | None) -> list[KeySlot]:
    def rank(slot: KeySlot) -> int:
        if key_id and slot.slot_id.startswith(key_id.lower()):
            return 0
        if anchor is not None and slot.slot_id == anchor.slot:
            return 1
        return 2

    return sorted(slots, key=rank)


def unlock(
    backend: Backend,
    repo_id: str,
    cache_dir: Path,
    *,
    password: bytes | None = None,
    private_key: PrivateKey | None = None,
    key_id: str | None = None,
) -> Unlocked:
    """The keyring one of the repository's slots gives to ``password`` or ``private_key``.

    Raises WrongPassword (nothing opened), KeySlotDamaged (the secret matches
    a damaged slot), IntegrityError (no slots, the key set is unreadable, or
    the anchor refuses the keyring). Reads the backend; writes nothing.
    """
    if private_key is None and password is None:
        raise StoreError("a password or a private key is needed")
    anchor = Anchor.load(cache_dir)
    keyset = read_keyset(backend)
    damaged: dict[str, str] = {}
    if keyset is not None:
        slots = keyset.slots
        damaged.update(keyset.damaged)
    else:
        first = [p for p in (key_id, anchor.slot if anchor else None) if p]
        legacy, damaged = read_legacy_slots(backend, first)
        slots = [slot for slot, _raw in legacy]
    if not slots and not damaged:
        raise IntegrityError(f"the repository at {backend.location} has no key slots")
    if key_id and not any(s.slot_id.startswith(key_id.lower()) for s in slots):
        raise WrongPassword(f"no key slot with ID {key_id!r}")
    matched_damaged = False
    tries = 0
    tried: list[KeySlot] = []
    stale: list[str] = []
    for slot in _order(slots, key_id, anchor):
        try:
            if private_key is not None:
                keyring = slot.open_with_private_key(repo_id, private_key)
            else:
                if slot.kind != "password":
                    continue
                slot.kdf_params()  # bounds first: a refused slot costs no KDF
                if tries >= MAX_PASSWORD_TRIES:
                    damaged[slot.name] = f"not tried: more than {MAX_PASSWORD_TRIES} password slots"
                    continue
                tries += 1
                tried.append(slot)
                assert password is not None
                keyring = slot.open_with_password(repo_id, password, derive=derive_apart)
        except StoreError as exc:
            # A damaged or unknown slot must not stop the others from opening.
            damaged[slot.name] = str(exc)
            matched_damaged = matched_damaged or isinstance(exc, KeySlotDamaged)
            continue
        if private_key is not None:
            tried.append(slot)
        if keyring is None:
            continue
        if keyset is not None:
            problem = slot.authenticate(keyring)
            if problem is None and keyring.current != keyset.epoch:
                problem = f"the key set is of epoch {keyset.epoch}, this slot of {keyring.current}"
            if problem is not None:
                stale.append(f"{slot.name} {problem}")
                continue
        _check_anchor(anchor, keyring, keyset is not None, backend.location)
        for name, reason in damaged.items():
            log.warning("%s is unusable: %s", name, reason)
        Anchor(slot.slot_id, keyring.fingerprint(), keyring.current, keyset is not None).save(
            cache_dir
        )
        return Unlocked(keyring, slot.slot_id)
    what = "private key" if private_key is not None else "password"
    if stale:
        raise WrongPassword(f"the {what} opens only a slot that is not current: {stale[0]}")
    shown = tried[:_SLOTS_NAMED]
    names = ", ".join(f"{s.slot_id[:8]} ({s.kind}, {s.label})" for s in shown) or "none"
    if len(tried) > len(shown):
        names += f" and {len(tried) - len(shown)} more"
    unusable = ", ".join(
        f"{name.removeprefix('keys/').removeprefix('key slot ')[:8]} ({reason})"
        for name, reason in list(damaged.items())[:_SLOTS_NAMED]
    )
    if matched_damaged:
        raise KeySlotDamaged(
            f"the {what} matches a damaged key slot: {unusable}; open the repository "
            "with another password or the escrow key, then run 'coffer key list'"
        )
    message = f"the {what} opens none of the key slots tried: {names}"
    if damaged:
        message += f"; unusable slots: {unusable}"
    if any("not tried" in reason for reason in damaged.values()):
        message += "; name your slot with --key-id"
    raise WrongPassword(message)


def _check_anchor(anchor: Anchor | None, keyring: Keyring, keyset: bool, location: str) -> None:
    if anchor is None:
        return
    fix = "if this change is intended, delete the cached anchor and open again"
    if anchor.root != keyring.fingerprint():
        raise IntegrityError(
            f"the repository at {location} has other keys than when this host last opened it "
            f"(substituted?); refusing; {fix}"
        )
    if keyring.current < anchor.epoch:
        raise IntegrityError(
            f"the key slot gives key epoch {keyring.current}, but this host already used epoch "
            f"{anchor.epoch} (an old slot put back?); refusing; {fix}"
        )
    if anchor.keyset and not keyset:
        raise IntegrityError(
            f"the key set of the repository at {location} has disappeared; refusing the "
            f"legacy slot files; {fix}"
        )
