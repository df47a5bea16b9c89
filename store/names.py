"""The names of a repository's objects on the backend (store/FORMAT.md §1).

Every key and key prefix the engine reads or writes is spelled here and
nowhere else. It sits beside :mod:`store.ids`, beneath every layer, because
the backends need some of them too (the metadata cache keeps index, snapshot
and tree objects; the local backend knows which objects never change) and
``store.backend`` may not import ``store.format``.

Prefixes end with ``/``: ``backend.list(INDEX)`` lists index objects, and
``key[len(INDEX):]`` is the name after the prefix.
"""

from __future__ import annotations

from store.ids import PACK_DATA, PACK_TREE, IndexId, PackId, SnapshotId

# The repository's configuration (§4): the one object rewritten in place.
CONFIG = "config"
# Key slots (§3): the key set, and one object per slot in older repositories.
KEYS = "keys/"
KEYSET = "keys/keyset"
# Packs (§5), by kind: data/<xx>/<id>, tree/<xx>/<id>.
DATA_PACKS = "data/"
TREE_PACKS = "tree/"
PACKS = {PACK_DATA: DATA_PACKS, PACK_TREE: TREE_PACKS}
INDEX = "index/"  # §6
SNAPSHOTS = "snapshots/"  # §8
SESSIONS = "sessions/"  # §9: a running writer's marker
REPORTS = "reports/"  # §9: reports/<kind>/<id>
MARKS = "marks/"  # §11: packs prune condemned
LOCKS = "locks/"  # §12
MAINTENANCE_LOCK = "locks/maintenance"
LOCK_TAKEOVER = "locks/takeover-"  # + the holder being replaced
LOCK_PROBE = "locks/probe/"  # backends' create-if-absent probe


def pack_name(pack_id: PackId, kind: int) -> str:
    """Backend key of a pack: ``data/<xx>/<id>`` or ``tree/<xx>/<id>``."""
    name = pack_id.hex()
    return f"{PACKS[kind]}{name[:2]}/{name}"


def index_name(index_id: IndexId) -> str:
    """Backend key of an index object: ``index/<id>``."""
    return INDEX + index_id.hex()


def snapshot_name(snapshot_id: SnapshotId | str) -> str:
    """Backend key of a snapshot: ``snapshots/<id>`` (from the ID or its 64 hex digits)."""
    name = snapshot_id if isinstance(snapshot_id, str) else snapshot_id.hex()
    return SNAPSHOTS + name


def slot_name(slot_id: str) -> str:
    """Backend key of one key slot in an older repository: ``keys/<slot id>``."""
    return KEYS + slot_id


def reports_of(kind: str) -> str:
    """The prefix of the reports of one kind: ``reports/<kind>/``."""
    return f"{REPORTS}{kind}/"


__all__ = [
    "CONFIG",
    "DATA_PACKS",
    "INDEX",
    "KEYS",
    "KEYSET",
    "LOCKS",
    "LOCK_PROBE",
    "LOCK_TAKEOVER",
    "MAINTENANCE_LOCK",
    "MARKS",
    "PACKS",
    "REPORTS",
    "SESSIONS",
    "SNAPSHOTS",
    "TREE_PACKS",
    "index_name",
    "pack_name",
    "reports_of",
    "slot_name",
    "snapshot_name",
]
