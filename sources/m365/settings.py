"""The ``[tenant]`` table of coffer.toml, checked and resolved.

Every key is documented in README.md ("Backing up Microsoft 365"). Relative
paths are relative to the configuration file's directory (``base_dir``).
Secrets are read from files only, never from the table itself, and never
appear in ``repr`` or error messages.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sources.m365.graph.connection import Connection
from sources.m365.graph.errors import M365ConfigError
from sources.m365.services import SERVICES, USER_SERVICES

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"

_KNOWN_KEYS = {
    "tenant_id",
    "client_id",
    "client_secret_file",
    "certificate",
    "private_key",
    "credential",
    "auth",
    "authority",
    "graph_url",
    "ca_file",
    "token_cache",
    "users",
    "groups",
    "exclude_users",
    "services",
    "user_services",
    "sites",
    "teams",
    "m365_groups",
    "group_calendar_years",
    "exclude_folders",
    "exclude_paths",
    "max_item_size",
    "onedrive_versions",
    "mime_dedup",
    "parallel_owners",
    "workers_per_owner",
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Selection:
    """Which owners and services to back up, and what to leave out."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    exclude_users: tuple[str, ...] = ()
    services: tuple[str, ...] = SERVICES
    user_services: tuple[tuple[str, tuple[str, ...]], ...] = ()
    sites: tuple[str, ...] = ("*",)
    teams: tuple[str, ...] = ("*",)
    m365_groups: tuple[str, ...] = ("*",)  # Microsoft 365 groups: display name or mail globs
    exclude_folders: tuple[str, ...] = ()
    exclude_paths: tuple[str, ...] = ()
    max_item_size: int = 0  # bytes; 0 = no limit

    def user_selected(self, upn: str, *, in_groups: bool) -> bool:
        if matches_any(upn, self.exclude_users):
            return False
        if not self.users and not self.groups:
            return True
        return matches_any(upn, self.users) or in_groups

    def services_for(self, upn: str) -> tuple[str, ...]:
        for pattern, services in self.user_services:
            if _glob(upn, pattern):
                return services
        return tuple(s for s in self.services if s in USER_SERVICES)

    def folder_excluded(self, folder_path: str) -> bool:
        return matches_any(folder_path, self.exclude_folders)

    def path_excluded(self, owner_path: str) -> bool:
        return matches_any(owner_path, self.exclude_paths)

    def too_large(self, size: int) -> bool:
        return self.max_item_size > 0 and size > self.max_item_size


@dataclass(frozen=True)
class TenantSettings:
    connection: Connection
    selection: Selection
    onedrive_versions: bool = False
    mime_dedup: bool = True
    parallel_owners: int = 6
    workers_per_owner: int = 4
    group_calendar_years: int = 2  # a group calendar is read this many years back and ahead


def _glob(text: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(text.lower(), pattern.lower())


def matches_any(text: str, patterns: tuple[str, ...]) -> bool:
    return any(_glob(text, p) for p in patterns)


def parse_size(value: Any) -> int:
    """Bytes from an integer or a string such as ``"250M"`` or ``"2 GiB"``."""
    if isinstance(value, bool):
        raise M365ConfigError("max_item_size must be a size such as 100000000 or '100M'")
    if isinstance(value, int):
        if value < 0:
            raise M365ConfigError("max_item_size must not be negative")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            factor = 1024 ** " kmgt".index(m.group(2).lower() or " ")
            return int(float(m.group(1)) * factor)
    raise M365ConfigError(f"max_item_size: cannot read {value!r} as a size (e.g. '100M')")


def _strings(table: dict[str, Any], key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = table.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise M365ConfigError(f"[tenant] {key} must be a string or a list of strings")


def _services(values: tuple[str, ...], where: str) -> tuple[str, ...]:
    unknown = [v for v in values if v not in SERVICES]
    if unknown:
        raise M365ConfigError(
            f"[tenant] {where}: unknown service {unknown[0]!r} (known: {', '.join(SERVICES)})"
        )
    return values


def _int(table: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise M365ConfigError(f"[tenant] {key} must be an integer from {low} to {high}")
    return value


def _bool(table: dict[str, Any], key: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise M365ConfigError(f"[tenant] {key} must be true or false")
    return value


def from_table(table: dict[str, Any], base_dir: Path) -> TenantSettings:
    """Check the ``[tenant]`` table and resolve its paths. Raises M365ConfigError."""
    unknown = sorted(set(table) - _KNOWN_KEYS)
    if unknown:
        raise M365ConfigError(f"[tenant] has an unknown key {unknown[0]!r}")

    def text(key: str, required: bool = False) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                raise M365ConfigError(f"[tenant] needs {key}")
            return None
        if not isinstance(value, str) or not value.strip():
            raise M365ConfigError(f"[tenant] {key} must be a non-empty string")
        return value.strip()

    def path(key: str) -> Path | None:
        value = text(key)
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else base_dir / p

    tenant_id = text("tenant_id", True)
    client_id = text("client_id", True)
    assert tenant_id is not None
    assert client_id is not None
    auth = text("auth") or "app"
    if auth not in ("app", "device_code"):
        raise M365ConfigError("[tenant] auth must be 'app' or 'device_code'")
    secret_file, cert, key = path("client_secret_file"), path("certificate"), path("private_key")
    if (cert is None) != (key is None):
        raise M365ConfigError("[tenant] certificate and private_key go together")
    credential = text("credential")
    if credential is None:
        credential = "certificate" if cert is not None else "secret"
    if credential not in ("certificate", "secret"):
        raise M365ConfigError("[tenant] credential must be 'certificate' or 'secret'")
    if auth == "app":
        if credential == "certificate" and cert is None:
            raise M365ConfigError("[tenant] credential = 'certificate' needs certificate")
        if credential == "secret" and secret_file is None:
            raise M365ConfigError(
                "[tenant] needs a client_secret_file or a certificate and private_key"
            )
    authority = text("authority")
    graph_url = (text("graph_url") or DEFAULT_GRAPH_URL).rstrip("/")
    for name, url in (("authority", authority), ("graph_url", graph_url)):
        if url is not None and not url.startswith("https://"):
            raise M365ConfigError(f"[tenant] {name} must be an https:// URL")
    user_services: list[tuple[str, tuple[str, ...]]] = []
    raw_us = table.get("user_services", {})
    if not isinstance(raw_us, dict):
        raise M365ConfigError("[tenant.user_services] must be a table of UPN glob = [services]")
    for pattern in raw_us:
        values = _strings(raw_us, pattern)
        user_services.append((pattern, _services(values, f"user_services.{pattern}")))
    selection = Selection(
        users=_strings(table, "users"),
        groups=_strings(table, "groups"),
        exclude_users=_strings(table, "exclude_users"),
        services=_services(_strings(table, "services", SERVICES), "services"),
        user_services=tuple(user_services),
        sites=_strings(table, "sites", ("*",)),
        teams=_strings(table, "teams", ("*",)),
        m365_groups=_strings(table, "m365_groups", ("*",)),
        exclude_folders=_strings(table, "exclude_folders"),
        exclude_paths=_strings(table, "exclude_paths"),
        max_item_size=parse_size(table.get("max_item_size", 0)),
    )
    connection = Connection(
        tenant_id=tenant_id,
        client_id=client_id,
        auth=auth,
        credential=credential,
        authority=(authority or f"{DEFAULT_AUTHORITY_HOST}/{tenant_id}").rstrip("/"),
        graph_url=graph_url,
        ca_file=path("ca_file"),
        client_secret_file=secret_file,
        certificate=cert,
        private_key=key,
        token_cache=path("token_cache"),
        custom_authority=authority is not None,
    )
    return TenantSettings(
        connection=connection,
        selection=selection,
        onedrive_versions=_bool(table, "onedrive_versions", False),
        mime_dedup=_bool(table, "mime_dedup", True),
        parallel_owners=_int(table, "parallel_owners", 6, 1, 64),
        workers_per_owner=_int(table, "workers_per_owner", 4, 1, 16),
        group_calendar_years=_int(table, "group_calendar_years", 2, 1, 10),
    )
