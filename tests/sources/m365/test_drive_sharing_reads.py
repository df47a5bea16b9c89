"""Drive delta with ``Prefer: hierarchicalsharing`` (driveitem-delta.md, "Scanning
permissions hierarchies"): the ``shared`` facet only on the roots of permission
hierarchies, so a backup reads the permissions of those items only, not of every
item that inherits its sharing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sources.m365.support.restoring import Graph
from tests.sources.m365.support.tenant import Setup

pytestmark = pytest.mark.sim


def _delta(g: Graph, drive: str, prefer: str) -> list[dict[str, Any]]:
    return g.all(f"/drives/{drive}/root/delta", headers={"Prefer": prefer} if prefer else None)


def test_a_backup_reads_permissions_of_sharing_roots_only(setup: Setup) -> None:
    g = Graph(setup.tenant)
    user = next(u for u in setup.tenant.admin.users() if u["purpose"] == "user" and u["drive"])
    drive = user["drive"]
    shared_anywhere = [i for i in _delta(g, drive, "") if "shared" in i]
    roots = [i for i in _delta(g, drive, "hierarchicalsharing") if "shared" in i]
    # The generated drive has sharing inherited below shared folders.
    assert len(roots) < len(shared_anywhere)

    setup.tenant.admin.reset_stats()
    report = setup.backup(users=[user["userPrincipalName"]], services=["onedrive"])
    assert report["status"] == "ok"
    by_endpoint = setup.tenant.admin.stats()["by_endpoint"]
    reads = sum(n for name, n in by_endpoint.items() if name.endswith("/permissions"))
    # The drive's root is a directory of the snapshot, not an item with permissions.
    assert reads == len([i for i in roots if "root" not in i])
