"""The Microsoft 365 source: back up a tenant through Microsoft Graph.

    settings = from_table(config.section("tenant"), config.base_dir)
    report = TenantBackup(repo, settings, progress=...).run()

Packages: graph (the Graph client, auth, throttling, errors, hashing),
backup (the run, discovery, one module per service), restore (finding items
across snapshots and writing them back, one writer per service), render (the
item formats: iCalendar, vCard, HTML pages of threads, text). Shared modules:
services (the registry: every service and its properties, once), settings
(the [tenant] table), names (file names in the tree), timezones, workers (the
thread pool). The layers are an import-linter contract (pyproject.toml); the
tree layout and how to add a service are in docs/layout.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sources.lazy import resolve

if TYPE_CHECKING:
    from sources.m365.backup.preflight import TenantCheck, check_tenant
    from sources.m365.backup.runner import REPORT_FORMAT, REPORT_VERSION, Progress, TenantBackup
    from sources.m365.graph.errors import (
        AccessDenied,
        AuthError,
        GraphError,
        ItemGone,
        M365ConfigError,
        M365Error,
        MailboxUnavailable,
        ResyncRequired,
        TransientGraphError,
    )
    from sources.m365.services import SERVICES
    from sources.m365.settings import TenantSettings, from_table

# Name -> the module defining it, imported on first use (PEP 562). Start-up
# cost, not a cycle: ``coffer backup --path`` needs only the service names
# (sources.m365.services, for --service's choices), and importing this package
# eagerly loaded the Graph client, msal and requests, about half of a folder
# backup's imports (docs/performance.md, "Start-up of a no-change run").
_LAZY: dict[str, str] = {
    "TenantCheck": "sources.m365.backup.preflight",
    "check_tenant": "sources.m365.backup.preflight",
    "REPORT_FORMAT": "sources.m365.backup.runner",
    "REPORT_VERSION": "sources.m365.backup.runner",
    "Progress": "sources.m365.backup.runner",
    "TenantBackup": "sources.m365.backup.runner",
    "AccessDenied": "sources.m365.graph.errors",
    "AuthError": "sources.m365.graph.errors",
    "GraphError": "sources.m365.graph.errors",
    "ItemGone": "sources.m365.graph.errors",
    "M365ConfigError": "sources.m365.graph.errors",
    "M365Error": "sources.m365.graph.errors",
    "MailboxUnavailable": "sources.m365.graph.errors",
    "ResyncRequired": "sources.m365.graph.errors",
    "TransientGraphError": "sources.m365.graph.errors",
    "SERVICES": "sources.m365.services",
    "TenantSettings": "sources.m365.settings",
    "from_table": "sources.m365.settings",
}


def __getattr__(name: str) -> Any:
    return resolve(__name__, _LAZY, globals(), name)


__all__ = [
    "REPORT_FORMAT",
    "REPORT_VERSION",
    "SERVICES",
    "AccessDenied",
    "AuthError",
    "GraphError",
    "ItemGone",
    "M365ConfigError",
    "M365Error",
    "MailboxUnavailable",
    "Progress",
    "ResyncRequired",
    "TenantBackup",
    "TenantCheck",
    "TenantSettings",
    "TransientGraphError",
    "check_tenant",
    "from_table",
]
