"""Helpers of the restore tests: run a restore in-process, read what Graph holds.

Restores run like ``coffer restore`` does (TenantRestore over a fresh
Repository object); what they wrote is read back through Graph, never
through Coffer's own report.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import requests

from sources.m365.restore import ItemQuery, TenantRestore, parse_target
from sources.m365.restore.pacing import UploadBudget
from store import Snapshot, latest_per_owner
from tests.sources.m365.support.helpers import QUICK_RETRIES, make_client, open_repo, settings_for
from tools.graphsim.testing import RunningTenant


def restore(
    repo: Path,
    cache: Path,
    state: Path,
    *,
    owner: str = "*",
    to: str = "original",
    query: ItemQuery | None = None,
    on_conflict: str = "skip",
    dry_run: bool = False,
    snapshot: str | None = None,
    client_options: dict[str, Any] | None = None,
    budget: UploadBudget | None = None,
) -> dict[str, Any]:
    """One restore of the latest snapshots of owners matching ``owner`` (or of the
    snapshot whose ID starts with ``snapshot``); returns its report."""
    repository = open_repo(repo, cache)
    try:
        every = repository.list_snapshots()
        if snapshot is not None:
            chosen: list[Snapshot] = [s for s in every if s.id_hex.startswith(snapshot)]
        else:
            chosen = [
                s
                for s in latest_per_owner(every)
                if fnmatch.fnmatch(s.owner.name.lower(), owner.lower())
            ]
        settings = settings_for(state)
        client = make_client(settings, **(QUICK_RETRIES | (client_options or {})))
        return TenantRestore(
            repository,
            settings,
            chosen,
            query or ItemQuery(),
            parse_target(to),
            on_conflict=on_conflict,
            dry_run=dry_run,
            client=client,
            budget=budget,
        ).run()
    finally:
        repository.close()


def totals(report: dict[str, Any]) -> dict[str, int]:
    t = report["totals"]
    return {k: int(t[k]) for k in ("created", "replaced", "kept_both", "skipped", "failed")}


def failures(report: dict[str, Any]) -> list[str]:
    out = []
    for owner in report["owners"]:
        if owner.get("error"):
            out.append(f"{owner['name']}: {owner['error']}")
        for name, service in owner["services"].items():
            out.extend(f"{name}: {f['item']}: {f['reason']}" for f in service["failed_items"])
    return out


class Graph:
    """Reading the simulated tenant through Graph (a session with a token)."""

    def __init__(self, tenant: RunningTenant) -> None:
        self.tenant = tenant
        self.session: requests.Session = tenant.graph()

    def get(self, path: str, **params: str) -> dict[str, Any]:
        resp = self.session.get(self.tenant.url(path), params=params or None, timeout=60)
        resp.raise_for_status()
        data = resp.json()
        assert isinstance(data, dict)
        return data

    def all(self, path: str, headers: dict[str, str] | None = None, **params: str) -> list[Any]:
        url: str | None = self.tenant.url(path)
        out: list[Any] = []
        first = True
        while url:
            resp = self.session.get(
                url, params=params if first else None, headers=headers, timeout=60
            )
            resp.raise_for_status()
            data = resp.json()
            out.extend(data.get("value", []))
            url = data.get("@odata.nextLink")
            first = False
        return out

    def raw(self, path: str) -> bytes:
        resp = self.session.get(self.tenant.url(path), timeout=120)
        resp.raise_for_status()
        return resp.content

    def delete(self, path: str) -> None:
        resp = self.session.delete(self.tenant.url(path), timeout=60)
        assert resp.status_code in (204, 200), resp.text

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.session.patch(self.tenant.url(path), json=body, timeout=60)
        resp.raise_for_status()
        data = resp.json()
        assert isinstance(data, dict)
        return data

    def user(self, purpose: str = "user", index: int = 0) -> dict[str, Any]:
        users = [u for u in self.tenant.admin.users() if u["purpose"] == purpose and u["mailbox"]]
        return sorted(users, key=lambda u: u["userPrincipalName"])[index]

    def folder(self, uid: str, path: str) -> dict[str, Any] | None:
        """The mail folder at ``path`` (display names from the top), or None."""
        parent: str | None = None
        found: dict[str, Any] | None = None
        for name in path.split("/"):
            url = (
                f"/users/{uid}/mailFolders"
                if parent is None
                else f"/users/{uid}/mailFolders/{parent}/childFolders"
            )
            found = next(
                (f for f in self.all(url, includeHiddenFolders="true") if f["displayName"] == name),
                None,
            )
            if found is None:
                return None
            parent = found["id"]
        return found
