"""The per-owner restore job a worker runs: one snapshot back into Microsoft 365.

A tenant-wide ``coffer restore --to ...`` with a broker becomes one job per
chosen snapshot (owner). The message carries ids and the request: the run id,
the tenant id, the snapshot id, the owner's kind, key and name (for the
counters), the target (kind, user or site, folder), the filters, the conflict
policy and whether it is a dry run. The worker reads the snapshot from its own
repository and signs in with its own ``[tenant]`` and ``[restore]`` settings.

Idempotent like every restore (what is already in the target is found and left
alone, sources/m365/restore/common.py); the owner's lease keeps two deliveries
of one job from running at once, and an outcome already recorded in Redis ends
a second delivery at once. The owner's report (item names) goes to the
repository (``reports/restore-owner/RUN/``); Redis gets counters and ids.
Raises what jobs.py's job raises (JobFailed, LeaseBusy, outages).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cli.cluster.jobs import JobFailed, WorkerContext
from cli.cluster.lease import OwnerLease, lease_key
from cli.cluster.runstate import RunState, owner_field
from sources.m365 import M365ConfigError
from sources.m365.restore import POLICIES, ItemQuery, RestoreTarget, TenantRestore, restore_settings
from sources.m365.restore.target import ORIGINAL, SITE, USER, check_folder_name
from store import ExitCode, SnapshotId, SnapshotNotFound
from store.ids import from_hex

MESSAGE_VERSION = 1
QUERY_FIELDS = ("services", "kinds", "folders", "includes", "paths", "subjects", "senders")


def restore_owner_kind(run_id: str) -> str:
    return f"restore-owner/{run_id}"


def query_to_map(query: ItemQuery) -> dict[str, Any]:
    out: dict[str, Any] = {name: list(getattr(query, name)) for name in QUERY_FIELDS}
    out["since"] = query.since.isoformat() if query.since else None
    out["until"] = query.until.isoformat() if query.until else None
    return out


def query_from_map(raw: dict[str, Any]) -> ItemQuery:
    values: dict[str, Any] = {
        name: tuple(str(v) for v in raw.get(name) or ()) for name in QUERY_FIELDS
    }
    for name in ("since", "until"):
        values[name] = datetime.fromisoformat(raw[name]) if raw.get(name) else None
    return ItemQuery(**values)


@dataclass(frozen=True)
class RestoreMessage:
    """One owner's restore job (ids and the request; no secret)."""

    run: str
    tenant: str
    snapshot: str
    kind: str
    key: str
    name: str
    target: RestoreTarget
    query: ItemQuery
    on_conflict: str
    dry_run: bool

    @property
    def field(self) -> str:
        return owner_field(self.kind, self.key)

    def to_map(self) -> dict[str, Any]:
        return {
            "v": MESSAGE_VERSION,
            "job": "restore",
            "run": self.run,
            "tenant": self.tenant,
            "snapshot": self.snapshot,
            "owner": {"kind": self.kind, "key": self.key, "name": self.name},
            "target": {
                "kind": self.target.kind,
                "ref": self.target.ref,
                "folder": list(self.target.folder),
                "explicit": self.target.explicit_folder,
            },
            "filters": query_to_map(self.query),
            "on_conflict": self.on_conflict,
            "dry_run": self.dry_run,
        }

    @classmethod
    def from_map(cls, raw: Any) -> RestoreMessage:
        """Check a message (anything may be in a shared queue). Raises JobFailed."""
        try:
            if raw.get("v") != MESSAGE_VERSION or raw.get("job") != "restore":
                raise JobFailed("not a restore job message of this version")
            owner = raw["owner"]
            target = raw["target"]
            folder = tuple(check_folder_name(str(p)) for p in target.get("folder") or ())
            message = cls(
                str(raw["run"]),
                str(raw["tenant"]),
                str(raw["snapshot"]),
                str(owner["kind"]),
                str(owner["key"]),
                str(owner["name"]),
                RestoreTarget(
                    str(target["kind"]),
                    str(target.get("ref", "")),
                    folder,
                    bool(target.get("explicit")),
                ),
                query_from_map(raw.get("filters") or {}),
                str(raw["on_conflict"]),
                bool(raw["dry_run"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise JobFailed(f"malformed restore job message ({type(exc).__name__})") from None
        if message.target.kind not in (ORIGINAL, USER, SITE) or message.on_conflict not in POLICIES:
            raise JobFailed("malformed restore job message (target or conflict policy)")
        if not message.run.isalnum() or not message.snapshot.isalnum():
            raise JobFailed("malformed restore job message (run or snapshot)")
        return message


def run_restore_job(ctx: WorkerContext, raw: Any) -> dict[str, Any]:
    """Restore one owner's snapshot (see the module docstring); returns the outcome."""
    message = RestoreMessage.from_map(raw)
    state = RunState(ctx.redis, message.run, ctx.cluster.result_seconds)
    recorded = state.done(message.field)
    if recorded is not None:
        return recorded
    key = lease_key(message.tenant, f"restore-{message.kind}", message.key)
    with OwnerLease(ctx.redis, key, ctx.name, ctx.cluster.lease_seconds):
        recorded = state.done(message.field)
        if recorded is not None:
            return recorded
        state.owner_started(message.field, ctx.name)
        base = ctx.tenant(message.tenant)  # checks the tenant
        table = ctx.app.config.section("tenant")
        try:
            settings = restore_settings(
                table, ctx.app.config.section("restore") or None, ctx.app.config.base_dir
            )
        except M365ConfigError as exc:
            raise JobFailed(f"worker {ctx.name}: {exc}") from None
        repo = ctx.repo()
        # The one snapshot by its id, not a listing of the repository: a listing
        # decodes every snapshot of every owner, once per job, which made a
        # tenant-wide restore cost O(owners^2) (issue 15's benchmark: three times
        # the CPU of one process at 2,000 owners).
        try:
            snaps = [repo.load_snapshot(SnapshotId(from_hex(message.snapshot)))]
        except (ValueError, SnapshotNotFound):
            missing = f"snapshot {message.snapshot[:12]} not found"
            raise JobFailed(f"worker {ctx.name}: {missing}") from None
        run = TenantRestore(
            repo,
            settings,
            snaps,
            message.query,
            message.target,
            on_conflict=message.on_conflict,
            dry_run=message.dry_run,
            selector=message.snapshot,
            client=ctx.restore_graph(base, settings),
        )
        report = run.run()
        entry = {
            "run": message.run,
            "worker": ctx.name,
            "notices": report.get("notices", []),
            "owners": [dict(o, worker=ctx.name) for o in report["owners"]],
        }
        report_key = repo.save_report(restore_owner_kind(message.run), entry)
        totals = report["totals"]
        outcome = {
            "status": "ok" if report["exit_code"] == ExitCode.OK else "partial",
            "report": report_key,
            "worker": ctx.name,
            "created": totals.get("created", 0),
            "failed": totals.get("failed", 0),
        }
        state.progress(int(totals.get("created", 0)), int(totals.get("bytes_uploaded", 0)), 0.0)
        state.owner_done(message.field, outcome)
        return outcome
