"""Choosing snapshots from what a user typed: ``latest``, an ID prefix, owners."""

from __future__ import annotations

from fnmatch import fnmatchcase

from store.errors import SnapshotNotFound
from store.format.snapshot import Snapshot, latest_per_owner


def owner_matches(snapshot: Snapshot, patterns: list[str]) -> bool:
    """True if any pattern (a glob) matches the owner's name, key or ``kind/name``."""
    owner = snapshot.owner
    candidates = (owner.name, owner.key, owner.identity, f"{owner.kind}/{owner.name}")
    return any(fnmatchcase(c.lower(), p.lower()) for p in patterns for c in candidates)


def select_snapshots(
    snapshots: list[Snapshot], selector: str, owners: list[str] | None = None
) -> list[Snapshot]:
    """Resolve ``selector`` against ``snapshots``.

    ``latest``: the newest completed snapshot of each owner (narrowed by
    ``owners``). Otherwise an ID or unique ID prefix (4+ hex digits).
    Raises SnapshotNotFound when nothing (or more than one, for a prefix) matches.
    """
    pool = [s for s in snapshots if not owners or owner_matches(s, owners)]
    if selector == "latest":
        chosen = latest_per_owner(pool)
        if not chosen:
            what = f" of {', '.join(owners)}" if owners else ""
            raise SnapshotNotFound(f"there is no completed snapshot{what}")
        return chosen
    prefix = selector.lower()
    if len(prefix) < 4 or any(ch not in "0123456789abcdef" for ch in prefix):
        raise SnapshotNotFound(f"{selector!r} is neither 'latest' nor a snapshot ID")
    matches = [s for s in pool if s.id_hex.startswith(prefix)]
    if not matches:
        raise SnapshotNotFound(f"no snapshot with ID {selector}")
    if len(matches) > 1:
        raise SnapshotNotFound(f"snapshot ID prefix {selector} is ambiguous; give more digits")
    return matches
