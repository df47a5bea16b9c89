"""Snapshots and owners (FORMAT.md §8)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from store.codec import pack, unpack
from store.errors import IntegrityError
from store.ids import BlobId, SnapshotId
from store.paths import safe_component

OWNER_KINDS = ("users", "sites", "teams", "groups", "folders")


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
    def from_map(cls, data: dict[str, Any]) -> Owner:
        return cls(str(data["kind"]), str(data["key"]), str(data.get("name", data["key"])))


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
        return pack(
            {
                "v": 1,
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
        data = unpack(raw, what)
        try:
            if int(data["v"]) > 1:
                raise IntegrityError(f"{what}: snapshot version {data['v']} is too new")
            parent = data.get("parent")
            return cls(
                owner=Owner.from_map(data["owner"]),
                run=str(data["run"]),
                time_ns=int(data["time"]),
                tree=BlobId(bytes(data["tree"])),
                partial=bool(data.get("partial", False)),
                parent=SnapshotId(bytes(parent)) if parent else None,
                sync=tuple(BlobId(bytes(x)) for x in data.get("sync", [])),
                host=str(data.get("host", "")),
                source=dict(data.get("source") or {}),
                stats=dict(data.get("stats") or {}),
                tags=tuple(str(t) for t in data.get("tags", [])),
                snapshot_id=snapshot_id,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{what}: malformed snapshot ({exc})") from exc

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
