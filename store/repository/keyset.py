"""The key set: every key slot of a repository in one object (FORMAT.md §3).

``keys/keyset`` holds all slots, so that every change of the slots (add,
remove, a new password, a rotation) is one atomic put: a rotation that dies
before the put changed nothing, one that dies after it is complete, and no
host ever sees half a rotation (other hosts back up under one new key, never
two). The file itself is not authenticated; each slot in it carries a MAC
under the current epoch's key (:meth:`store.format.keys.KeySlot.authenticate`), and
slots whose MAC does not verify are ignored, never rewrapped.

Repositories written before the key set have one legacy file per slot
(``keys/<slot id>``); :func:`read_legacy_slots` reads them, bounded.

Pure parsing here, plus two read functions that take a backend. Thread-safe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from store.backend import Backend
from store.errors import IntegrityError, ObjectNotFound, StoreError
from store.format.keys import (
    KEYSET_FORMAT,
    KEYSET_VERSION,
    MAX_KEYSET_BYTES,
    MAX_KEYSET_ENTRIES,
    KeySlot,
)
from store.names import KEYS, KEYSET

# Legacy ``keys/<slot id>`` files read at most (anyone who can write keys/
# could plant thousands; a repository holds at most 32 slots).
MAX_LEGACY_FILES = 64


@dataclass
class Keyset:
    """A parsed ``keys/keyset``: the slots, and entries that are not slots."""

    epoch: int
    slots: list[KeySlot] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)  # entry name -> why
    canonical: bool = True  # False: the bytes were not in canonical form (altered)

    def to_json(self) -> bytes:
        """The canonical bytes of this key set (damaged entries are dropped)."""
        body: dict[str, Any] = {
            "format": KEYSET_FORMAT,
            "version": KEYSET_VERSION,
            "epoch": self.epoch,
            "slots": {slot.slot_id: slot.fields for slot in self.slots},
        }
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def parse(cls, raw: bytes) -> Keyset:
        """Parse a key set. Raises IntegrityError when the object is not one.

        A malformed entry does not make the whole set unreadable: it lands in
        ``damaged``. Bounded: refuses more than MAX_KEYSET_BYTES bytes or
        MAX_KEYSET_ENTRIES entries before parsing them.
        """
        if len(raw) > MAX_KEYSET_BYTES:
            raise IntegrityError(f"{KEYSET} is refused: {len(raw)} bytes is too large")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise IntegrityError(f"{KEYSET} is damaged: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != KEYSET_FORMAT:
            raise IntegrityError(f"{KEYSET} is not a Coffer key set")
        version = data.get("version")
        if version != KEYSET_VERSION:
            raise IntegrityError(f"{KEYSET}: unknown key set version {version!r}")
        epoch = data.get("epoch")
        entries = data.get("slots")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or not isinstance(entries, dict):
            raise IntegrityError(f"{KEYSET} is damaged: no epoch or no slots")
        if len(entries) > MAX_KEYSET_ENTRIES:
            raise IntegrityError(f"{KEYSET} is refused: {len(entries)} entries")
        keyset = cls(epoch)
        # Every byte counts (check): the file must be the canonical form of its JSON.
        keyset.canonical = raw == json.dumps(data, indent=1, sort_keys=True).encode()
        for slot_id, fields in sorted(entries.items()):
            name = f"key slot {str(slot_id)[:8]}"
            try:
                slot = KeySlot.from_fields(fields, name)
            except StoreError as exc:
                keyset.damaged[name] = str(exc)
                continue
            if slot.slot_id != slot_id:
                keyset.damaged[name] = f"{name} names slot {slot.slot_id}: moved or damaged"
                continue
            keyset.slots.append(slot)
        return keyset


def read_keyset(backend: Backend) -> Keyset | None:
    """The repository's key set, or None for a repository of legacy slot files.

    Raises IntegrityError when ``keys/keyset`` exists but is not a key set.
    """
    try:
        raw = backend.get(KEYSET)
    except ObjectNotFound:
        return None
    return Keyset.parse(raw)


def stray_files(backend: Backend) -> list[str]:
    """Every object under ``keys/`` but the key set itself, sorted."""
    return sorted(info.key for info in backend.list(KEYS) if info.key != KEYSET)


def read_legacy_slots(
    backend: Backend, first: list[str] | None = None, limit: int = MAX_LEGACY_FILES
) -> tuple[list[tuple[KeySlot, bytes]], dict[str, str]]:
    """Legacy slot files (with their bytes), and the unusable ones with the reason.

    Files whose slot ID starts with one of ``first`` are read first; at most
    ``limit`` files are read, the rest are named as not read. Never raises
    for a damaged file.
    """
    keys = stray_files(backend)
    prefixes = [p.lower() for p in first or [] if p]

    def rank(key: str) -> int:
        name = key.rpartition("/")[2]
        return next((i for i, p in enumerate(prefixes) if name.startswith(p)), len(prefixes))

    keys.sort(key=lambda k: (rank(k), k))
    slots: list[tuple[KeySlot, bytes]] = []
    damaged: dict[str, str] = {}
    for number, key in enumerate(keys):
        if number >= limit:
            damaged[key] = f"not read: more than {limit} files under keys/"
            continue
        try:
            raw = backend.get(key)
            slots.append((KeySlot.parse(raw, key), raw))
        except ObjectNotFound:
            continue  # removed between list and get
        except StoreError as exc:
            damaged[key] = str(exc)
    return slots, damaged
