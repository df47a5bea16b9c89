"""After a backup: the configured retention (``[retention]`` with ``after-backup = true``,
cli/settings/retention.py) applied to the owners the backup just wrote."""

from __future__ import annotations

from typing import Any

from cli.settings.config import Config
from cli.settings.retention import retention_from_config
from store import ForgetPlan, Owner, Repository, RetentionPolicy, execute_forget, plan_forget


def forget_after_backup(
    repo: Repository, config: Config, owners: list[Owner], *, now_ns: int | None = None
) -> tuple[ForgetPlan, str | None] | None:
    """Apply the configured retention to the owners a backup just wrote.

    For the backup command to call after a successful run. Returns None when
    no ``[retention]`` table with ``after-backup = true`` is configured, else
    the plan and the key of the forget report (None if nothing was removed).
    Raises ConfigError for a bad table.
    """
    retention = retention_from_config(config)
    if retention is None or not retention.after_backup:
        return None
    wanted = {o.identity for o in owners}

    def policy_for(owner: Owner) -> RetentionPolicy | None:
        return retention.policy_for(owner) if owner.identity in wanted else None

    plan = plan_forget(repo, policy_for, now_ns=now_ns)
    return plan, execute_forget(repo, plan)


def after_backup_summary(outcome: tuple[ForgetPlan, str | None]) -> dict[str, Any]:
    """The ``forget`` part of a backup report, for :func:`forget_after_backup`'s result."""
    plan, report = outcome
    return {
        "removed": [s.id_hex for s in plan.removed],
        "report": report,
        "plan": plan.to_json(),
    }
