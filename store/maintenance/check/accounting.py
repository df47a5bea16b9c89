"""Accounting for objects that disappeared: lost, or removed on purpose?

Nothing in a repository refers to a snapshot, a report or a key slot, so a
deleted one cannot be found by following references. Instead every command
that deletes objects journals them in its report (``"deleted"``), repairs
journal what they declared lost (``"acknowledged"``), backup reports name the
snapshots they wrote, and ``check`` remembers the inventory it saw (the
anchor, store/cache/checkstate.py). An object expected and gone, that no journal
accounts for, is damage. Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from store.cache.checkstate import Anchor
from store.format.snapshot import Snapshot
from store.ids import IndexId
from store.names import INDEX, reports_of, snapshot_name


@dataclass
class Journal:
    """What the stored reports say about objects coming and going."""

    deleted: set[str] = field(default_factory=set)
    acknowledged: set[str] = field(default_factory=set)
    # snapshot key -> the backup report that says it was written
    written_snapshots: dict[str, str] = field(default_factory=dict)


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def read_journal(reports: Mapping[str, Mapping[str, Any]]) -> Journal:
    """Collect the journal from decoded reports (report key -> content)."""
    journal = Journal()
    for key, report in reports.items():
        journal.deleted.update(_strings(report.get("deleted")))
        journal.acknowledged.update(_strings(report.get("acknowledged")))
        if key.startswith(reports_of("backup")):
            owners = report.get("owners")
            for owner in owners if isinstance(owners, list) else []:
                snapshot = owner.get("snapshot") if isinstance(owner, dict) else None
                if isinstance(snapshot, str) and len(snapshot) == 64:
                    journal.written_snapshots[snapshot_name(snapshot)] = key
    return journal


def unaccounted_missing(
    present: set[str],
    anchor: Anchor | None,
    journal: Journal,
    snapshots: Iterable[Snapshot],
    superseded: set[IndexId],
) -> list[str]:
    """Keys that should exist and do not, with no record of a legitimate removal."""
    expected = set(journal.written_snapshots)
    if anchor is not None:
        expected |= anchor.keys
    missing = expected - present - journal.deleted - journal.acknowledged
    newest: dict[str, int] = {}
    for snap in snapshots:
        identity = snap.owner.identity
        newest[identity] = max(newest.get(identity, snap.time_ns), snap.time_ns)
    out = []
    for key in sorted(missing):
        if key.startswith(INDEX):
            try:
                if IndexId(bytes.fromhex(key[len(INDEX) :])) in superseded:
                    continue  # replaced by a newer index object (prune, repair)
            except ValueError:
                pass
        if anchor is not None and key in anchor.partial:
            identity, time_ns = anchor.partial[key]
            if newest.get(identity, -1) >= time_ns:
                continue  # a checkpoint superseded by a later snapshot of its owner
        out.append(key)
    return out


def next_anchor(
    time_ns: int,
    present: set[str],
    still_missing: list[str],
    snapshots: Iterable[Snapshot],
    previous: Anchor | None,
) -> Anchor:
    """The anchor to keep after a check: what exists, plus what is still unaccounted.

    Unaccounted losses stay in it so that every later check reports them again,
    until a repair acknowledges them.
    """
    partial = {
        snapshot_name(s.id_hex): (s.owner.identity, s.time_ns)
        for s in snapshots
        if s.partial and s.snapshot_id is not None
    }
    if previous is not None:
        for key in still_missing:
            if key in previous.partial:
                partial[key] = previous.partial[key]
    return Anchor(time_ns=time_ns, keys=present | set(still_missing), partial=partial)
