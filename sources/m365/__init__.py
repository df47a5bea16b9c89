"""The Microsoft 365 source: back up a tenant through Microsoft Graph.

    settings = from_table(config.section("tenant"), config.base_dir)
    report = TenantBackup(repo, settings, progress=...).run()

Packages: graph (the Graph client, auth, throttling, errors, hashing),
backup (the run, discovery, one module per service), restore (finding items
across snapshots and writing them back, one writer per service), render (the
item formats: iCalendar, vCard, HTML, text). Shared modules: settings (the
[tenant] table), names (file names in the tree), timezones, workers (the
thread pool). The tree layout is in docs/layout.md.
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
from sources.m365.settings import SERVICES, TenantSettings, from_table

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
