"""forget on a real repository: per owner, checkpoints, deleted-item protection, journal."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from store import (
    BackupRun,
    Duration,
    Owner,
    RetentionPolicy,
    execute_forget,
    plan_forget,
)
from tests.store.support.ops_helpers import ALICE, BOB, DAY, T0, backup, check, make_repo


def _ids(snaps: list) -> set[str]:  # type: ignore[type-arg]
    return {s.id_hex for s in snaps}


def test_each_owner_keeps_its_own_history(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    alice = [backup(repo, ALICE, {"a": bytes([i])}, time_ns=T0 + i * DAY) for i in range(4)]
    bob = [backup(repo, BOB, {"b": bytes([i])}, time_ns=T0 + i * DAY + 1) for i in range(2)]
    plan = plan_forget(repo, lambda owner: RetentionPolicy(last=2), now_ns=T0 + 10 * DAY)
    assert _ids(plan.removed) == _ids(alice[:2])
    execute_forget(repo, plan)
    left = repo.list_snapshots()
    assert _ids(left) == _ids(alice[2:] + bob)
    # The journal explains the missing snapshots: check finds nothing wrong.
    assert not check(repo).errors


def test_owners_without_a_policy_are_untouched(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    for i in range(3):
        backup(repo, ALICE, {"a": bytes([i])}, time_ns=T0 + i * DAY)
        backup(repo, BOB, {"b": bytes([i])}, time_ns=T0 + i * DAY + 1)

    def policy_for(owner: Owner) -> RetentionPolicy | None:
        return RetentionPolicy(last=1) if owner == ALICE else None

    plan = plan_forget(repo, policy_for, now_ns=T0 + 10 * DAY)
    assert [p.owner for p in plan.owners] == [ALICE]
    assert len(plan.removed) == 2


def test_checkpoints(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    complete = backup(repo, ALICE, {"x": b"complete"}, time_ns=T0 + DAY)
    # A checkpoint left behind by a crash before that run (normally deleted at commit) ...
    repo.save_snapshot(replace(complete, partial=True, time_ns=T0, snapshot_id=None))
    # ... and one of a later run that was interrupted.
    with BackupRun(repo, time_ns=T0 + 2 * DAY) as run, run.owner(ALICE) as session:
        session.add_item("x", b"partial")
        session.checkpoint()
    snapshots = repo.list_snapshots()
    assert [s.partial for s in snapshots] == [True, False, True]
    plan = plan_forget(repo, lambda _o: RetentionPolicy(last=1), now_ns=T0 + 3 * DAY)
    decisions = {d.snapshot.time_ns: d for d in plan.owners[0].decisions}
    assert not decisions[T0].keep  # superseded by the complete run after it
    assert decisions[T0 + DAY].keep
    assert decisions[T0 + 2 * DAY].keep  # resumes the unfinished run
    assert decisions[T0 + 2 * DAY].reasons == ["checkpoint of an unfinished run"]


def _history(tmp_path: Path):  # type: ignore[no-untyped-def]
    repo = make_repo(tmp_path)
    ids = {"a.eml": "A", "b.eml": "B", "c.eml": "C"}
    s1 = backup(repo, ALICE, {"inbox/a.eml": b"a", "inbox/b.eml": b"b", "inbox/c.eml": b"c"},
                time_ns=T0, item_ids={f"inbox/{k}": v for k, v in ids.items()})  # fmt: skip
    # c deleted at T0 + 1d
    s2 = backup(repo, ALICE, {"inbox/a.eml": b"a", "inbox/b.eml": b"b"}, time_ns=T0 + DAY,
                item_ids={"inbox/a.eml": "A", "inbox/b.eml": "B"})  # fmt: skip
    # b moved to another folder (same item ID): not a deletion
    s3 = backup(repo, ALICE, {"inbox/a.eml": b"a", "archive/b.eml": b"b"}, time_ns=T0 + 2 * DAY,
                item_ids={"inbox/a.eml": "A", "archive/b.eml": "B"})  # fmt: skip
    s4 = backup(repo, ALICE, {"inbox/a.eml": b"a", "archive/b.eml": b"b"}, time_ns=T0 + 3 * DAY,
                item_ids={"inbox/a.eml": "A", "archive/b.eml": "B"})  # fmt: skip
    return repo, [s1, s2, s3, s4]


def test_keep_deleted_within_keeps_the_last_holder(tmp_path: Path) -> None:
    repo, (s1, s2, s3, s4) = _history(tmp_path)
    policy = RetentionPolicy(last=1, deleted_within=Duration.parse("7d"))
    plan = plan_forget(repo, lambda _o: policy, now_ns=T0 + 4 * DAY)
    decisions = {d.snapshot.id_hex: d for d in plan.owners[0].decisions}
    assert decisions[s4.id_hex].keep
    assert decisions[s1.id_hex].keep
    assert "inbox/c.eml" in decisions[s1.id_hex].reasons[0]
    assert not decisions[s2.id_hex].keep  # b moved, it was not deleted
    assert not decisions[s3.id_hex].keep


def test_keep_deleted_within_expires(tmp_path: Path) -> None:
    repo, (s1, _s2, _s3, s4) = _history(tmp_path)
    policy = RetentionPolicy(last=1, deleted_within=Duration.parse("7d"))
    plan = plan_forget(repo, lambda _o: policy, now_ns=T0 + 9 * DAY)  # c deleted 8 days ago
    kept = {d.snapshot.id_hex for d in plan.owners[0].decisions if d.keep}
    assert kept == {s4.id_hex}
    plan = plan_forget(repo, lambda _o: policy, now_ns=T0 + 8 * DAY)  # 7 days minus 1 ns
    assert s1.id_hex in {d.snapshot.id_hex for d in plan.owners[0].decisions if d.keep}


def test_keep_deleted_within_without_item_ids_goes_by_path(tmp_path: Path) -> None:
    # No source item IDs (local folders): an item is its path, so a rename is
    # a deletion of the old path, and the last snapshot holding it is kept.
    repo = make_repo(tmp_path)
    s1 = backup(repo, BOB, {"docs/x.txt": b"x", "docs/y.txt": b"y"}, time_ns=T0)
    s2 = backup(repo, BOB, {"docs/x-renamed.txt": b"x", "docs/y.txt": b"y"}, time_ns=T0 + DAY)
    s3 = backup(repo, BOB, {"docs/x-renamed.txt": b"x", "docs/y.txt": b"y"}, time_ns=T0 + 2 * DAY)
    policy = RetentionPolicy(last=1, deleted_within=Duration.parse("7d"))
    plan = plan_forget(repo, lambda _o: policy, now_ns=T0 + 3 * DAY)
    decisions = {d.snapshot.id_hex: d for d in plan.owners[0].decisions}
    assert decisions[s1.id_hex].keep
    assert decisions[s1.id_hex].reasons == ["last to hold docs/x.txt, deleted within 7d"]
    assert not decisions[s2.id_hex].keep  # y is in every snapshot: nothing protects s2
    assert decisions[s3.id_hex].keep
    later = plan_forget(repo, lambda _o: policy, now_ns=T0 + 9 * DAY)  # deleted 8 days ago
    assert {d.snapshot.id_hex for d in later.owners[0].decisions if d.keep} == {s3.id_hex}
