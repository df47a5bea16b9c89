"""``check``: prove a repository intact, or say exactly what is damaged.

The structural pass reads every small object afresh from the backend (config,
key slots, index objects, snapshots, marks, sessions, reports), verifies each
one's authentication, then walks every snapshot's trees through the index it
just verified: every tree page and data chunk must be indexed in a pack that
exists with exactly the size its index entries imply. It reads tree blobs
(metadata), never data packs. ``read_data`` (store/maintenance/check/read_data.py) then reads
whole packs and authenticates every byte.

Check never changes the repository. store/maintenance/check/run.py runs this
pass, then the data read and :func:`locate_damage`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from store.backend import Backend
from store.cache.checkstate import Anchor
from store.errors import BlobMissing, IntegrityError, ObjectNotFound, StoreError
from store.format.codec import decode
from store.format.config import decode_config, read_header
from store.format.crypto import keyed_hash
from store.format.index import IndexObject, PackRecord
from store.format.pack import BlobEntry, open_blob
from store.format.snapshot import Snapshot
from store.format.tree import Page, TreeReader
from store.ids import DATA, PACK_KIND_FOR_TYPE, TREE, BlobId, IndexId, PackId, SnapshotId
from store.maintenance.check.accounting import next_anchor, read_journal, unaccounted_missing
from store.maintenance.check.result import CheckResult
from store.maintenance.inventory import Inventory, take_inventory
from store.maintenance.keyops import load_slot_set
from store.maintenance.packverify import expected_pack_size
from store.maintenance.references import Reachability, affected_snapshots
from store.maintenance.temporaries import find_temporaries
from store.names import (
    CONFIG,
    DATA_PACKS,
    INDEX,
    KEYS,
    KEYSET,
    TREE_PACKS,
    index_name,
    snapshot_name,
)
from store.repository.marks import Mark, load_mark
from store.repository.repository import Repository

# Findings of one kind listed one by one, before a summary line.
_DETAILS = 20
# A session marker not refreshed for this long belongs to a backup that died.
STALE_SESSION_NS = 24 * 3600 * 10**9


@dataclass(frozen=True)
class Location:
    pack_id: PackId
    epoch: int
    entry: BlobEntry


class StructureCheck:
    """The structural pass. Build it, call :meth:`run`, then read its fields."""

    def __init__(self, repo: Repository, result: CheckResult, anchor: Anchor | None) -> None:
        self.repo = repo
        self.result = result
        self.anchor = anchor
        self.inv: Inventory = Inventory()
        self.records: dict[PackId, PackRecord] = {}
        self.locations: dict[BlobId, list[Location]] = {}
        self.marked: dict[PackId, Mark] = {}
        self.marked_locations: dict[BlobId, Location] = {}
        self.revive_needed: set[BlobId] = set()
        self.snapshots: list[Snapshot] = []
        self.superseded: set[IndexId] = set()
        self.reports: dict[str, dict[str, Any]] = {}
        self.missing_blobs: set[BlobId] = set()
        self.reach: Reachability | None = None
        self.tree_reader = TreeReader(self._load_tree_blob)

    # -- helpers --------------------------------------------------------

    # An object listed and gone when read was removed meanwhile (a backup's
    # session ending, a concurrent forget or prune): not damage by itself. A
    # real loss is found by the accounting against the anchor (accounting.py).

    def _get(self, key: str) -> bytes | None:
        try:
            return self.repo.backend.get(key)
        except ObjectNotFound:
            self.result.counts["vanished"] = self.result.counts.get("vanished", 0) + 1
            return None

    def _sealed(self, kind: str, key: str) -> bytes | None:
        try:
            return self.repo.load_object(kind, key)
        except ObjectNotFound:
            self.result.counts["vanished"] = self.result.counts.get("vanished", 0) + 1
        except StoreError as exc:
            self.result.add("object-damaged", f"{key}: {exc}", key=key)
        return None

    def present_location(self, blob_id: BlobId) -> Location | None:
        for loc in self.locations.get(blob_id, []):
            if loc.pack_id in self.inv.packs:
                return loc
        return None

    def _load_tree_blob(self, blob_id: BlobId) -> bytes:
        loc = self.present_location(blob_id)
        if loc is None and blob_id in self.marked_locations:
            loc = self.marked_locations[blob_id]
            self.revive_needed.add(blob_id)
        if loc is None:
            raise BlobMissing(f"tree blob {blob_id.hex()[:8]} is not in any present pack")
        if loc.entry.type != TREE:
            raise IntegrityError(f"blob {blob_id.hex()[:8]} is indexed as data, used as a tree")
        return self.read_blob(loc, blob_id)

    def read_blob(self, loc: Location, blob_id: BlobId) -> bytes:
        entry = loc.entry
        pack = self.inv.packs[loc.pack_id]
        what = f"blob {blob_id.hex()[:8]} in {pack.key}"
        sealed = self.repo.backend.get(pack.key, entry.offset, entry.length)
        if len(sealed) != entry.length:
            raise IntegrityError(f"{what}: pack is truncated")
        key = self.repo.keyring.epoch_key(loc.epoch, what)
        plain = open_blob(sealed, key, loc.pack_id, entry, what)
        if keyed_hash(self.repo.keyring.blob_id_key, plain) != blob_id:
            raise IntegrityError(f"{what}: content does not match its ID")
        return plain

    def load_page(self, blob_id: BlobId) -> Page:
        return self.tree_reader.page(blob_id)

    # -- the pass -------------------------------------------------------

    def run(self) -> None:
        self.inv = take_inventory(self.repo.backend)
        # Snapshots as first listed, index objects and packs as listed after
        # them (like restic: a snapshot seen has its index and packs written
        # before it, so a backup running meanwhile causes no false alarm).
        for prefix in (INDEX, DATA_PACKS, TREE_PACKS):  # in this order
            later = take_inventory(self.repo.backend, prefix)
            self.inv.indexes.update(later.indexes)
            for pack_id, pack in later.packs.items():
                self.inv.packs.setdefault(pack_id, pack)
        self._check_config()
        self._check_keys()
        self._check_indexes()
        self._check_marks()
        self._check_small_objects()
        self._check_packs()
        self._check_snapshots()
        self._check_references()
        self._check_accounting()
        for key in sorted(self.inv.unknown):
            self.result.add(
                "unknown-object", f"{key} is not part of the format", key=key, warn=True
            )
        for key in self.inv.duplicate_packs:
            self.result.add("duplicate-pack", f"{key}: the same pack ID exists twice", key=key)
        note_temporaries(self.repo.backend, self.result)

    def _check_config(self) -> None:
        if self.inv.config is None:
            self.result.add("config-missing", "config is missing", key=CONFIG)
            return
        raw = self._get(CONFIG)
        if raw is None:
            return
        try:
            header = read_header(raw)
            config = decode_config(header, self.repo.keyring)
            if config != self.repo.config:
                raise IntegrityError("config changed while the repository was open")
        except StoreError as exc:
            self.result.add("config-damaged", f"config: {exc}", key=CONFIG)

    def _check_keys(self) -> None:
        try:
            found = load_slot_set(self.repo)
        except StoreError as exc:
            self.result.add("key-damaged", str(exc), key=KEYSET)
            return
        for name, reason in sorted(found.ignored.items()):
            if name == KEYSET:
                advice = "'coffer key rotate' rewrites it"
            elif name.startswith(KEYS):
                advice = f"ignored; 'coffer key remove {name.rpartition('/')[2][:8]}' deletes it"
            else:
                advice = "ignored; 'coffer key rotate' drops it from the key set"
            key = name if name.startswith(KEYS) else KEYSET
            self.result.add("key-damaged", f"{name} {reason}: {advice}", key=key)
        for key in found.legacy_files if found.keyset else []:
            self.result.add(
                "key-leftover",
                f"{key}: legacy slot file already in the key set; the next key command deletes it",
                key=key,
                warn=True,
            )
        if not any(slot.kind == "password" for slot in found.slots):
            self.result.add("no-password-slot", "no intact password slot", warn=True)
        self.result.counts["key_slots"] = len(found.slots)

    def _check_indexes(self) -> None:
        for index_id in sorted(self.inv.indexes):
            key = index_name(index_id)
            plain = self._sealed("index", key)
            if plain is None:
                continue
            if self.repo.object_id(plain) != index_id:
                self.result.add(
                    "object-damaged", f"{key}: content does not match its name", key=key
                )
                continue
            try:
                obj = IndexObject.decode(plain, key)
            except StoreError as exc:
                self.result.add("object-damaged", str(exc), key=key)
                continue
            self.superseded.update(obj.supersedes)
            for record in obj.packs:
                self._add_record(record, key)
        self.result.counts["index_objects"] = len(self.inv.indexes)
        self.result.counts["indexed_packs"] = len(self.records)
        self.result.counts["indexed_blobs"] = len(self.locations)

    def _add_record(self, record: PackRecord, key: str) -> None:
        known = self.records.get(record.pack_id)
        if known is not None:
            if [e.as_list() for e in known.entries] != [e.as_list() for e in record.entries]:
                self.result.add(
                    "index-conflict",
                    f"{key} and another index object disagree about pack {record.pack_id.hex()}",
                    key=key,
                )
            return
        self.records[record.pack_id] = record
        for entry in record.entries:
            self.locations.setdefault(entry.blob_id, []).append(
                Location(record.pack_id, record.epoch, entry)
            )

    def _check_marks(self) -> None:
        for key in sorted(self.inv.marks):
            try:
                mark = load_mark(self.repo, key)
            except ObjectNotFound:
                continue
            except StoreError as exc:
                self.result.add("object-damaged", f"{key}: {exc}", key=key)
                continue
            for marked in mark.packs:
                self.marked[marked.pack_id] = mark
                if marked.entries is not None and marked.pack_id in self.inv.packs:
                    assert marked.epoch is not None
                    for entry in marked.entries:
                        self.marked_locations[entry.blob_id] = Location(
                            marked.pack_id, marked.epoch, entry
                        )
        self.result.counts["marked_packs"] = len(self.marked)

    def _check_small_objects(self) -> None:
        now = time.time_ns()
        for key in sorted(self.inv.sessions):
            plain = self._sealed("session", key)
            if plain is None:
                continue
            try:
                refreshed = int(decode(plain, key)["refreshed"])
            except (StoreError, KeyError, TypeError, ValueError):
                self.result.add("object-damaged", f"{key}: malformed session marker", key=key)
                continue
            if now - refreshed > STALE_SESSION_NS:
                self.result.add(
                    "stale-session",
                    f"{key}: a backup that stopped without cleaning up (prune removes it)",
                    key=key,
                    warn=True,
                )
        for key in sorted(self.inv.locks):
            self._sealed("lock", key)
        for key in sorted(self.inv.reports):
            try:
                self.reports[key] = self.repo.load_report(key)
            except ObjectNotFound:
                continue
            except StoreError as exc:
                self.result.add("object-damaged", f"{key}: {exc}", key=key)
            except ValueError as exc:
                self.result.add("object-damaged", f"{key}: not JSON ({exc})", key=key)
        self.result.counts["reports"] = len(self.inv.reports)

    def _check_packs(self) -> None:
        for pack_id, record in self.records.items():
            name = pack_id.hex()
            listed = self.inv.packs.get(pack_id)
            if listed is None:
                self.result.add(
                    "pack-missing", f"pack {name} is indexed but missing", key=f"pack:{name}"
                )
                self.result.bad_packs.setdefault(name, []).append("missing")
                continue
            if listed.kind != record.kind:
                self.result.add("pack-kind", f"{listed.key}: the index says kind {record.kind}")
            expected = expected_pack_size(record.entries)
            if expected is None:
                self.result.add("index-damaged", f"the index entries of {name} do not tile")
            elif expected != listed.size:
                self.result.add(
                    "pack-size",
                    f"{listed.key} has {listed.size} bytes, its index implies {expected}",
                    key=listed.key,
                )
                self.result.bad_packs.setdefault(name, []).append("wrong size")
                self.result.lost_blobs.update(
                    e.blob_id for e in record.entries if e.offset + e.length > listed.size
                )
        unindexed = [
            pack
            for pack_id, pack in sorted(self.inv.packs.items())
            if pack_id not in self.records and pack_id not in self.marked
        ]
        for pack in unindexed[:_DETAILS]:
            self.result.add(
                "pack-unindexed",
                f"{pack.key} is in no index (a backup still running or interrupted, or a "
                "lost index: 'coffer repair index' indexes it, 'coffer prune' removes it)",
                key=pack.key,
                warn=True,
            )
        if len(unindexed) > _DETAILS:
            self.result.add(
                "pack-unindexed", f"... and {len(unindexed) - _DETAILS} more packs", warn=True
            )
        self.result.counts["packs"] = len(self.inv.packs)
        self.result.counts["pack_bytes"] = self.inv.pack_bytes()

    def _check_snapshots(self) -> None:
        for snapshot_id in sorted(self.inv.snapshots):
            key = snapshot_name(snapshot_id)
            plain = self._sealed("snapshot", key)
            if plain is None:
                continue
            if self.repo.object_id(plain) != snapshot_id:
                self.result.add(
                    "object-damaged", f"{key}: content does not match its name", key=key
                )
                continue
            try:
                self.snapshots.append(Snapshot.decode(plain, SnapshotId(snapshot_id), key))
            except StoreError as exc:
                self.result.add("object-damaged", str(exc), key=key)
        self.snapshots.sort(key=lambda s: (s.time_ns, s.owner.identity))
        self.result.counts["snapshots"] = len(self.snapshots)

    def _check_references(self) -> None:
        reach = Reachability(self.load_page)
        for snapshot in self.snapshots:
            reach.add(snapshot)
        self.reach = reach
        found: dict[str, list[str]] = {}
        for page_id, reason in reach.unreadable.items():
            self.missing_blobs.add(page_id)
            code = "blob-missing" if self.present_location(page_id) is None else "tree-damaged"
            found.setdefault(code, []).append(f"tree page {page_id.hex()[:8]}: {reason}")
        for blob_id in sorted(self.revive_needed):
            found.setdefault("blob-marked", []).append(f"tree blob {blob_id.hex()[:8]}")
        for blob_id in reach.sync_blobs:
            self._expect(blob_id, TREE, found)
        for blob_id in reach.data_blobs:
            self._expect(blob_id, DATA, found)
        for code, messages in found.items():
            warn = code == "blob-marked"
            for message in messages[:_DETAILS]:
                if warn:
                    message += (
                        " is only in a pack marked for deletion (a backup overlapped a "
                        "prune; the next prune revives it)"
                    )
                self.result.add(code, message, warn=warn)
            if len(messages) > _DETAILS:
                self.result.add(
                    code, f"... and {len(messages) - _DETAILS} more like the above", warn=warn
                )
        self.result.counts["tree_blobs"] = len(reach.tree_blobs)
        self.result.counts["data_blobs"] = len(reach.data_blobs)

    def _expect(self, blob_id: BlobId, blob_type: int, found: dict[str, list[str]]) -> None:
        loc = self.present_location(blob_id)
        label = "data" if blob_type == DATA else "tree"
        if loc is None:
            if blob_id in self.marked_locations:
                found.setdefault("blob-marked", []).append(f"{label} blob {blob_id.hex()[:8]}")
                return
            self.missing_blobs.add(blob_id)
            found.setdefault("blob-missing", []).append(f"{label} blob {blob_id.hex()[:8]} is lost")
        elif PACK_KIND_FOR_TYPE[loc.entry.type] != PACK_KIND_FOR_TYPE[blob_type]:
            self.missing_blobs.add(blob_id)
            found.setdefault("blob-type", []).append(
                f"blob {blob_id.hex()[:8]} is indexed as the wrong type"
            )

    def _check_accounting(self) -> None:
        journal = read_journal(self.reports)
        present = self.inv.all_keys()
        missing = unaccounted_missing(
            present, self.anchor, journal, self.snapshots, self.superseded
        )
        for key in missing:
            self.result.add(
                "object-lost",
                f"{key} existed and is gone, and no forget, prune, repair or key command "
                "removed it",
                key=key,
            )
        self.result.anchor = next_anchor(
            time.time_ns(), present, missing, self.snapshots, self.anchor
        )


def note_temporaries(backend: Backend, result: CheckResult, *, details: int = 20) -> None:
    """Add check warnings for stale temporary objects (``stale-temporary``) and
    count every temporary in ``result.counts["temporaries"]``."""
    found = find_temporaries(backend)
    result.counts["temporaries"] = len(found.stale) + found.recent
    for temp in found.stale[:details]:
        result.add(
            "stale-temporary",
            f"{temp.key}: {temp.size} bytes left by an interrupted write (prune removes it)",
            key=temp.key,
            warn=True,
        )
    if len(found.stale) > details:
        result.add(
            "stale-temporary",
            f"{len(found.stale)} temporary objects ({found.stale_bytes} bytes) in all "
            "left by interrupted writes (prune removes them)",
            warn=True,
        )


def locate_damage(structure: StructureCheck) -> None:
    """Fill in which blobs are lost and which snapshots and owners that affects.

    A blob found bad is lost only if no other copy sits in a pack that is
    present and not found bad.
    """
    result = structure.result
    bad = result.bad_packs
    lost = set(structure.missing_blobs)
    for blob_id in result.lost_blobs:
        copies = structure.locations.get(blob_id, [])
        if not any(
            loc.pack_id in structure.inv.packs and loc.pack_id.hex() not in bad for loc in copies
        ):
            lost.add(blob_id)
    result.lost_blobs = lost
    result.affected = affected_snapshots(structure.snapshots, lost, structure.load_page)
    for name in list(bad)[:50]:
        record = structure.records.get(PackId(bytes.fromhex(name)))
        if record is None:
            continue
        pack_lost = {e.blob_id for e in record.entries} & lost
        hit = affected_snapshots(result.affected, pack_lost, structure.load_page)
        result.pack_affects[name] = [s.id_hex for s in hit]


__all__ = ["Location", "StructureCheck", "locate_damage"]
