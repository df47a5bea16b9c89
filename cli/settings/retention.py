"""Retention policies from the command line and from the configuration file.

Configuration (``coffer.toml``)::

    [retention]
    keep-daily = 7
    keep-weekly = 5
    keep-monthly = 12
    keep-deleted-within = "90d"
    after-backup = true          # run forget for the owners of each backup

    [retention.owners."sites/*"]  # replaces the default for matching owners
    keep-daily = 30
    keep-yearly = 7

Owner globs match like ``--owner``: the owner's name, key, ``kind/key`` or
``kind/name``, case-insensitively; the first matching table (in file order)
wins. A count may be ``"unlimited"``. Applying ``after-backup``:
cli/flows/afterbackup.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from cli.errors import ConfigError
from cli.settings.config import Config
from store import UNLIMITED, Duration, Owner, RetentionPolicy

COUNT_KEYS = ("last", "hourly", "daily", "weekly", "monthly", "quarterly", "yearly")


def owner_glob_matches(owner: Owner, patterns: Iterable[str]) -> bool:
    """True if any glob matches the owner's name, key, kind/key or kind/name."""
    candidates = (owner.name, owner.key, owner.identity, f"{owner.kind}/{owner.name}")
    return any(fnmatchcase(c.lower(), p.lower()) for p in patterns for c in candidates)


def parse_count(value: object, what: str) -> int:
    """A keep count: a non-negative integer or "unlimited". Raises ValueError."""
    if isinstance(value, str) and value.strip().lower() == "unlimited":
        return UNLIMITED
    try:
        # true/false from TOML are not counts (int(True) would be 1)
        number = int("bool" if isinstance(value, bool) else str(value))
    except ValueError:
        raise ValueError(f"{what} must be a number or 'unlimited', not {value!r}") from None
    if number < 0:
        raise ValueError(f"{what} must not be negative")
    return number


def policy_from_table(table: dict[str, Any], where: str) -> RetentionPolicy:
    """A policy from a ``[retention]``-style table. Raises ConfigError."""
    counts: dict[str, int] = {}
    durations: dict[str, Duration | None] = {"within": None, "deleted_within": None}
    for key, value in table.items():
        if key in ("owners", "after-backup"):
            continue
        name = key.removeprefix("keep-").replace("-", "_")
        try:
            if name in COUNT_KEYS:
                counts[name] = parse_count(value, f"{where}: {key}")
            elif name in durations:
                durations[name] = Duration.parse(str(value))
            else:
                raise ValueError(f"{where}: unknown setting {key!r}")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return RetentionPolicy(
        **counts, within=durations["within"], deleted_within=durations["deleted_within"]
    )


@dataclass
class RetentionConfig:
    """The ``[retention]`` section: a default policy and per-owner-glob policies."""

    default: RetentionPolicy | None
    owners: list[tuple[str, RetentionPolicy]] = field(default_factory=list)
    after_backup: bool = False

    def policy_for(self, owner: Owner) -> RetentionPolicy | None:
        for pattern, policy in self.owners:
            if owner_glob_matches(owner, [pattern]):
                return policy
        return self.default


def retention_from_config(config: Config) -> RetentionConfig | None:
    """The configured retention, or None when there is no ``[retention]`` table."""
    if "retention" not in config.data:
        return None
    section = config.section("retention")
    where = f"{config.path}: [retention]"
    rules = {k: v for k, v in section.items() if k not in ("owners", "after-backup")}
    default = policy_from_table(rules, where) if rules else None
    owners: list[tuple[str, RetentionPolicy]] = []
    raw_owners = section.get("owners", {})
    if not isinstance(raw_owners, dict):
        raise ConfigError(f"{where}: 'owners' must be a table of owner globs")
    for pattern, table in raw_owners.items():
        if not isinstance(table, dict):
            raise ConfigError(f'{where}: owners."{pattern}" must be a table')
        owners.append((pattern, policy_from_table(table, f'{where} owners."{pattern}"')))
    after = section.get("after-backup", False)
    if not isinstance(after, bool):
        raise ConfigError(f"{where}: after-backup must be true or false")
    for label, policy in [("default", default), *owners]:
        if policy is not None and policy.empty:
            raise ConfigError(f"{where}: the {label} policy keeps nothing; refusing it")
    return RetentionConfig(default, owners, after)
