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

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sources.lazy import resolve

if TYPE_CHECKING:
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

# Name -> the module defining it, imported on first use (PEP 562). Start-up
# cost, not a cycle: ``coffer restore --to-dir`` of a folder snapshot needs
# only the filter's names (items, query), and importing this package eagerly
# loaded the writers, the Graph client, msal and requests, about 200 modules
# (docs/performance.md, "Restore (issue 14)").
_LAZY: dict[str, str] = {
    "POLICIES": "sources.m365.restore.common",
    "Version": "sources.m365.restore.find",
    "find_versions": "sources.m365.restore.find",
    "mount_path": "sources.m365.restore.find",
    "KIND_NAMES": "sources.m365.restore.items",
    "SnapItem": "sources.m365.restore.items",
    "walk_items": "sources.m365.restore.items",
    "ItemQuery": "sources.m365.restore.query",
    "parse_when": "sources.m365.restore.query",
    "REPORT_FORMAT": "sources.m365.restore.runner",
    "REPORT_VERSION": "sources.m365.restore.runner",
    "TenantRestore": "sources.m365.restore.runner",
    "restore_settings": "sources.m365.restore.settings",
    "ORIGINAL": "sources.m365.restore.target",
    "SITE": "sources.m365.restore.target",
    "USER": "sources.m365.restore.target",
    "RestoreTarget": "sources.m365.restore.target",
    "default_folder": "sources.m365.restore.target",
    "parse_target": "sources.m365.restore.target",
}


def __getattr__(name: str) -> Any:
    return resolve(__name__, _LAZY, globals(), name)


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
