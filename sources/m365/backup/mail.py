"""Mail: every folder, every message as its exact MIME (``.eml``) plus Graph metadata.

Layout (docs/layout.md): ``mail/<folder path>/<received UTC> <subject> [<id>].eml``;
each folder a directory carrying the folder's Graph JSON, each message the
message's Graph JSON (without ``body``: the MIME holds it) and flat attributes.

Incremental by delta: one folder delta round, then one message delta round
per folder (links in the sync state). Mail content is immutable once sent: a
changed changeKey on a non-draft message (read state, flags, categories)
re-describes the stored MIME without fetching it; a message moved to another
folder (Graph reports it removed there, new here) is matched by its internet
message ID and received time and keeps its stored MIME too. Drafts are
fetched again when they change. A 410 on a delta link re-enumerates that
folder, still skipping every unchanged message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sources.m365.backup.context import Enumeration, ServiceContext, graph_json
from sources.m365.backup.failures import Failures
from sources.m365.backup.folderdelta import folder_round, place_folders
from sources.m365.backup.folders import FolderMap
from sources.m365.backup.mimesplit import split_mime
from sources.m365.graph.client import TooLarge
from sources.m365.graph.errors import GraphError, ItemGone, ResyncRequired, permanent_item_error
from sources.m365.names import item_name, time_ns

ROOT = "mail"
PAGE_SIZE = 100
# Every message property but the bodies (the MIME has them) and the headers.
SELECT = ",".join(
    [
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "receivedDateTime",
        "sentDateTime",
        "hasAttachments",
        "internetMessageId",
        "subject",
        "importance",
        "parentFolderId",
        "conversationId",
        "conversationIndex",
        "isDeliveryReceiptRequested",
        "isReadReceiptRequested",
        "isRead",
        "isDraft",
        "webLink",
        "inferenceClassification",
        "sender",
        "from",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "flag",
    ]
)
# Immutable IDs survive moves between folders (outlook-immutable-id.md).
HEADERS = {"Prefer": f'odata.maxpagesize={PAGE_SIZE}, IdType="ImmutableId"'}
PENDING_LIMIT = 20_000
ITEM_ATTEMPTS = 3  # server errors on one message before it is the message's own


@dataclass
class _Pending:
    path: str
    message: dict[str, Any]
    attrs: dict[str, str]
    old: str | None


@dataclass
class _Round:
    """Bookkeeping of one run's message rounds (moves need every folder's removals)."""

    pending: list[_Pending] = field(default_factory=list)
    removed: dict[tuple[str, str], str] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)  # folder -> delta link held back


def _move_key(data: dict[str, Any]) -> tuple[str, str] | None:
    imid = data.get("internetMessageId")
    received = data.get("receivedDateTime")
    if not imid or not received or str(data.get("isDraft")).lower() == "true":
        return None
    return (str(imid), str(received))


def message_attrs(message: dict[str, Any], folder: str) -> dict[str, str]:
    attrs = {
        "type": "message",
        "id": str(message.get("id", "")),
        "graph": graph_json(message, drop=("body", "bodyPreview", "uniqueBody")),
        "folder": folder,
    }
    for key in (
        "subject",
        "internetMessageId",
        "receivedDateTime",
        "sentDateTime",
        "changeKey",
        "importance",
        "conversationId",
    ):
        if message.get(key) is not None:
            attrs[key] = str(message[key])
    for key in ("isRead", "isDraft", "hasAttachments"):
        if message.get(key) is not None:
            attrs[key] = "true" if message[key] else "false"
    flag = message.get("flag")
    if isinstance(flag, dict) and flag.get("flagStatus"):
        attrs["flagStatus"] = str(flag["flagStatus"])
    if message.get("categories"):
        attrs["categories"] = ",".join(str(c) for c in message["categories"])
    return attrs


class MailBackup:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.uid = ctx.job.key
        self.state = ctx.state
        self.round = _Round()
        self.failures = Failures(ctx, ctx.state)

    # -- the run -------------------------------------------------------------------------

    def run(self) -> None:
        ctx = self.ctx
        old = FolderMap(self.state.get("folders"))
        links: dict[str, str] = {
            str(k): str(v) for k, v in (self.state.get("messages") or {}).items()
        }
        found = folder_round(
            ctx, old, f"/users/{self.uid}/mailFolders/delta", HEADERS, "mail folders"
        )

        placed = place_folders(ctx, old, found, ROOT, links, kind="mailFolder")
        todo = [(fid, path, found.fmap.human_path(fid)) for fid, path in placed]
        ctx.report.count("folders", len(todo))
        self.state["folders"] = found.fmap.to_state()
        if found.link:
            self.state["folders_delta"] = found.link
        self.state["messages"] = links
        ctx.publish()
        for fid, path, human in todo:
            self._folder(fid, path, human, links)
        self._finish(links)
        self._retry_failed()
        self.failures.finish()

    def _retry_failed(self) -> None:
        """Read again the failed messages delta did not name this run (bounded:
        failures.RETRY_RUNS); a message gone meanwhile loses its record."""
        ctx = self.ctx
        for record in self.failures.due():
            mid = str(record["id"])
            try:
                message = ctx.client.get_json(
                    f"/users/{self.uid}/messages/{mid}",
                    ctx.res,
                    params={"$select": SELECT},
                    headers=HEADERS,
                )
            except ItemGone:
                self.failures.resolved(mid)
                continue
            except GraphError:
                self.failures.retried(mid)  # metadata unreadable now: the code stands
                continue
            path = str(record["path"])
            human = path.rsplit("/", 1)[0].removeprefix(f"{ROOT}/")
            self._fetch(path, message, message_attrs(message, human), None)
        ctx.drain()

    def _folder(self, fid: str, path: str, human: str, links: dict[str, str]) -> None:
        ctx = self.ctx
        link = links.get(fid)
        first = f"/users/{self.uid}/mailFolders/{fid}/messages/delta"
        held_before = (len(self.round.pending), len(self.round.deferred))
        skipped_before = ctx.report.items_skipped
        try:
            try:
                new_link = self._messages(link or first, fid, path, human, initial=link is None)
            except ResyncRequired:
                ctx.report.resynced.append(f"mail/{human}")
                new_link = self._messages(first, fid, path, human, initial=True)
        except ItemGone as exc:
            # ErrorSyncFolderNotFound / ErrorItemNotFound: the folder was deleted after
            # the folder round listed it. Not a failure of the mailbox: it is gone.
            ctx.drain()
            ctx.remove(path)
            links.pop(fid, None)
            self.state["messages"] = links
            ctx.report.debug_note(f"mail/{human}: folder deleted during the run ({exc.code})")
            return
        if new_link is None or ctx.report.items_skipped != skipped_before:
            # A skipped message would never come back in a later round: keep the
            # old link, so the next run reads these changes again (stored ones
            # are then unchanged and cost nothing).
            return
        if (len(self.round.pending), len(self.round.deferred)) != held_before:
            self.round.held[fid] = new_link  # published once moves and removals are applied
            return
        links[fid] = new_link
        self.state["messages"] = links
        ctx.publish()

    def _messages(self, url: str, fid: str, path: str, human: str, *, initial: bool) -> str | None:
        ctx = self.ctx
        enumeration = Enumeration(ctx, path) if initial else None
        params = {"$select": SELECT} if initial else None
        link: str | None = None
        for page in ctx.client.pages(url, ctx.res, params=params, headers=HEADERS):
            for message in page.values:
                self._message(message, path, human, initial, enumeration)
            link = page.delta_link or link
        ctx.drain()
        if enumeration is not None and link is not None:
            enumeration.finish()
        return link

    def _message(
        self,
        message: dict[str, Any],
        folder_path: str,
        human: str,
        initial: bool,
        enumeration: Enumeration | None,
    ) -> None:
        ctx = self.ctx
        mid = str(message.get("id", ""))
        if not mid:
            return
        if "@removed" in message:
            old = ctx.lookup(mid)
            # With immutable IDs a message moved to a folder already processed this
            # run is there under the same ID: only what is still here goes.
            if old is not None and old.rpartition("/")[0] == folder_path:
                entry = ctx.entry(old)
                key = _move_key(dict(entry.attrs)) if entry is not None else None
                if key is not None:
                    self.round.removed[key] = old
                self.round.deferred.append(old)
            return
        when = message.get("receivedDateTime") or message.get("createdDateTime")
        name = item_name(when, message.get("subject"), mid, ".eml")
        target = f"{folder_path}/{name}"
        existing = ctx.entry(target)
        if existing is not None and existing.item_id not in (None, mid):
            name = item_name(when, message.get("subject"), mid, ".eml", id_len=16)
            target = f"{folder_path}/{name}"
        if enumeration is not None:
            enumeration.saw(name)
        version = str(message.get("changeKey") or message.get("@odata.etag") or "")
        if version and ctx.unchanged(target, version):
            return
        attrs = message_attrs(message, human)
        old = ctx.lookup(mid)
        if old is not None and not message.get("isDraft"):
            stored = ctx.entry(old)
            if stored is not None and stored.is_file:
                # Sent mail does not change: only its metadata did.
                with ctx.group():  # a checkpoint holds it at one place, never two or none
                    ctx.add_file(
                        target,
                        version=version,
                        item_id=mid,
                        attrs=attrs,
                        mtime_ns=time_ns(when),
                        reuse_from=old,
                    )
                    if old != target:
                        ctx.remove(old, count=False)
                return
        if not initial and _move_key(message) and len(self.round.pending) < PENDING_LIMIT:
            self.round.pending.append(_Pending(target, message, attrs, old))
            return
        self._fetch(target, message, attrs, old)

    def _fetch(
        self, target: str, message: dict[str, Any], attrs: dict[str, str], old: str | None
    ) -> None:
        ctx = self.ctx
        mid = str(message["id"])
        version = str(message.get("changeKey") or message.get("@odata.etag") or "")
        when = message.get("receivedDateTime") or message.get("createdDateTime")
        limit = ctx.selection.max_item_size

        def task() -> None:
            # The message and its removal from ``old`` (a move) are one unit.
            with ctx.group(), ctx.spool() as spool:
                try:
                    ctx.client.download(
                        f"/users/{self.uid}/messages/{mid}/$value",
                        ctx.res,
                        spool,
                        max_bytes=limit,
                        headers={"Prefer": 'IdType="ImmutableId"'},
                        attempts=ITEM_ATTEMPTS,
                    )
                except ItemGone as exc:
                    # Deleted in flight: the next delta round reports the removal.
                    ctx.report.debug_note(f"{target}: deleted during the run ({exc.code})")
                    self.failures.resolved(mid)
                    return
                except TooLarge:
                    ctx.excluded(target, limit + 1)
                    return
                except GraphError as exc:
                    if permanent_item_error(exc):
                        self.failures.record(mid, target, exc)
                    else:
                        ctx.skip(target, f"cannot read the message: {exc}")
                    return
                spool.seek(0)
                content = split_mime(spool) if ctx.settings.mime_dedup else spool
                ctx.add_file(
                    target,
                    content,
                    version=version,
                    item_id=mid,
                    attrs=attrs,
                    mtime_ns=time_ns(when),
                )
                self.failures.resolved(mid)
                if old is not None and old != target:
                    ctx.remove(old, count=False)

        ctx.submit(task)

    def _finish(self, links: dict[str, str]) -> None:
        """Apply moves (reusing stored MIME), then removals; publish held links."""
        ctx = self.ctx
        consumed: set[str] = set()
        skipped_before = ctx.report.items_skipped
        for item in self.round.pending:
            key = _move_key(item.message)
            source = self.round.removed.get(key) if key else None
            if source is not None and ctx.entry(source) is not None:
                ctx.add_file(
                    item.path,
                    version=str(item.message.get("changeKey") or ""),
                    item_id=str(item.message["id"]),
                    attrs=item.attrs,
                    mtime_ns=time_ns(item.message.get("receivedDateTime")),
                    reuse_from=source,
                )
                consumed.add(source)
            else:
                self._fetch(item.path, item.message, item.attrs, item.old)
        ctx.drain()
        for path in self.round.deferred:
            ctx.remove(path, count=path not in consumed)
        if self.round.held and ctx.report.items_skipped == skipped_before:
            links.update(self.round.held)
            self.state["messages"] = links
            ctx.publish()


def backup_mail(ctx: ServiceContext) -> None:
    """Back up the mailbox of ``ctx.job`` (raises MailboxUnavailable if it has none)."""
    MailBackup(ctx).run()
