"""Contacts: every contact folder; each contact as Graph JSON plus a vCard.

Layout (docs/layout.md): ``contacts/Contacts/[<folder path>/]<name> [<id>].json``
and the same name with ``.vcf``. ``Contacts`` is the default folder (Graph
lists other folders as its children). Incremental by delta: the contact
folder delta, then one contact delta per folder (the default folder's is
``/contacts/delta``); a 410 re-enumerates the folder, skipping unchanged
contacts.
"""

from __future__ import annotations

import json
from typing import Any

from sources.m365.backup.context import Enumeration, ServiceContext
from sources.m365.backup.folderdelta import folder_round, place_folders
from sources.m365.backup.folders import FolderMap
from sources.m365.graph.errors import ItemGone, ResyncRequired
from sources.m365.names import time_ns, titled_name
from sources.m365.render.vcard import render_vcard

ROOT = "contacts/Contacts"
DEFAULT = "default"  # the key of the default folder's delta link in the state
HEADERS = {"Prefer": 'odata.maxpagesize=100, IdType="ImmutableId"'}


class ContactsBackup:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.uid = ctx.job.key
        self.state = ctx.state

    def run(self) -> None:
        ctx = self.ctx
        old = FolderMap(self.state.get("folders"))
        links = {str(k): str(v) for k, v in (self.state.get("contacts") or {}).items()}
        found = folder_round(
            ctx, old, f"/users/{self.uid}/contactFolders/delta", HEADERS, "contact folders"
        )
        if ctx.entry(ROOT) is None:
            ctx.add_dir(ROOT, attrs={"type": "contactFolder", "name": "Contacts"})

        placed = place_folders(
            ctx, old, found, ROOT, links, kind="contactFolder", prefix=("Contacts",)
        )
        todo: list[tuple[str, str, str]] = [(DEFAULT, ROOT, f"/users/{self.uid}/contacts/delta")]
        todo += [
            (fid, path, f"/users/{self.uid}/contactFolders/{fid}/contacts/delta")
            for fid, path in placed
        ]
        self.state["folders"] = found.fmap.to_state()
        if found.link:
            self.state["folders_delta"] = found.link
        self.state["contacts"] = links
        ctx.publish()
        for fid, path, first in todo:
            link = links.get(fid)
            try:
                try:
                    new_link = self._contacts(link or first, path, initial=link is None)
                except ResyncRequired:
                    ctx.report.resynced.append(path)
                    new_link = self._contacts(first, path, initial=True)
            except ItemGone as exc:
                # ErrorSyncFolderNotFound: deleted after the folder round listed it.
                ctx.remove(path)
                links.pop(fid, None)
                self.state["contacts"] = links
                ctx.report.debug_note(f"{path}: folder deleted during the run ({exc.code})")
                continue
            if new_link:
                links[fid] = new_link
                self.state["contacts"] = links
                ctx.publish()

    def _contacts(self, url: str, path: str, *, initial: bool) -> str | None:
        ctx = self.ctx
        enumeration = Enumeration(ctx, path) if initial else None
        link: str | None = None
        for page in ctx.client.pages(url, ctx.res, headers=HEADERS):
            for contact in page.values:
                self._contact(contact, path, enumeration)
            link = page.delta_link or link
        if enumeration is not None and link is not None:
            enumeration.finish()
        return link

    def _contact(
        self, contact: dict[str, Any], folder: str, enumeration: Enumeration | None
    ) -> None:
        ctx = self.ctx
        cid = str(contact.get("id", ""))
        if not cid:
            return
        old = ctx.lookup(cid)
        if "@removed" in contact:
            # A contact moved to another folder keeps its ID: remove only what is here.
            if old is not None and old.rpartition("/")[0] == folder:
                with ctx.group():
                    ctx.remove(old)
                    ctx.remove(old[: -len(".json")] + ".vcf", count=False)
            return
        stem = titled_name(contact.get("displayName"), cid)
        json_path, vcf_path = f"{folder}/{stem}.json", f"{folder}/{stem}.vcf"
        if enumeration is not None:
            enumeration.saw(f"{stem}.json")
            enumeration.saw(f"{stem}.vcf")
        version = str(contact.get("changeKey") or contact.get("@odata.etag") or "")
        # A vCard missing beside its JSON (a base older than item groups) is rendered again.
        if version and ctx.unchanged_all((json_path, vcf_path), version):
            return
        mtime = time_ns(contact.get("lastModifiedDateTime"))
        body = json.dumps(contact, indent=1, sort_keys=True, ensure_ascii=False).encode()
        # The contact and its vCard are one unit: a checkpoint never holds one alone.
        with ctx.group():
            ctx.add_file(
                json_path,
                body,
                version=version,
                item_id=cid,
                attrs={
                    "type": "contact",
                    "id": cid,
                    "name": str(contact.get("displayName") or ""),
                    "changeKey": version,
                },
                mtime_ns=mtime,
            )
            ctx.add_file(
                vcf_path,
                render_vcard(contact),
                version=version,
                attrs={"type": "rendering", "of": f"{stem}.json"},
                mtime_ns=mtime,
                count=False,
            )
            if old is not None and old != json_path:
                ctx.remove(old, count=False)
                ctx.remove(old[: -len(".json")] + ".vcf", count=False)


def backup_contacts(ctx: ServiceContext) -> None:
    ContactsBackup(ctx).run()
