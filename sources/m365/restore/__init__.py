"""Restoring Microsoft 365 items, and finding them across snapshots (docs/restore.md).

    query = ItemQuery(services=("mail",), subjects=("invoice",))
    versions = find_versions(repo, repo.list_snapshots(), query)
    report = TenantRestore(repo, settings, snapshots, query, parse_target("original")).run()

Modules, one job each: items (the items of a snapshot), query (the filter),
find (versions across snapshots), target (``--to``), settings (``[restore]``),
common (what writers share: conflicts, safe creates), uploads (upload
sessions), pacing (Exchange's upload budget, the ETA), report, runner, and
one writer per service: mail (with mimeparts), contacts, calendar, drive,
lists. Local directories are restored by sources.localdir.
"""

from sources.m365.restore.common import POLICIES
from sources.m365.restore.find import Version, find_versions, mount_path
from sources.m365.restore.items import KIND_NAMES, SnapItem, walk_items
from sources.m365.restore.query import ItemQuery, parse_when
from sources.m365.restore.runner import REPORT_FORMAT, REPORT_VERSION, TenantRestore
from sources.m365.restore.settings import restore_settings
from sources.m365.restore.target import (
    ORIGINAL,
    SITE,
    USER,
    RestoreTarget,
    default_folder,
    parse_target,
)

__all__ = [
    "KIND_NAMES",
    "ORIGINAL",
    "POLICIES",
    "REPORT_FORMAT",
    "REPORT_VERSION",
    "SITE",
    "USER",
    "ItemQuery",
    "RestoreTarget",
    "SnapItem",
    "TenantRestore",
    "Version",
    "default_folder",
    "find_versions",
    "mount_path",
    "parse_target",
    "parse_when",
    "restore_settings",
    "walk_items",
]
