"""SharePoint sites: document libraries as files (drive.py), lists as JSON.

Layout (docs/layout.md), in the site's snapshot: ``site.json``,
``libraries/<library>/<path>``, ``lists/<list>/<item id> <title>.json``.
List items are read by delta (links in the sync state); a 410 re-enumerates
the list. Libraries and lists that disappeared from the site are removed.
"""

from __future__ import annotations

import json
from typing import Any

from sources.m365.backup.context import Enumeration, ServiceContext, content_version, graph_json
from sources.m365.backup.drive import backup_drive
from sources.m365.graph.errors import ResyncRequired
from sources.m365.names import clean_title, safe_name, short_id, time_ns

HEADERS = {"Prefer": "odata.maxpagesize=200"}


def _unique_names(items: list[dict[str, Any]], key: str) -> dict[str, str]:
    """Graph ID -> directory name (the display name; with a short ID when two share it)."""
    counts: dict[str, int] = {}
    for item in items:
        name = str(item.get(key) or item.get("name") or item.get("id"))
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    out: dict[str, str] = {}
    for item in items:
        iid = str(item.get("id"))
        name = str(item.get(key) or item.get("name") or iid)
        if counts[name.lower()] > 1:
            name = f"{name} [{short_id(iid)}]"
        out[iid] = safe_name(name)
    return out


def _json_file(ctx: ServiceContext, path: str, data: dict[str, Any], kind: str) -> None:
    body = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False).encode()
    version = content_version(body)
    if ctx.unchanged(path, version):
        return
    ctx.add_file(
        path,
        body,
        version=version,
        attrs={"type": kind, "id": str(data.get("id", ""))},
        mtime_ns=time_ns(data.get("lastModifiedDateTime")),
    )


class SiteBackup:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.sid = ctx.job.key

    def run(self) -> None:
        ctx = self.ctx
        site = ctx.client.get_json(f"/sites/{self.sid}", ctx.res)
        _json_file(ctx, "site.json", site, "site")
        self._libraries()
        self._lists()

    def _libraries(self) -> None:
        ctx = self.ctx
        drives = list(ctx.client.list_all(f"/sites/{self.sid}/drives", ctx.res))
        names = _unique_names(drives, "name")
        wanted = set()
        for drive in drives:
            base = f"libraries/{names[str(drive['id'])]}"
            if ctx.selection.path_excluded(base):
                continue
            wanted.add(names[str(drive["id"])])
            current = ctx.lookup(f"drive:{drive['id']}")
            if current is not None and current != base:
                ctx.move_tree(current, base)
            backup_drive(ctx, drive, base)
        for name, (kind, _v) in ctx.children("libraries").items():
            if kind == "d" and name not in wanted:
                ctx.remove(f"libraries/{name}")

    def _lists(self) -> None:
        ctx = self.ctx
        lists = [
            lst
            for lst in ctx.client.list_all(f"/sites/{self.sid}/lists", ctx.res)
            if not (lst.get("list") or {}).get("hidden")
            and (lst.get("list") or {}).get("template") != "documentLibrary"
        ]
        names = _unique_names(lists, "displayName")
        links: dict[str, str] = ctx.state.setdefault("lists", {})
        wanted = set()
        for lst in lists:
            lid = str(lst["id"])
            path = f"lists/{names[lid]}"
            if ctx.selection.path_excluded(path):
                continue
            wanted.add(names[lid])
            current = ctx.lookup(f"list:{lid}")
            if current is not None and current != path:
                ctx.move_tree(current, path)
            ctx.add_dir(
                path,
                item_id=f"list:{lid}",
                attrs={
                    "type": "list",
                    "id": lid,
                    "name": str(lst.get("displayName") or ""),
                    "graph": graph_json(lst),
                },
            )
            first = f"/sites/{self.sid}/lists/{lid}/items/delta"
            link = links.get(lid)
            try:
                new_link = self._items(link or first, lid, path, initial=link is None)
            except ResyncRequired as exc:
                ctx.report.resynced.append(path)
                new_link = self._items(exc.location or first, lid, path, initial=True)
            if new_link:
                links[lid] = new_link
                ctx.publish()
        for name, (kind, _v) in ctx.children("lists").items():
            if kind == "d" and name not in wanted:
                ctx.remove(f"lists/{name}")

    def _items(self, url: str, lid: str, path: str, *, initial: bool) -> str | None:
        ctx = self.ctx
        enumeration = Enumeration(ctx, path) if initial else None
        params = {"$expand": "fields"} if initial else None
        link: str | None = None
        for page in ctx.client.pages(url, ctx.res, params=params, headers=HEADERS):
            for item in page.values:
                self._item(item, lid, path, enumeration)
            link = page.delta_link or link
        if enumeration is not None and link is not None:
            enumeration.finish()
        return link

    def _item(
        self, item: dict[str, Any], lid: str, path: str, enumeration: Enumeration | None
    ) -> None:
        ctx = self.ctx
        iid = str(item.get("id", ""))
        if not iid:
            return
        key = f"{lid}/{iid}"
        old = ctx.lookup(key)
        if "deleted" in item or "@removed" in item:
            if old is not None:
                ctx.remove(old)
            return
        fields = item.get("fields") or {}
        name = safe_name(f"{iid} {clean_title(str(fields.get('Title') or ''), 80)}.json")
        target = f"{path}/{name}"
        if enumeration is not None:
            enumeration.saw(name)
        version = str(item.get("eTag") or item.get("lastModifiedDateTime") or "")
        if version and ctx.unchanged(target, version):
            return
        body = json.dumps(item, indent=1, sort_keys=True, ensure_ascii=False).encode()
        with ctx.group():  # a renamed item is at one place in a checkpoint, never two
            ctx.add_file(
                target,
                body,
                version=version,
                item_id=key,
                attrs={"type": "listItem", "id": iid, "list": lid},
                mtime_ns=time_ns(item.get("lastModifiedDateTime")),
            )
            if old is not None and old != target:
                ctx.remove(old, count=False)


def backup_site(ctx: ServiceContext) -> None:
    SiteBackup(ctx).run()
