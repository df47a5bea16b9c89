"""Snapshots and owners (FORMAT.md §8)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from store.errors import IntegrityError
from store.format.codec import (
    I64_MAX,
    decode_map,
    encode,
    field_bytes,
    field_int,
    field_list,
    field_map,
    field_str,
)
from store.format.paths import safe_component
from store.ids import ID_SIZE, BlobId, SnapshotId

OWNER_KINDS = ("users", "sites", "teams", "groups", "folders")
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, order=True)
class Owner:
    """Whose data a snapshot holds: a Microsoft 365 user, site or team, or a folder.

    ``key`` is the stable identity (a Graph object ID, ``host:/path``); ``name``
    is what people read (a UPN, a site URL) and may change between runs.
    """

    kind: str
    key: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in OWNER_KINDS:
            raise ValueError(f"owner kind must be one of {OWNER_KINDS}, not {self.kind!r}")
        if not self.key:
            raise ValueError("owner key must not be empty")

    @property
    def identity(self) -> str:
        """``kind/key``: unique across the repository."""
        return f"{self.kind}/{self.key}"

    @property
    def path(self) -> str:
        """``<kind>/<name>`` with the name made one safe path component.

        Used wherever owners appear as directories (restore of several owners,
        the mount's ``snapshots/<time>/<kind>/<name>``).
        """
        return f"{self.kind}/{safe_component(self.name or self.key)}"

    def to_map(self) -> dict[str, str]:
        return {"kind": self.kind, "key": self.key, "name": self.name}

    @classmethod
    def from_map(cls, data: object, what: str = "owner") -> Owner:
        """Parse ``{"kind", "key", "name"}``. Raises IntegrityError."""
        data = field_map(data, what, "owner")
        key = field_str(data.get("key"), what, "owner key")
        name = field_str(data.get("name", key), what, "owner name")
        try:
            return cls(field_str(data.get("kind"), what, "owner kind"), key, name)
        except ValueError as exc:
            raise IntegrityError(f"{what}: {exc}") from None


@dataclass(frozen=True)
class Snapshot:
    """One owner's tree at one point in time. ``snapshot_id`` is set once stored."""

    owner: Owner
    run: str
    time_ns: int
    tree: BlobId
    partial: bool = False
    parent: SnapshotId | None = None
    sync: tuple[BlobId, ...] = ()
    host: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    snapshot_id: SnapshotId | None = field(default=None, compare=False)

    def encode(self) -> bytes:
        return encode(
            {
                "v": SNAPSHOT_VERSION,
                "owner": self.owner.to_map(),
                "run": self.run,
                "time": self.time_ns,
                "partial": self.partial,
                "tree": self.tree,
                "parent": self.parent,
                "sync": list(self.sync),
                "host": self.host,
                "source": self.source,
                "stats": self.stats,
                "tags": list(self.tags),
            }
        )

    @classmethod
    def decode(cls, raw: bytes, snapshot_id: SnapshotId, what: str) -> Snapshot:
        """Parse a snapshot plaintext. Raises FormatTooNew, IntegrityError."""
        data = decode_map(raw, what, SNAPSHOT_VERSION)
        parent = data.get("parent")
        partial = data.get("partial", False)
        if not isinstance(partial, bool):
            raise IntegrityError(f"{what}: malformed partial flag")
        return cls(
            owner=Owner.from_map(data.get("owner"), what),
            run=field_str(data.get("run"), what, "run"),
            # Shown as a date everywhere: a time beyond int64 ns (year 2262)
            # or before 1970 is damage, not a crash of `coffer snapshots`.
            time_ns=field_int(data.get("time"), what, "time", 0, I64_MAX),
            tree=BlobId(field_bytes(data.get("tree"), what, "tree", ID_SIZE)),
            partial=partial,
            parent=SnapshotId(field_bytes(parent, what, "parent", ID_SIZE)) if parent else None,
            sync=tuple(
                BlobId(field_bytes(x, what, "sync blob", ID_SIZE))
                for x in field_list(data.get("sync", []), what, "sync")
            ),
            host=field_str(data.get("host", ""), what, "host"),
            source=dict(field_map(data.get("source") or {}, what, "source")),
            stats=dict(field_map(data.get("stats") or {}, what, "stats")),
            tags=tuple(
                field_str(t, what, "tag") for t in field_list(data.get("tags", []), what, "tags")
            ),
            snapshot_id=snapshot_id,
        )

    def with_id(self, snapshot_id: SnapshotId) -> Snapshot:
        return replace(self, snapshot_id=snapshot_id)

    @property
    def id_hex(self) -> str:
        assert self.snapshot_id is not None
        return self.snapshot_id.hex()

    @property
    def short_id(self) -> str:
        return self.id_hex[:8]

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ns / 1e9, UTC)


def format_time(time_ns: int, *, precision: int = 6) -> str:
    """A sortable, shell-safe UTC time: ``2026-11-25T14-41-13.482913Z``.

    No colons (they trouble scp, rsync and Windows); ``precision`` digits of
    sub-second time (0 to 9).
    """
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H-%M-%S")
    if precision <= 0:
        return base + "Z"
    fraction = f"{nanos:09d}"[:precision]
    return f"{base}.{fraction}Z"


def latest_per_owner(snapshots: list[Snapshot]) -> list[Snapshot]:
    """The newest completed snapshot of each owner, sorted by owner."""
    best: dict[str, Snapshot] = {}
    for snap in snapshots:
        if snap.partial:
            continue
        current = best.get(snap.owner.identity)
        if current is None or snap.time_ns > current.time_ns:
            best[snap.owner.identity] = snap
    return sorted(best.values(), key=lambda s: (s.owner.kind, s.owner.name, s.owner.key))
