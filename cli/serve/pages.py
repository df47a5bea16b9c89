"""The console's pages: start, runs and reports, owners, repository, browse, item
preview and download, search, and restore jobs.

Handlers only read through the engine's public API (store, sources) while
holding the repository's lock, on a worker thread; rendering is Jinja2 with
autoescaping; every download and restore is audited.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from html import escape
from pathlib import PurePosixPath
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from cli.serve.console import Console, ServedRepo
from cli.serve.growth import GrowthPoint, growth_points, prune_events
from cli.serve.jobs import DOWNLOAD, RestoreJobs, RestoreRequest
from cli.serve.login import client_address
from cli.serve.overview import Overview
from cli.serve.preview import (
    MAX_PREVIEW_BYTES,
    PREVIEW_CSP,
    graph_fields,
    mail_preview,
    sanitize_mail_html,
    text_preview,
)
from cli.serve.security import checked_form, require, signed_in
from cli.serve.web import Web
from sources.m365.restore import POLICIES, ItemQuery, find_versions, parse_when
from store import (
    Layout,
    PathNotFound,
    SnapshotItem,
    StoreError,
    VirtualDir,
    VirtualLink,
    VNode,
    owner_matches,
)

T = TypeVar("T")
PAGE = 200  # directory entries per page
SEARCH_LIMIT = 200
AUDIT_SHOWN = 200
MAX_SELECTED = PAGE  # items of one restore: the rows of one browse page
_READ_BLOCK = 1 << 20
_UPN = re.compile(r"[^\s/\\]{1,256}(/[^\\]{0,1024})?")


def display(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape").encode("utf-8", "backslashreplace").decode()


def item_kind(item: SnapshotItem) -> str:
    """message, contact, event, thread, rendering, file or folder."""
    if item.is_dir:
        return "folder"
    attrs = item.entry.attrs
    kind = attrs.get("type", "")
    name = item.entry.display_name.lower()
    if kind == "message" or name.endswith(".eml"):
        return "message"
    if kind in ("contact", "event") and name.endswith(".json"):
        return kind
    if kind == "chatThread" and name.endswith(".json"):
        return "thread"
    if name.endswith(".html") and attrs.get("of"):
        return "html"
    return "file"


def is_folder(node: VNode) -> bool:
    return isinstance(node, VirtualDir | VirtualLink) or node.is_dir


def sender_of(item: SnapshotItem) -> str:
    try:
        graph = json.loads(item.entry.attrs.get("graph", "{}"))
        address = (graph.get("from") or {}).get("emailAddress") or {}
        return str(address.get("name") or address.get("address") or "")
    except (ValueError, AttributeError):
        return ""


def download_name(item: SnapshotItem) -> str:
    return item.entry.display_name.encode("utf-8", "replace").decode() or "item"


def disposition(name: str) -> str:
    ascii_name = re.sub(r"[^A-Za-z0-9._ -]", "_", name)[:150] or "item"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


MEDIA_TYPES = {
    ".eml": "message/rfc822",
    ".vcf": "text/vcard",
    ".ics": "text/calendar",
}


class Pages:
    def __init__(self, console: Console, web: Web, jobs: RestoreJobs) -> None:
        self.console = console
        self.web = web
        self.jobs = jobs

    # -- helpers --------------------------------------------------------

    def served(self, request: Request) -> ServedRepo:
        return self.console.repo(signed_in(request).session.repo)

    async def locked(self, served: ServedRepo, func: Callable[[], T]) -> T:
        def run() -> T:
            with served.lock:
                return func()

        try:
            return await run_in_threadpool(run)
        except PathNotFound:
            raise HTTPException(404, "no such item") from None

    def render(self, request: Request, template: str, **context: Any) -> HTMLResponse:
        return self.web.render(request, template, context)

    def _node(self, served: ServedRepo, path: str) -> VNode:
        return served.vfs.resolve(path.strip("/"), follow=True)

    async def _item(self, served: ServedRepo, path: str) -> SnapshotItem:
        node = await self.locked(served, lambda: self._node(served, path))
        if not isinstance(node, SnapshotItem):
            raise HTTPException(404, "not an item of a snapshot")
        return node

    # -- overview pages --------------------------------------------------

    async def overview(self, served: ServedRepo) -> Overview:
        try:
            return await self.locked(served, served.overview)
        except StoreError as exc:
            raise HTTPException(503, f"cannot read the repository: {exc}") from None

    async def start(self, request: Request) -> Response:
        served = self.served(request)
        view = await self.overview(served)
        return self.render(request, "start.html", owners=view.owners, runs=view.runs[:10])

    async def runs(self, request: Request) -> Response:
        view = await self.overview(self.served(request))
        return self.render(request, "runs.html", runs=view.runs)

    async def report(self, request: Request) -> Response:
        served = self.served(request)
        key = request.query_params.get("key", "")
        if not re.fullmatch(r"reports/[a-z0-9-]+/[A-Za-z0-9_-][A-Za-z0-9._-]*", key):
            raise HTTPException(404, "no such report")
        try:
            report = await self.locked(served, lambda: served.repo.load_report(key))
        except StoreError:
            raise HTTPException(404, "no such report") from None
        view = await self.overview(served)
        run = next((r for r in view.runs if r.key == key), None)
        text = json.dumps(report, indent=2, sort_keys=True)
        # The notifications sent about this run (cli/serve/notifylog.py).
        deliveries = (
            await self.locked(served, lambda: served.notifications.for_report(key))
            if key.startswith("reports/backup/")
            else []
        )
        return self.render(
            request,
            "report.html",
            key=key,
            run=run,
            text=text,
            report=report,
            deliveries=deliveries,
        )

    async def owners(self, request: Request) -> Response:
        view = await self.overview(self.served(request))
        return self.render(request, "owners.html", owners=view.owners)

    async def owner(self, request: Request) -> Response:
        served = self.served(request)
        identity = request.query_params.get("id", "")
        view = await self.overview(served)
        owner = next((o for o in view.owners if o.identity == identity), None)
        if owner is None:
            raise HTTPException(404, "no such owner")
        snaps = sorted(
            (s for s in view.snapshots if s.owner.identity == identity),
            key=lambda s: s.time_ns,
            reverse=True,
        )
        return self.render(request, "owner.html", owner=owner, snapshots=snaps)

    async def repository(self, request: Request) -> Response:
        served = self.served(request)
        stats = await self.locked(served, served.stats)
        view = await self.overview(served)
        try:
            prunes = await self.locked(served, lambda: prune_events(served.repo))
        except StoreError:
            prunes = []
        points = growth_points(
            view.runs, prunes, time.time(), stats.repository_bytes if stats else None
        )
        chart = growth_chart(points)
        return self.render(request, "repository.html", stats=stats, chart=chart, points=points)

    async def audit(self, request: Request) -> Response:
        """The newest audit entries (admin only)."""
        require(request, "admin")
        served = self.served(request)

        def entries() -> list[dict[str, Any]]:
            keys = served.repo.list_reports("audit")[-AUDIT_SHOWN:]
            out = []
            for key in reversed(keys):
                try:
                    out.append(served.repo.load_report(key))
                except StoreError as exc:
                    out.append({"event": "unreadable", "user": "", "detail": str(exc)})
            return out

        rows = await self.locked(served, entries)
        return self.render(request, "audit.html", entries=rows, shown=AUDIT_SHOWN)

    async def select_repo(self, request: Request) -> Response:
        form = await checked_form(request)
        name = str(form.get("repo") or "")
        if name in (r.name for r in self.console.repos):
            signed_in(request).session.repo = name
        return RedirectResponse("/", status_code=303)

    # -- browse, preview, download ---------------------------------------

    async def browse(self, request: Request) -> Response:
        served = self.served(request)
        path = request.query_params.get("p", "").strip("/")
        after = request.query_params.get("after")

        def listing() -> tuple[VNode, list[dict[str, Any]], str | None]:
            node = self._node(served, path)
            if isinstance(node, SnapshotItem) and not node.is_dir:
                return node, [], None
            # Folders first, then items, each in name order: two passes over the
            # directory; the "More" cursor is the pass and the last name shown.
            phase, start = "d", None
            if after and after[:2] in ("d:", "f:"):
                phase, start = after[0], after[2:].encode("utf-8", "surrogateescape")
            rows: list[dict[str, Any]] = []
            last = ""
            for ph in ("d", "f")[("d", "f").index(phase) :]:
                for name, child in served.vfs.children(node, start if ph == phase else None):
                    if is_folder(child) != (ph == "d"):
                        continue
                    if len(rows) == PAGE:
                        return node, rows, last
                    rows.append(self._row(path, name, child))
                    last = f"{ph}:{name.decode('utf-8', 'surrogateescape')}"
            return node, rows, None

        node, rows, more = await self.locked(served, listing)
        if isinstance(node, SnapshotItem) and not node.is_dir:
            return RedirectResponse(f"/item?p={quote(path)}", status_code=303)
        crumbs = []
        parts = path.split("/") if path else []
        for i, part in enumerate(parts):
            crumbs.append((part, "/".join(parts[: i + 1])))
        in_snapshot = isinstance(node, SnapshotItem)
        return self.render(
            request,
            "browse.html",
            path=path,
            rows=rows,
            more=more,
            crumbs=crumbs,
            in_snapshot=in_snapshot,
            snapshot=node.snapshot if isinstance(node, SnapshotItem) else None,
            policies=POLICIES,
        )

    def _row(self, path: str, name: bytes, child: VNode) -> dict[str, Any]:
        text = name.decode("utf-8", "surrogateescape")
        row: dict[str, Any] = {
            "name": display(name),
            "path": f"{path}/{text}" if path else text,
            "dir": is_folder(child),
            "link": isinstance(child, VirtualLink),
        }
        if isinstance(child, SnapshotItem):
            attrs = child.entry.attrs
            kind = item_kind(child)
            row.update(
                kind=kind,
                size=child.size,
                mtime=child.mtime_ns / 1e9,
                subject=attrs.get("subject") or attrs.get("name") or "",
                sender=sender_of(child) if kind == "message" else "",
            )
        return row

    async def item(self, request: Request) -> Response:
        served = self.served(request)
        path = request.query_params.get("p", "").strip("/")
        item = await self._item(served, path)
        if item.is_dir:
            return RedirectResponse(f"/browse?p={quote(path)}", status_code=303)
        kind = item_kind(item)
        context: dict[str, Any] = {
            "path": path,
            "item": item,
            "kind": kind,
            "name": item.entry.display_name,
            "attrs": {k: v for k, v in item.entry.attrs.items() if k != "graph"},
            "policies": POLICIES,
            "parent": path.rpartition("/")[0],
        }
        if (item.size <= MAX_PREVIEW_BYTES and kind != "file") or item.size <= 256 * 1024:
            raw = await self.locked(served, lambda: served.vfs.open(item).read())
            if kind == "message":
                context["mail"] = mail_preview(raw)
            elif kind in ("contact", "event"):
                try:
                    context["fields"] = graph_fields(json.loads(raw))
                except (ValueError, AttributeError):
                    context["text"] = text_preview(raw)
            elif kind == "html":
                context["frame"] = True
            else:
                context["text"] = text_preview(raw)
        return self.render(request, "item.html", **context)

    async def item_body(self, request: Request) -> Response:
        """The sanitised HTML of a mail or a rendered thread, for the preview frame."""
        served = self.served(request)
        path = request.query_params.get("p", "").strip("/")
        item = await self._item(served, path)
        kind = item_kind(item)
        if kind not in ("message", "html") or item.size > MAX_PREVIEW_BYTES:
            raise HTTPException(404, "no HTML preview for this item")
        raw = await self.locked(served, lambda: served.vfs.open(item).read())
        if kind == "message":
            mail = mail_preview(raw)
            body = mail.html if mail.html is not None else None
            if body is None:
                body = f"<pre>{escape(mail.text or '')}</pre>"
        else:
            body = sanitize_mail_html(raw.decode("utf-8", "replace"))
        page = f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{body}</body></html>'
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": PREVIEW_CSP + "; sandbox",
                "X-Frame-Options": "SAMEORIGIN",
            },
        )

    async def download(self, request: Request) -> Response:
        user = require(request, "restorer")
        served = self.served(request)
        path = request.query_params.get("p", "").strip("/")
        item = await self._item(served, path)
        if item.is_dir:
            raise HTTPException(400, "download a folder with Restore → as a download (zip)")
        await run_in_threadpool(
            served.audit.record,
            "download",
            user.name,
            client_address(request),
            snapshot=item.snapshot.id_hex,
            owner=item.snapshot.owner.identity,
            path=item.path,
            size=item.size,
        )
        name = download_name(item)
        media = MEDIA_TYPES.get(PurePosixPath(name).suffix.lower(), "application/octet-stream")

        def chunks() -> Iterator[bytes]:
            with served.lock:
                reader = served.vfs.open(item)
            while True:
                with served.lock:
                    block = reader.read(_READ_BLOCK)
                if not block:
                    return
                yield block

        return StreamingResponse(
            chunks(),
            media_type=media,
            headers={"Content-Disposition": disposition(name), "Content-Length": str(item.size)},
        )

    # -- search -----------------------------------------------------------

    async def search(self, request: Request) -> Response:
        served = self.served(request)
        params = request.query_params
        fields = {
            k: params.get(k, "").strip()[:200]
            for k in ("subject", "sender", "name", "owner", "since", "until")
        }
        results: list[dict[str, Any]] = []
        error = None
        if any(fields.values()):
            try:
                query = ItemQuery(
                    subjects=(fields["subject"],) if fields["subject"] else (),
                    senders=(fields["sender"],) if fields["sender"] else (),
                    includes=(fields["name"],) if fields["name"] else (),
                    since=parse_when(fields["since"]) if fields["since"] else None,
                    until=parse_when(fields["until"], end=True) if fields["until"] else None,
                )
            except ValueError as exc:
                query, error = None, str(exc)
            if query is not None:
                owner = fields["owner"]

                def find() -> list[dict[str, Any]]:
                    every = served.repo.list_snapshots()
                    pool = [s for s in every if not owner or owner_matches(s, [owner])]
                    layout = Layout.build(every)
                    versions = find_versions(served.repo, pool, query)
                    return [v.to_map(layout) for v in versions[:SEARCH_LIMIT]]

                results = await self.locked(served, find)
        return self.render(
            request, "search.html", fields=fields, results=results, error=error, limit=SEARCH_LIMIT
        )

    # -- restore ----------------------------------------------------------

    async def restore(self, request: Request) -> Response:
        """One restore job of the form's items: the checked ``sel`` entries of a
        folder (all in one snapshot), else the folder or item ``p`` itself."""
        user = require(request, "restorer")
        form = await checked_form(request)
        served = self.served(request)
        # Checked rows carry their path percent-encoded (names may hold any byte).
        chosen = [
            unquote(str(v), errors="surrogateescape").strip("/")
            for v in form.getlist("sel")
            if str(v).strip("/")
        ]
        if len(chosen) > MAX_SELECTED:
            raise HTTPException(400, f"select at most {MAX_SELECTED} items")
        if not chosen:
            chosen = [str(form.get("p") or "").strip("/")]
        items = [await self._item(served, path) for path in dict.fromkeys(chosen)]
        snapshot = items[0].snapshot
        if any(item.snapshot.id_hex != snapshot.id_hex for item in items):
            raise HTTPException(400, "the selected items are in different snapshots")
        target = str(form.get("target") or "original")
        if target == "user":
            upn = str(form.get("user") or "").strip()
            if not _UPN.fullmatch(upn):
                raise HTTPException(400, "give the user (UPN) to restore to")
            target = f"user:{upn}"
        elif target not in ("original", DOWNLOAD):
            raise HTTPException(400, "unknown restore target")
        policy = str(form.get("on_conflict") or "skip")
        if policy not in POLICIES:
            raise HTTPException(400, "unknown conflict policy")
        if form.get("dry_run") == "on" and target == DOWNLOAD:
            # As coffer restore --to-dir --dry-run: refused, not silently a real restore.
            raise HTTPException(400, "a dry run is for restores into Microsoft 365, not downloads")
        paths = tuple(dict.fromkeys(item.path for item in items))
        request_ = RestoreRequest(
            snapshot=snapshot.id_hex,
            paths=tuple(p for p in paths if p),
            target=target,
            on_conflict=policy,
            dry_run=form.get("dry_run") == "on",
        )
        await run_in_threadpool(
            served.audit.record,
            "restore",
            user.name,
            client_address(request),
            snapshot=snapshot.id_hex,
            owner=snapshot.owner.identity,
            path=paths[0] if len(paths) == 1 else "",
            paths=list(paths),
            target=target,
            on_conflict=policy,
            dry_run=request_.dry_run,
        )
        job = self.jobs.submit(served, user.name, request_)
        return RedirectResponse(f"/restore/job?id={job.id}", status_code=303)

    def _job(self, request: Request) -> Any:
        user = require(request, "restorer")
        job = self.jobs.get(request.query_params.get("id", ""))
        if job is None or (job.user != user.name and not user.may("admin")):
            raise HTTPException(404, "no such restore")
        return job

    async def job(self, request: Request) -> Response:
        job = self._job(request)
        return self.render(request, "job.html", job=job, status=job.to_map())

    async def job_status(self, request: Request) -> Response:
        return JSONResponse(self._job(request).to_map())

    async def job_zip(self, request: Request) -> Response:
        job = self._job(request)
        if job.zip_path is None or not job.zip_path.exists():
            raise HTTPException(404, "no download for this restore")
        user = signed_in(request)
        served = self.console.repo(job.repo)
        await run_in_threadpool(
            served.audit.record,
            "download",
            user.name,
            client_address(request),
            restore=job.id,
            snapshot=job.request.snapshot,
            paths=list(job.request.paths),
            size=job.zip_path.stat().st_size,
        )
        return FileResponse(
            job.zip_path,
            media_type="application/zip",
            headers={"Content-Disposition": disposition(f"restore-{job.id}.zip")},
        )


def growth_chart(
    points: list[GrowthPoint], width: int = 640, height: int = 200
) -> dict[str, Any] | None:
    """Points of an SVG polyline: the repository's size over time (cli/serve/growth.py)."""
    if not points:
        return None
    t0, t1 = points[0].time, points[-1].time
    top = max(p.bytes for p in points) or 1
    span = (t1 - t0) or 1.0
    pad = 10
    xy = " ".join(
        f"{pad + (p.time - t0) / span * (width - 2 * pad):.1f},"
        f"{height - pad - p.bytes / top * (height - 2 * pad):.1f}"
        for p in points
    )
    return {
        "width": width,
        "height": height,
        "points": xy,
        "top": top,
        "first": t0,
        "last": t1,
    }
