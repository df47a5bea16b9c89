"""``forget``: apply retention policies per owner and delete snapshot objects.

Each owner (user, site, team, folder) keeps its own history: policies are
applied to each owner's completed snapshots separately. Checkpoints
(partial snapshots) are never counted by the rules: a checkpoint newer than
the owner's newest complete snapshot is kept (it is how an interrupted run
resumes), an older one is superseded and removed.

``keep-deleted-within D``: for D after an item disappeared from an owner's
tree (the time of the first snapshot without it), the newest snapshot that
still holds it is kept, whatever the rules say. Item identity is the path,
and the source item ID when set (an item that moved did not disappear).

Forget deletes snapshot objects only; ``prune`` frees the space. Deleted
snapshots are journaled in a ``forget`` report (``deleted``) so ``check``
knows their absence is intended.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import NotRequired, TypedDict

from store.browse.diff import ADDED, REMOVED, diff_trees
from store.format.snapshot import Owner, Snapshot
from store.format.tree import TreeReader
from store.ids import SnapshotId
from store.maintenance.retention import Decision, RetentionPolicy, apply_policy
from store.names import snapshot_name
from store.repository.repository import Repository

PolicyFor = Callable[[Owner], RetentionPolicy | None]


class DecisionJSON(TypedDict):
    id: str
    time: int
    partial: bool
    keep: bool
    reasons: list[str]


class OwnerPlanJSON(TypedDict):
    """One owner of a plan, as ``coffer forget --json`` prints it."""

    owner: str  # kind/name
    owner_key: str
    policy: str | None
    snapshots: list[DecisionJSON]


class ForgottenJSON(TypedDict):
    id: str
    owner: str
    time: int


class ForgetReport(TypedDict):
    """The stored ``forget`` report (FORMAT.md §9: ``deleted`` journals the objects)."""

    deleted: list[str]
    snapshots: list[ForgottenJSON]
    plan: NotRequired[list[OwnerPlanJSON]]


@dataclass
class OwnerPlan:
    """The decisions for one owner (newest first), or why it was skipped."""

    owner: Owner
    policy: RetentionPolicy | None
    decisions: list[Decision] = field(default_factory=list)

    @property
    def removed(self) -> list[Snapshot]:
        return [d.snapshot for d in self.decisions if not d.keep]


@dataclass
class ForgetPlan:
    owners: list[OwnerPlan] = field(default_factory=list)

    @property
    def removed(self) -> list[Snapshot]:
        return [s for plan in self.owners for s in plan.removed]

    def to_json(self) -> list[OwnerPlanJSON]:
        return [
            {
                "owner": f"{p.owner.kind}/{p.owner.name}",
                "owner_key": p.owner.key,
                "policy": p.policy.describe() if p.policy else None,
                "snapshots": [
                    {
                        "id": d.snapshot.id_hex,
                        "time": d.snapshot.time_ns,
                        "partial": d.snapshot.partial,
                        "keep": d.keep,
                        "reasons": d.reasons,
                    }
                    for d in p.decisions
                ],
            }
            for p in self.owners
        ]


def vanished_items(reader: TreeReader, older: Snapshot, newer: Snapshot) -> list[str]:
    """Paths of items in ``older`` that are gone from ``newer`` (moves excluded)."""
    removed: list[tuple[str, str | None]] = []
    added_ids: set[str] = set()
    for change in diff_trees(reader, older.tree, newer.tree):
        if change.kind == REMOVED and change.old is not None:
            removed.append((change.path, change.old.item_id))
        elif change.kind == ADDED and change.new is not None and change.new.item_id:
            added_ids.add(change.new.item_id)
    return [path for path, item_id in removed if not item_id or item_id not in added_ids]


def deleted_item_holders(
    reader: TreeReader, complete: list[Snapshot], policy: RetentionPolicy, now_ns: int
) -> dict[SnapshotId, str]:
    """Snapshots to keep because they are the last to hold recently deleted items."""
    window = policy.deleted_within
    if window is None or window.zero:
        return {}
    since = window.nanoseconds_before(now_ns)
    ordered = sorted(complete, key=lambda s: s.time_ns)
    out: dict[SnapshotId, str] = {}
    for older, newer in itertools.pairwise(ordered):
        if newer.time_ns < since or older.snapshot_id is None:
            continue
        gone = vanished_items(reader, older, newer)
        if gone:
            more = f" and {len(gone) - 1} more" if len(gone) > 1 else ""
            out[older.snapshot_id] = f"last to hold {gone[0]}{more}, deleted within {window}"
    return out


def plan_forget(
    repo: Repository,
    policy_for: PolicyFor,
    *,
    now_ns: int | None = None,
    snapshots: Iterable[Snapshot] | None = None,
    tz: tzinfo = UTC,
) -> ForgetPlan:
    """Decide, per owner, what stays and why. Read-only.

    ``policy_for`` returns the owner's policy, or None to leave it untouched.
    Raises ValueError for an empty policy.
    """
    now = now_ns if now_ns is not None else time.time_ns()
    pool = list(snapshots) if snapshots is not None else repo.list_snapshots()
    by_owner: dict[str, list[Snapshot]] = {}
    for snap in pool:
        by_owner.setdefault(snap.owner.identity, []).append(snap)
    plan = ForgetPlan()
    for identity in sorted(by_owner):
        group = by_owner[identity]
        owner = max(group, key=lambda s: s.time_ns).owner
        policy = policy_for(owner)
        if policy is None:
            continue
        complete = [s for s in group if not s.partial]
        protected = deleted_item_holders(repo.tree_reader, complete, policy, now)
        decisions = apply_policy(complete, policy, now_ns=now, tz=tz, protected=protected)
        newest = max((s.time_ns for s in complete), default=-1)
        for snap in sorted((s for s in group if s.partial), key=lambda s: -s.time_ns):
            if snap.time_ns > newest:
                decisions.append(Decision(snap, True, ["checkpoint of an unfinished run"]))
            else:
                decisions.append(Decision(snap, False, ["checkpoint superseded by a later run"]))
        decisions.sort(key=lambda d: d.snapshot.time_ns, reverse=True)
        plan.owners.append(OwnerPlan(owner, policy, decisions))
    return plan


def forget_snapshots(
    repo: Repository, snapshots: list[Snapshot], *, plan: ForgetPlan | None = None
) -> str | None:
    """Delete snapshot objects and journal them in a ``forget`` report.

    The report is written first (naming what is about to go), so an
    interruption never leaves a deletion unexplained. Returns its key.
    """
    if not snapshots:
        return None
    keys = [snapshot_name(s.id_hex) for s in snapshots]
    report: ForgetReport = {
        "deleted": keys,
        "snapshots": [
            {"id": s.id_hex, "owner": f"{s.owner.kind}/{s.owner.name}", "time": s.time_ns}
            for s in snapshots
        ],
    }
    if plan is not None:
        report["plan"] = plan.to_json()
    key = repo.save_report("forget", report)
    for snap in snapshots:
        assert snap.snapshot_id is not None
        repo.delete_snapshot(snap.snapshot_id)
    return key


def execute_forget(repo: Repository, plan: ForgetPlan) -> str | None:
    """Carry out a plan; returns the report key (None if nothing was removed)."""
    return forget_snapshots(repo, plan.removed, plan=plan)
