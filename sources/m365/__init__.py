"""The Microsoft 365 source: back up a tenant through Microsoft Graph.

    settings = from_table(config.section("tenant"), config.base_dir)
    report = TenantBackup(repo, settings, progress=...).run()

Modules, one job each: settings (the [tenant] table), auth (msal, the only
module that imports it), throttle (per-resource limits), graph (the HTTP
client), discovery (owners), runner (the run), context/state/report/workers/
writer (what the services share), and one module per service: mail, contacts,
calendar, onedrive (with drive), sites, teams, groups (Microsoft 365 group
conversations and calendars, with groupsrender for their pages). The tree layout is in
docs/layout.md.
"""

from sources.m365.errors import (
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
from sources.m365.preflight import TenantCheck, check_tenant
from sources.m365.runner import REPORT_FORMAT, REPORT_VERSION, Progress, TenantBackup
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
