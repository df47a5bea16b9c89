"""Microsoft 365 groups: the group mailbox (conversations, threads, posts) and calendar.

Layout (docs/layout.md), in the group's snapshot (owner kind ``groups``):

    group.json
    conversations/<topic> [<conversation id8>]/<first post UTC> <topic> [<thread id8>].json
    conversations/<...>/<same stem>.html                      (a readable page, inert)
    conversations/<...>/<same stem>.attachment.<name>         (post file attachments)
    calendar/<start UTC> <subject> [<id8>].json and .ics

Graph has no delta for conversations (group-list-conversations.md): every run lists the
conversations; a conversation whose ``lastDeliveredDateTime`` equals the stored one is
kept without listing its threads, and in the others a thread is read again (its posts
and their attachments) only when its ``lastDeliveredDateTime`` (its version) moved.
Names do not hold the last delivery time, so a new post changes one thread's files and
renames nothing.

The group calendar is read through ``/groups/{id}/calendarView`` over a window of
``group_calendar_years`` before and after now (``/groups/{id}/events`` refuses
application permissions, group-list-events.md), series occurrences as Graph returns
them. Graph cannot recreate posts with their senders and dates: this service is backup,
browse and export only.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sources.m365.backup.calendar import add_event, event_attrs, event_stem, event_version
from sources.m365.backup.context import Enumeration, ServiceContext, content_version, graph_json
from sources.m365.graph.errors import ItemGone
from sources.m365.names import item_name, safe_name, time_ns, titled_name
from sources.m365.render.groups import render_group_thread

CONVERSATIONS = "conversations"
CALENDAR = "calendar"
CALENDAR_HEADERS = {"Prefer": 'outlook.timezone="UTC", odata.maxpagesize=100'}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GroupBackup:
    """One group's backup (one thread of control; posts are read by the workers)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.gid = ctx.job.key
        self.display = str(ctx.job.graph.get("displayName") or ctx.job.name)

    def run(self) -> None:
        ctx = self.ctx
        body = json.dumps(ctx.job.graph, indent=1, sort_keys=True, ensure_ascii=False).encode()
        version = content_version(body)
        if not ctx.unchanged("group.json", version):
            ctx.add_file("group.json", body, version=version, attrs={"type": "group"})
        self.conversations()
        self.calendar()

    # -- conversations ------------------------------------------------------------------

    def conversations(self) -> None:
        ctx = self.ctx
        base = f"/groups/{self.gid}/conversations"
        wanted: set[str] = set()
        for conv in ctx.client.list_all(base, ctx.res):
            cid = str(conv.get("id") or "")
            if not cid:
                continue
            name = titled_name(str(conv.get("topic") or "(no topic)"), cid)
            wanted.add(name)
            self._conversation(conv, f"{CONVERSATIONS}/{name}")
        ctx.drain()
        for name, (kind, _v) in ctx.children(CONVERSATIONS).items():
            if kind == "d" and name not in wanted:
                ctx.remove(f"{CONVERSATIONS}/{name}")

    def _conversation(self, conv: dict[str, Any], path: str) -> None:
        ctx = self.ctx
        cid = str(conv["id"])
        version = str(conv.get("lastDeliveredDateTime") or "")
        stored = ctx.entry(path)
        if stored is not None and version and stored.version == version:
            # Nothing delivered since: every thread of it is kept as stored, provided
            # each is whole (a base older than item groups may lack a page).
            kept = self._stored_threads(path)
            if all(v and ctx.unchanged_all(files, v, count=False) for files, v in kept):
                ctx.report.add("items_unchanged", len(kept))
                return
        # The directory's version is set only once its threads are stored, so an
        # interrupted run is never taken for a complete one.
        attrs = {"type": "conversation", "id": cid, "name": str(conv.get("topic") or "")}
        ctx.add_dir(path, item_id=f"conversation:{cid}", attrs=attrs)
        enumeration = Enumeration(ctx, path)
        url = f"/groups/{self.gid}/conversations/{cid}/threads"
        try:
            threads = list(ctx.client.list_all(url, ctx.res))
        except ItemGone:
            return  # the conversation was deleted meanwhile: the next listing drops it
        for thread in threads:
            self._thread(thread, path, enumeration)
        ctx.drain()
        enumeration.finish()
        attrs["graph"] = graph_json(conv)
        ctx.add_dir(path, item_id=f"conversation:{cid}", attrs=attrs, version=version)

    def _stored_threads(self, path: str) -> list[tuple[tuple[str, ...], str]]:
        """The threads stored in a conversation directory: (their files, version)."""
        out: list[tuple[tuple[str, ...], str]] = []
        for name, (kind, version) in self.ctx.children(path).items():
            if kind != "f" or not name.endswith(".json"):
                continue
            entry = self.ctx.entry(f"{path}/{name}")
            names = json.loads(entry.attrs.get("attachments", "[]")) if entry else []
            stem = name[: -len(".json")]
            files = (f"{path}/{name}", f"{path}/{stem}.html", *(f"{path}/{n}" for n in names))
            out.append((files, version or ""))
        return out

    def _thread(self, thread: dict[str, Any], path: str, enumeration: Enumeration) -> None:
        ctx = self.ctx
        tid = str(thread.get("id") or "")
        if not tid:
            return
        item_id = f"{self.gid}/{tid}"
        version = str(thread.get("lastDeliveredDateTime") or "")
        old = ctx.lookup(item_id)
        if old is not None and old.startswith(f"{path}/") and version:
            stem = old.rsplit("/", 1)[1][: -len(".json")]
            entry = ctx.entry(old)
            names = json.loads(entry.attrs.get("attachments", "[]")) if entry else []
            companions = [f"{path}/{stem}.html", *(f"{path}/{n}" for n in names)]
            if ctx.unchanged_all((old, *companions), version):
                for name in (f"{stem}.json", f"{stem}.html", *names):
                    enumeration.saw(name)
                return

        def task() -> None:
            self._store_thread(thread, tid, item_id, version, path, enumeration, old)

        ctx.submit(task)

    def _store_thread(
        self,
        thread: dict[str, Any],
        tid: str,
        item_id: str,
        version: str,
        path: str,
        enumeration: Enumeration,
        old: str | None,
    ) -> None:
        ctx = self.ctx
        url = f"/groups/{self.gid}/threads/{tid}/posts"
        try:
            posts = list(ctx.client.list_all(url, ctx.res))
        except ItemGone:
            return
        first = min((str(p.get("receivedDateTime") or "") for p in posts), default="")
        stem = item_name(first or None, str(thread.get("topic") or ""), tid, "")
        files: list[tuple[str, bytes, dict[str, Any]]] = []
        shown: dict[str, list[str]] = {}
        for post in posts:
            if not post.get("hasAttachments"):
                continue
            for att, data in self._attachments(tid, str(post.get("id") or ""), stem):
                label = str(att.get("name") or att.get("id") or len(files))
                name = f"{stem}.attachment.{safe_name(label)}"
                if any(name == f[0] for f in files):
                    name = f"{stem}.attachment.{len(files)} {safe_name(label)}"
                if ctx.excluded(f"{path}/{name}", len(data)):
                    continue  # max_item_size or exclude_paths (counted as excluded)
                files.append((name, data, att))
                shown.setdefault(str(post.get("id")), []).append(name)
        names = [f[0] for f in files]
        for name in (f"{stem}.json", f"{stem}.html", *names):
            enumeration.saw(name)
        mtime = time_ns(version or None)
        body = json.dumps(
            {"thread": thread, "posts": posts}, indent=1, sort_keys=True, ensure_ascii=False
        ).encode()
        json_path = f"{path}/{stem}.json"
        # The thread, its page and its attachments are one unit for checkpoints.
        with ctx.group():
            if old is not None:
                self._remove_thread(old, keep=json_path)
            ctx.add_file(
                json_path,
                body,
                version=version,
                item_id=item_id,
                attrs={
                    "type": "groupThread",
                    "id": tid,
                    "name": str(thread.get("topic") or ""),
                    "posts": str(len(posts)),
                    "attachments": json.dumps(names, ensure_ascii=False),
                },
                mtime_ns=mtime,
            )
            for name, data, att in files:
                ctx.add_file(
                    f"{path}/{name}",
                    data,
                    version=version,
                    attrs={
                        "type": "postAttachment",
                        "of": f"{stem}.json",
                        "id": str(att.get("id") or ""),
                        "name": str(att.get("name") or ""),
                        "graph": graph_json(att, drop=("contentBytes",)),
                    },
                    mtime_ns=mtime,
                    count=False,
                )
            ctx.add_file(
                f"{path}/{stem}.html",
                render_group_thread(thread, posts, self.display, shown),
                version=version,
                attrs={"type": "rendering", "of": f"{stem}.json"},
                mtime_ns=mtime,
                count=False,
            )

    def _remove_thread(self, json_path: str, *, keep: str) -> None:
        """A stored thread's files (its JSON unless it is ``keep``, its page and
        attachments), not counted: the caller stores the thread again in the same group
        (the JSON is replaced in place, so it counts as changed)."""
        ctx = self.ctx
        entry = ctx.entry(json_path)
        names = json.loads(entry.attrs.get("attachments", "[]")) if entry else []
        folder, _, base = json_path.rpartition("/")
        stem = base[: -len(".json")]
        for name in (f"{stem}.json", f"{stem}.html", *names):
            if f"{folder}/{name}" != keep:
                ctx.remove(f"{folder}/{name}", count=False)

    def _attachments(self, tid: str, pid: str, stem: str) -> list[tuple[dict[str, Any], bytes]]:
        """The post's file attachments with their bytes; other kinds are noted."""
        ctx = self.ctx
        url = f"/groups/{self.gid}/threads/{tid}/posts/{pid}/attachments"
        out: list[tuple[dict[str, Any], bytes]] = []
        try:
            found = list(ctx.client.list_all(url, ctx.res))
        except ItemGone:
            return out
        for att in found:
            raw = att.get("contentBytes")
            if att.get("@odata.type") != "#microsoft.graph.fileAttachment" or raw is None:
                ctx.note("post attachments other than files are not stored (no bytes)")
                continue
            out.append((att, base64.b64decode(str(raw))))
        return out

    # -- calendar -----------------------------------------------------------------------

    def calendar(self) -> None:
        ctx = self.ctx
        years = ctx.settings.group_calendar_years
        now = datetime.now(UTC)
        span = timedelta(days=365 * years + years // 4)
        params = {"startDateTime": _iso(now - span), "endDateTime": _iso(now + span)}
        url = f"/groups/{self.gid}/calendarView"
        enumeration = Enumeration(ctx, CALENDAR)
        events = list(ctx.client.list_all(url, ctx.res, params=params, headers=CALENDAR_HEADERS))
        if events or ctx.entry(CALENDAR) is not None:
            ctx.add_dir(CALENDAR, attrs={"type": "calendar", "name": self.display})
        for event in events:
            self._event(event, enumeration)
        enumeration.finish()

    def _event(self, event: dict[str, Any], enumeration: Enumeration) -> None:
        ctx = self.ctx
        eid = str(event.get("id") or "")
        if not eid:
            return
        stem, version = event_stem(event, eid), event_version(event)
        enumeration.saw(f"{stem}.json")
        enumeration.saw(f"{stem}.ics")
        json_path = f"{CALENDAR}/{stem}.json"
        ics_path = f"{CALENDAR}/{stem}.ics"
        if version and ctx.unchanged_all((json_path, ics_path), version):
            return
        mtime = time_ns(event.get("lastModifiedDateTime"))
        # Stored like a user's event (backup/calendar.py), occurrences as calendarView
        # returns them: no attachments or time zone attributes (docs/layout.md).
        with ctx.group():
            add_event(ctx, event, f"{CALENDAR}/{stem}", event_attrs(event, eid, version), mtime)


def backup_group(ctx: ServiceContext) -> None:
    GroupBackup(ctx).run()
