"""A user's OneDrive: every drive of the user (usually one) through drive.py.

Layout: ``onedrive/`` for the user's main drive; any further drive of the
user under ``onedrive-<name> [<id>]``. A user without a OneDrive (none
provisioned, no licence) raises MailboxUnavailable: not applicable.
"""

from __future__ import annotations

from sources.m365.backup.context import ServiceContext
from sources.m365.backup.drive import backup_drive
from sources.m365.graph.errors import MailboxUnavailable
from sources.m365.names import safe_name, short_id


def backup_onedrive(ctx: ServiceContext) -> None:
    uid = ctx.job.key
    drives = list(ctx.client.list_all(f"/users/{uid}/drives", ctx.res))
    if not drives:
        raise MailboxUnavailable(404, "ResourceNotFound", "the user has no OneDrive")
    drives.sort(key=lambda d: (str(d.get("createdDateTime") or ""), str(d.get("id"))))
    for index, drive in enumerate(drives):
        if index == 0:
            base = "onedrive"
        else:
            name = str(drive.get("name") or "drive")
            base = safe_name(f"onedrive-{name} [{short_id(str(drive['id']))}]")
        backup_drive(ctx, drive, base)
