"""The restore's sign-in: ``[tenant]``, overridden by an optional ``[restore]`` table.

Backup needs read permissions only and should keep them; restore writes.
An administrator can register a second Entra application for restores,
with the least write permissions (README, "Restoring Microsoft 365"), and
name it in ``[restore]``: its ``client_id`` and credential (a certificate and
key, or a secret file) replace those of ``[tenant]``; everything else (the
tenant, authority, Graph URL, CA) is shared. Without ``[restore]``, restore
signs in as ``[tenant]`` says, and Graph refuses writes (403) if that app
can only read: the error says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sources.m365.graph.errors import M365ConfigError
from sources.m365.settings import TenantSettings, from_table

RESTORE_KEYS = {
    "client_id",
    "client_secret_file",
    "certificate",
    "private_key",
    "credential",
    "token_cache",
    "parallel_owners",
    "workers_per_owner",
}
_CREDENTIAL_KEYS = ("client_secret_file", "certificate", "private_key", "credential")


def restore_settings(
    tenant: dict[str, Any], restore: dict[str, Any] | None, base_dir: Path
) -> TenantSettings:
    """The settings restore signs in with. Raises M365ConfigError."""
    merged = dict(tenant)
    if restore:
        unknown = sorted(set(restore) - RESTORE_KEYS)
        if unknown:
            raise M365ConfigError(
                f"[restore] has an unknown key {unknown[0]!r} "
                f"(known: {', '.join(sorted(RESTORE_KEYS))})"
            )
        if any(key in restore for key in _CREDENTIAL_KEYS):
            for key in _CREDENTIAL_KEYS:
                merged.pop(key, None)
        merged.update(restore)
    return from_table(merged, base_dir)
