"""Several destinations: their configuration (``[[destination]]`` tables).

In ``coffer.toml`` (relative paths are relative to the file)::

    limit_upload = 4096            # KiB/s, optional: for every repository
    [[destination]]
    name = "nas"                   # required, unique: letters, digits, . _ -
    repository = "/mnt/nas/coffer" # required: a path or URL (docs/backends.md)
    password_file = "nas.pw"       # optional: else the usual password
    limit_upload = 0               # optional: KiB/s (0: unlimited)
    limit_download = 8192          # optional

A top-level ``repository`` with destinations is the first destination, named
``default``. ``-r NAME`` opens one destination by its name (cli/app.py).
Sending every backup to each destination: cli/flows/fanout.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cli.errors import ConfigError
from cli.settings.config import Config
from cli.settings.targets import RepoTarget

DESTINATION_KEYS = frozenset(
    {"name", "repository", "password_file", "limit_upload", "limit_download"}
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Destination:
    """One ``[[destination]]`` of the configuration."""

    name: str
    target: RepoTarget


def _limit(table: dict[str, Any], key: str, where: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: '{key}' must be a number of KiB/s (0: unlimited)")
    return float(value)


def config_limits(config: Config) -> tuple[float | None, float | None]:
    """The top-level ``limit_upload`` and ``limit_download`` of the file."""
    where = str(config.path)
    return _limit(config.data, "limit_upload", where), _limit(config.data, "limit_download", where)


def parse_destinations(config: Config) -> list[Destination]:
    """The ``[[destination]]`` tables, checked. Raises ConfigError naming the problem."""
    tables = config.data.get("destination", [])
    where = str(config.path)
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{where}: 'destination' must be [[destination]] tables")
    if not tables:
        return []
    upload, download = config_limits(config)
    out: list[Destination] = []
    if config.repository:
        out.append(
            Destination("default", RepoTarget(config.repository, "default", None, upload, download))
        )
    for number, table in enumerate(tables, 1):
        here = f"{where}: [[destination]] #{number}"
        unknown = sorted(set(table) - DESTINATION_KEYS)
        if unknown:
            known = ", ".join(sorted(DESTINATION_KEYS))
            raise ConfigError(f"{here}: unknown key {unknown[0]!r} (known: {known})")
        name = table.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"{here}: 'name' must be letters, digits, '.', '_' or '-'")
        here = f"{where}: destination '{name}'"
        if any(d.name == name for d in out):
            raise ConfigError(f"{here}: the name is used twice")
        repository = table.get("repository")
        if not isinstance(repository, str) or not repository:
            raise ConfigError(f"{here}: 'repository' (a path or URL) is required")
        password_file = table.get("password_file")
        if password_file is not None and not isinstance(password_file, str):
            raise ConfigError(f"{here}: 'password_file' must be a path")
        own_upload = _limit(table, "limit_upload", here)
        own_download = _limit(table, "limit_download", here)
        target = RepoTarget(
            config.resolve_repository(repository),
            name,
            config.resolve(password_file) if password_file else None,
            upload if own_upload is None else own_upload,
            download if own_download is None else own_download,
        )
        out.append(Destination(name, target))
    return out
