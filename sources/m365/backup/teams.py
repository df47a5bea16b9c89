"""Teams: channels (standard, private, shared) and their threads.

Layout (docs/layout.md), in the team's snapshot: ``team.json``,
``channels/<channel>/<posted UTC> <subject or text> [<id>].json`` (the root
post and its replies as Graph JSON) and the same name with ``.html`` (a
readable page). Graph cannot write channel messages back: Teams is backup,
browse and export only.

The first run lists every root post (``/messages``; delta only reaches the
last eight months) and takes a delta link; later runs use delta, and read
the replies of the threads it names. Reading channel messages with an
application permission is a protected API that Microsoft must approve: a 403
is reported once per run, with the permission to request, and the team's
other data (the team, its channels) is still backed up.
"""

from __future__ import annotations

import json
from typing import Any

from sources.m365.backup.context import (
    Enumeration,
    RunFlags,
    ServiceContext,
    content_version,
    graph_json,
)
from sources.m365.backup.hosted import Hosted, fetch_hosted, inline_images, references_hosted
from sources.m365.graph.errors import AccessDenied, DeltaNotSupported, ItemGone, ResyncRequired
from sources.m365.graph.throttle import APP, Resource
from sources.m365.names import clean_title, item_name, safe_name, short_id, time_ns
from sources.m365.render.html import render_thread
from sources.m365.render.text import body_text

PAGE = 50  # the documented maximum of $top for channel messages
PROTECTED_API = (
    "Teams channel messages were not backed up: reading them with an application "
    "permission is a protected API. Grant ChannelMessage.Read.All and request Microsoft's "
    "approval for the app (https://aka.ms/teamsgraph/requestaccess)."
)


class ProtectedApiRefused(Exception):
    pass


class TeamBackup:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.tid = ctx.job.key
        self.channels: dict[str, Any] = ctx.state.setdefault("channels", {})

    def _res(self, channel: str) -> Resource:
        base = self.ctx.res
        return Resource((APP, "teams", f"channel:{channel}"), "teams", None, base.meters)

    def run(self) -> None:
        ctx = self.ctx
        try:
            team = ctx.client.get_json(f"/teams/{self.tid}", ctx.res)
        except AccessDenied:
            team = dict(ctx.job.graph)  # what the team list gave: enough to name it
            ctx.note("the team's settings could not be read (403); its listing is kept")
        body = json.dumps(team, indent=1, sort_keys=True, ensure_ascii=False).encode()
        version = content_version(body)
        if not ctx.unchanged("team.json", version):
            ctx.add_file("team.json", body, version=version, attrs={"type": "team"})
        channels = list(ctx.client.list_all(f"/teams/{self.tid}/channels", ctx.res))
        counts: dict[str, int] = {}
        for ch in channels:
            name = str(ch.get("displayName") or ch.get("id")).lower()
            counts[name] = counts.get(name, 0) + 1
        wanted: set[str] = set()
        refused = False
        for ch in sorted(channels, key=lambda c: str(c.get("id"))):
            cid = str(ch["id"])
            name = str(ch.get("displayName") or cid)
            if counts[name.lower()] > 1:
                name = f"{name} [{short_id(cid)}]"
            path = f"channels/{safe_name(name)}"
            wanted.add(path.rsplit("/", 1)[1])
            current = ctx.lookup(cid)
            if current is not None and current != path:
                ctx.move_tree(current, path)
            ctx.add_dir(
                path,
                item_id=cid,
                attrs={
                    "type": "channel",
                    "id": cid,
                    "name": str(ch.get("displayName") or ""),
                    "membershipType": str(ch.get("membershipType") or ""),
                    "graph": graph_json(ch),
                },
            )
            flags = ctx.owner.flags
            if refused or flags.teams_protected_refused:
                refused = True
                continue
            try:
                if flags.teams_messages_allowed:
                    self._messages(cid, path, str(ch.get("displayName") or name))
                else:
                    # The first channel anywhere probes the protected API; the
                    # others wait for its answer so a refusal is asked once.
                    with flags.teams_probe:
                        if _refused(flags):  # another team's probe was refused meanwhile
                            refused = True
                            continue
                        self._messages(cid, path, str(ch.get("displayName") or name))
                        flags.teams_messages_allowed = True
            except ProtectedApiRefused:
                refused = True
        for name, (kind, _v) in ctx.children("channels").items():
            if kind == "d" and name not in wanted:
                ctx.remove(f"channels/{name}")
        if refused:
            ctx.report.incomplete("channel messages not readable: protected API not approved")

    def _messages(self, cid: str, path: str, channel: str) -> None:
        ctx = self.ctx
        res = self._res(cid)
        state = self.channels.get(cid) or {}
        link = state.get("delta")
        base = f"/teams/{self.tid}/channels/{cid}/messages"
        try:
            if link:
                try:
                    new_link = self._round(cid, str(link), res, path, channel, None, initial=False)
                except (ResyncRequired, DeltaNotSupported):
                    ctx.report.resynced.append(path)
                    new_link = self._full(cid, base, res, path, channel)
            else:
                new_link = self._full(cid, base, res, path, channel)
        except AccessDenied as exc:
            with ctx.owner.flags.lock:
                first = ctx.owner.flags.teams_protected_refused is None
                if first:
                    ctx.owner.flags.teams_protected_refused = f"{PROTECTED_API} ({exc.code})"
            raise ProtectedApiRefused() from None
        if new_link:
            self.channels[cid] = {"delta": new_link}
            ctx.publish()

    def _full(self, cid: str, base: str, res: Resource, path: str, channel: str) -> str | None:
        """Every root post (listing), then a delta round for the link (unchanged skipped)."""
        ctx = self.ctx
        enumeration = Enumeration(ctx, path)
        for root in ctx.client.list_all(base, res, params={"$top": str(PAGE)}):
            self._thread(cid, root, res, path, channel, enumeration, force=False)
        ctx.drain()  # the delta round below must see the threads just stored as unchanged
        try:
            link = self._round(
                cid, f"{base}/delta", res, path, channel, enumeration, initial=True, top=True
            )
        except DeltaNotSupported as exc:
            # A channel without messages: Graph refuses its delta (400 "Parameter
            # 'DeltaToken' not supported", microsoft-graph-docs #7382; Corso lists
            # instead). The listing above is complete: keep it, take no link, and
            # list again next run (a cheap request while the channel stays empty).
            ctx.drain()
            enumeration.finish()
            ctx.report.debug_note(f"{path}: delta not supported ({exc.code}); listed instead")
            return None
        ctx.drain()
        if link is not None:
            enumeration.finish()
        return link

    def _round(
        self,
        cid: str,
        url: str,
        res: Resource,
        path: str,
        channel: str,
        enumeration: Enumeration | None,
        *,
        initial: bool,
        top: bool = False,
    ) -> str | None:
        ctx = self.ctx
        link: str | None = None
        params = {"$top": str(PAGE)} if top else None
        for page in ctx.client.pages(url, res, params=params):
            for root in page.values:
                # A root named by an incremental round changed, or its replies did.
                self._thread(
                    cid, root, res, path, channel, enumeration, force=not initial, count=not initial
                )
            link = page.delta_link or link
        ctx.drain()
        return link

    def _thread(
        self,
        cid: str,
        root: dict[str, Any],
        res: Resource,
        path: str,
        channel: str,
        enumeration: Enumeration | None,
        *,
        force: bool,
        count: bool = True,
    ) -> None:
        ctx = self.ctx
        mid = str(root.get("id", ""))
        if not mid:
            return
        old = ctx.lookup(f"{self.tid}/{mid}")
        if "@removed" in root:
            if old is not None:
                with ctx.group():
                    self._remove_thread(old)
            return
        title = root.get("subject") or clean_title(body_text(root.get("body")), 60, "(post)")
        stem = item_name(root.get("createdDateTime"), str(title), mid, "")
        if enumeration is not None:
            enumeration.saw(f"{stem}.json")
            enumeration.saw(f"{stem}.html")
            enumeration.saw(f"{stem}.files")
        version = f"{root.get('lastModifiedDateTime')}|{root.get('etag')}"
        json_path = f"{path}/{stem}.json"
        # The first run's delta round sees again the posts the listing just stored:
        # not "unchanged" items of the run, so they are kept without being counted.
        # A thread whose page is missing (a base older than item groups) is read again.
        html_path = f"{path}/{stem}.html"
        if not force and ctx.unchanged_all((json_path, html_path), version, count=count):
            return

        def task() -> None:
            replies_url = f"/teams/{self.tid}/channels/{cid}/messages/{mid}/replies"
            try:
                replies = list(ctx.client.list_all(replies_url, res, params={"$top": str(PAGE)}))
            except ItemGone:
                replies = []
            thread = {"message": root, "replies": replies}
            mtime = time_ns(root.get("lastModifiedDateTime"))
            pasted = self._hosted(cid, mid, root, replies, res)
            body = json.dumps(thread, indent=1, sort_keys=True, ensure_ascii=False).encode()
            # The thread and its page are one unit: a checkpoint never holds one alone.
            with ctx.group():
                ctx.add_file(
                    json_path,
                    body,
                    version=version,
                    item_id=f"{self.tid}/{mid}",
                    attrs={"type": "chatThread", "id": mid, "replies": str(len(replies))},
                    mtime_ns=mtime,
                )
                files_dir = f"{path}/{stem}.files"
                if ctx.entry(files_dir) is not None:
                    ctx.remove(files_dir, count=False)  # the thread's previous images
                if pasted:
                    ctx.add_dir(files_dir, mtime_ns=mtime)
                for item in pasted:
                    ctx.add_file(
                        f"{files_dir}/{item.name}",
                        item.data,
                        version=version,
                        attrs={"type": "hostedContent", "of": f"{stem}.json"},
                        mtime_ns=mtime,
                        count=False,
                    )
                ctx.add_file(
                    html_path,
                    render_thread(root, replies, channel, inline_images(pasted)),
                    version=version,
                    attrs={"type": "rendering", "of": f"{stem}.json"},
                    mtime_ns=mtime,
                    count=False,
                )
                if old is not None and old != json_path:
                    self._remove_thread(old, count=False)

        ctx.submit(task)

    def _remove_thread(self, json_path: str, *, count: bool = True) -> None:
        """A thread's files: its JSON, its page and its hosted contents (in a group)."""
        stem = json_path[: -len(".json")]
        self.ctx.remove(json_path, count=count)
        self.ctx.remove(f"{stem}.html", count=False)
        self.ctx.remove(f"{stem}.files", count=False)

    def _hosted(
        self,
        cid: str,
        mid: str,
        root: dict[str, Any],
        replies: list[dict[str, Any]],
        res: Resource,
    ) -> list[Hosted]:
        """The images pasted into the thread's messages (only those whose body
        references hosted content cost requests)."""
        base = f"/teams/{self.tid}/channels/{cid}/messages/{mid}"
        notes: list[str] = []
        found: list[Hosted] = []
        for message in [root, *replies]:
            if message.get("deletedDateTime") or not references_hosted(message):
                continue
            url = base if message is root else f"{base}/replies/{message.get('id')}"
            found += fetch_hosted(self.ctx.client, url, res, notes=notes)
        for note in notes:
            self.ctx.note(note)
        # Two messages of one thread may carry the same image: one file each name.
        return list({item.name: item for item in found}.values())


def backup_team(ctx: ServiceContext) -> None:
    TeamBackup(ctx).run()


def _refused(flags: RunFlags) -> bool:
    """Whether the protected API refused this run (read afresh, under the probe lock)."""
    return flags.teams_protected_refused is not None
