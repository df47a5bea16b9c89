"""``coffer forget``: remove snapshots by retention policy (per owner) or by ID."""

from __future__ import annotations

from typing import Any

import click

from cli.app import App
from cli.errors import CliError
from cli.settings.retention import (
    COUNT_KEYS,
    owner_glob_matches,
    parse_count,
    retention_from_config,
)
from cli.ui.output import note, print_json, shown
from store import (
    Duration,
    ForgetPlan,
    Owner,
    RetentionPolicy,
    execute_forget,
    forget_snapshots,
    format_time,
    plan_forget,
    select_snapshots,
)


class _Count(click.ParamType[int]):
    name = "N|unlimited"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_count(value, f"--{param.name if param else 'keep'}")
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class _Duration(click.ParamType[Duration]):
    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Duration:
        if isinstance(value, Duration):
            return value
        try:
            return Duration.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


_UNITS = {
    "hourly": "hour",
    "daily": "day",
    "weekly": "week",
    "monthly": "month",
    "quarterly": "quarter",
    "yearly": "year",
}


def _keep_options(function: Any) -> Any:
    for name in reversed(COUNT_KEYS):
        function = click.option(
            f"--keep-{name}",
            f"keep_{name}",
            type=_Count(),
            default=0,
            help=f"Keep the newest snapshot of each of the last N {_UNITS[name]}s "
            "that have snapshots."
            if name != "last"
            else "Keep the N newest snapshots.",
        )(function)
    return function


def _print_plan(plan: ForgetPlan, dry_run: bool) -> None:
    for owner_plan in plan.owners:
        owner = owner_plan.owner
        kept = sum(1 for d in owner_plan.decisions if d.keep)
        removed = len(owner_plan.decisions) - kept
        policy = owner_plan.policy.describe() if owner_plan.policy else ""
        note(f"{owner.kind}/{shown(owner.name)}: {policy}: keep {kept}, remove {removed}")
        for decision in owner_plan.decisions:
            snap = decision.snapshot
            verb = "keep  " if decision.keep else ("would remove" if dry_run else "remove")
            why = ", ".join(decision.reasons)
            partial = " (partial)" if snap.partial else ""
            note(
                f"  {verb} {snap.short_id} {format_time(snap.time_ns, precision=0)}{partial}"
                + (f"  {why}" if why else "")
            )


@click.command("forget")
@click.argument("snapshot_ids", nargs=-1, metavar="[SNAPSHOT_ID]...")
@click.option("--owner", "owners", multiple=True, metavar="GLOB", help="Only these owners (globs).")
@_keep_options
@click.option("--keep-within", type=_Duration(), help="Keep everything this close to the newest.")
@click.option(
    "--keep-deleted-within",
    type=_Duration(),
    help="Keep the newest snapshot holding an item deleted within this long.",
)
@click.option("--dry-run", is_flag=True, help="Show what stays and why; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.pass_obj
def command(
    app: App,
    /,
    snapshot_ids: tuple[str, ...],
    owners: tuple[str, ...],
    keep_within: Duration | None,
    keep_deleted_within: Duration | None,
    dry_run: bool,
    as_json: bool,
    **counts: int,
) -> None:
    """Remove snapshots by policy, for each owner separately, or by ID.

    Without --keep-* options the [retention] table of the configuration is
    used. The space is freed by 'coffer prune'. See docs/retention.md.
    """
    repo = app.open_repo()
    snapshots = repo.list_snapshots()
    if snapshot_ids:
        chosen = [select_snapshots(snapshots, s)[0] for s in snapshot_ids]
        if dry_run:
            for snap in chosen:
                note(f"would remove {snap.short_id} of {snap.owner.kind}/{shown(snap.owner.name)}")
            return
        key = forget_snapshots(repo, chosen)
        note(f"removed {len(chosen)} snapshot(s) (report {key})")
        return
    given = {name.removeprefix("keep_"): value for name, value in counts.items() if value}
    if given or keep_within is not None or keep_deleted_within is not None:
        policy = RetentionPolicy(**given, within=keep_within, deleted_within=keep_deleted_within)
        if policy.empty:
            raise click.UsageError(
                "refusing an empty policy: give at least one --keep-* rule "
                "(--keep-deleted-within alone would remove everything else)"
            )

        def policy_for(owner: Owner) -> RetentionPolicy | None:
            return policy if not owners or owner_glob_matches(owner, owners) else None

    else:
        retention = retention_from_config(app.config)
        if retention is None:
            raise click.UsageError(
                "no policy: give --keep-* options or configure a [retention] table"
            )

        def policy_for(owner: Owner) -> RetentionPolicy | None:
            if owners and not owner_glob_matches(owner, owners):
                return None
            return retention.policy_for(owner)

    try:
        plan = plan_forget(repo, policy_for, snapshots=snapshots)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    key = None if dry_run else execute_forget(repo, plan)
    if as_json:
        print_json({"dry_run": dry_run, "owners": plan.to_json(), "report": key})
        return
    _print_plan(plan, dry_run)
    removed = len(plan.removed)
    if dry_run:
        note(f"would remove {removed} snapshot(s); nothing was changed")
    else:
        note(
            f"removed {removed} snapshot(s)"
            + (f" (report {key}); run 'coffer prune' to free the space" if key else "")
        )
