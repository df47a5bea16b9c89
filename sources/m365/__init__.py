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
