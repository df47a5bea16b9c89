"""What a check found (store/maintenance/check/): findings, damaged packs, affected snapshots.

Plain data, no I/O; ``to_report`` is the JSON stored as the ``check`` report
(FORMAT.md §9 lists the fields others rely on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NotRequired, TypedDict

from store.cache.checkstate import Anchor
from store.format.snapshot import Snapshot
from store.ids import BlobId

ERROR = "error"
WARNING = "warning"


class ProblemJSON(TypedDict):
    code: str
    severity: str
    message: str
    key: NotRequired[str]  # the object concerned, when there is one


class BadPackJSON(TypedDict):
    pack: str
    reasons: list[str]
    snapshots: list[str]  # the snapshots its lost blobs affect


class AffectedJSON(TypedDict):
    snapshot: str
    owner: str  # kind/name
    owner_key: str
    time: int
    partial: bool


class CheckReport(TypedDict):
    """The stored ``check`` report, and what ``coffer check --json`` prints."""

    repository: str
    started: int
    finished: int
    read_data: bool
    subset: str | None
    resumed: bool
    counts: dict[str, int]
    damaged: bool
    errors: int
    warnings: int
    problems: list[ProblemJSON]
    bad_packs: list[BadPackJSON]
    lost_blobs: int
    affected: list[AffectedJSON]
    affected_owners: list[str]


@dataclass
class Problem:
    """One finding. Errors mean damage (exit code 13); warnings do not."""

    code: str
    message: str
    severity: str = ERROR
    key: str | None = None

    def to_json(self) -> ProblemJSON:
        out: ProblemJSON = {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
        }
        if self.key is not None:
            out["key"] = self.key
        return out


@dataclass
class CheckResult:
    """Everything a check found; ``to_report`` is what is stored."""

    repo_id: str
    started_ns: int
    read_data: bool = False
    subset: str | None = None
    resumed: bool = False
    finished_ns: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    bad_packs: dict[str, list[str]] = field(default_factory=dict)  # pack hex -> reasons
    pack_affects: dict[str, list[str]] = field(default_factory=dict)  # pack hex -> snapshot hex
    lost_blobs: set[BlobId] = field(default_factory=set)
    affected: list[Snapshot] = field(default_factory=list)
    anchor: Anchor | None = None

    def add(self, code: str, message: str, *, key: str | None = None, warn: bool = False) -> None:
        self.problems.append(Problem(code, message, WARNING if warn else ERROR, key))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def damaged(self) -> bool:
        return bool(self.errors)

    def to_report(self) -> CheckReport:
        return {
            "repository": self.repo_id,
            "started": self.started_ns,
            "finished": self.finished_ns,
            "read_data": self.read_data,
            "subset": self.subset,
            "resumed": self.resumed,
            "counts": self.counts,
            "damaged": self.damaged,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": [p.to_json() for p in self.problems],
            "bad_packs": [
                {"pack": pack, "reasons": reasons, "snapshots": self.pack_affects.get(pack, [])}
                for pack, reasons in sorted(self.bad_packs.items())
            ],
            "lost_blobs": len(self.lost_blobs),
            "affected": [
                {
                    "snapshot": s.id_hex,
                    "owner": f"{s.owner.kind}/{s.owner.name}",
                    "owner_key": s.owner.key,
                    "time": s.time_ns,
                    "partial": s.partial,
                }
                for s in self.affected
            ],
            "affected_owners": sorted({f"{s.owner.kind}/{s.owner.name}" for s in self.affected}),
        }
