"""Calendars: every calendar; each event as Graph JSON plus an iCalendar file.

Layout (docs/layout.md): ``calendar/<calendar>/<start UTC> <subject> [<id>].json``
and ``.ics``; each file attachment of an event is a file of its own beside them,
``<same stem>.attachment.<name>`` (its Graph JSON, without the bytes, in its
attributes), read from ``/events/{id}/attachments`` only when the event changed
(an attachment change gives the event a new changeKey). Series masters carry
their recurrence (RRULE in the .ics); each exception of a series is an item of
its own (``"type": "exception"``, with RECURRENCE-ID). Times are requested in UTC;
the event's own zone (``originalStartTimeZone``) and its start in that zone are
recorded beside them (``timeZone``, ``localStart``), as restore needs them.

Graph v1.0 has delta only for the primary calendar's calendarView (a time
window). Coffer uses it as a change detector: a delta round with no entries
means nothing changed in the primary calendar (Graph also reports changes
outside the window, as ``@removed``; event-delta.md), and the calendar is kept
as it was without listing it. Otherwise, and for every other calendar, the
events are listed and compared by changeKey: only what changed is stored
again; a series' instances are read (to find its exceptions) only when the
series changed or the delta named one of its occurrences.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sources.m365.backup.context import Enumeration, ServiceContext, graph_json
from sources.m365.backup.failures import Failures
from sources.m365.graph.errors import ItemGone, ResyncRequired, Unreadable
from sources.m365.names import item_name, parse_time, safe_name, short_id, time_ns
from sources.m365.render.ical import render_ics
from sources.m365.timezones import own_zone_times

ROOT = "calendar"
HEADERS = {"Prefer": 'outlook.timezone="UTC", odata.maxpagesize=100, IdType="ImmutableId"'}
WINDOW_PAST = timedelta(days=365)
WINDOW_FUTURE = timedelta(days=730)
_UNIT_DAYS = {
    "daily": 1,
    "weekly": 7,
    "absoluteMonthly": 31,
    "relativeMonthly": 31,
    "absoluteYearly": 366,
    "relativeYearly": 366,
}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def series_window(master: dict[str, Any], now: datetime) -> tuple[datetime, datetime]:
    """The time range holding every instance of a series (bounded for endless ones)."""
    recurrence = master.get("recurrence") or {}
    rng = recurrence.get("range") or {}
    pattern = recurrence.get("pattern") or {}
    start = parse_time(f"{rng.get('startDate')}T00:00:00Z") if rng.get("startDate") else None
    if start is None:
        start = parse_time((master.get("start") or {}).get("dateTime")) or now
    start -= timedelta(days=1)
    kind = str(rng.get("type") or "noEnd")
    end: datetime | None = None
    if kind == "endDate" and rng.get("endDate"):
        end = parse_time(f"{rng['endDate']}T00:00:00Z")
        if end is not None:
            end += timedelta(days=2)
    elif kind == "numbered" and rng.get("numberOfOccurrences"):
        unit = _UNIT_DAYS.get(str(pattern.get("type")), 31)
        span = int(rng["numberOfOccurrences"]) * max(1, int(pattern.get("interval") or 1)) * unit
        end = start + timedelta(days=span + 8)
    if end is None:
        end = max(now + WINDOW_FUTURE, start + timedelta(days=2))
    return start, end


class CalendarBackup:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.uid = ctx.job.key
        self.state = ctx.state
        self.failures = Failures(ctx, ctx.state)
        self.now = datetime.now(UTC)

    def run(self) -> None:
        ctx = self.ctx
        calendars = list(
            ctx.client.list_all(f"/users/{self.uid}/calendars", ctx.res, headers=HEADERS)
        )
        names: dict[str, int] = {}
        for cal in calendars:
            key = str(cal.get("name") or "").lower()
            names[key] = names.get(key, 0) + 1
        wanted: set[str] = set()
        for cal in sorted(calendars, key=lambda c: str(c.get("id"))):
            cid = str(cal.get("id", ""))
            name = str(cal.get("name") or cid)
            if names[name.lower()] > 1:
                name = f"{name} [{short_id(cid)}]"
            path = f"{ROOT}/{safe_name(name)}"
            if ctx.selection.folder_excluded(f"Calendar/{cal.get('name')}"):
                continue
            wanted.add(path.rsplit("/", 1)[1])
            current = ctx.lookup(cid)
            if current is not None and current != path:
                ctx.move_tree(current, path)
            ctx.add_dir(
                path,
                item_id=cid,
                attrs={
                    "type": "calendar",
                    "id": cid,
                    "name": str(cal.get("name") or ""),
                    "graph": graph_json(cal),
                },
            )
            if cal.get("isDefaultCalendar"):
                self._primary(cid, path)
            else:
                self._list(cid, path, refresh=set())
        for name, (kind, _v) in ctx.children(ROOT).items():
            if kind == "d" and name not in wanted:
                ctx.remove(f"{ROOT}/{name}")
        self.failures.finish()

    # -- the primary calendar: delta as a change detector ----------------------------------

    def _primary(self, cid: str, path: str) -> None:
        ctx = self.ctx
        view = self.state.get("view") or {}
        link = view.get("delta") if view.get("calendar") == cid else None
        refresh: set[str] = set()
        changed = True
        if link:
            try:
                entries, new_link = self._delta(str(link), refresh)
                changed = entries > 0
            except ResyncRequired:
                ctx.report.resynced.append("calendar view")
                link = None
        if not link:
            start, end = self.now - WINDOW_PAST, self.now + WINDOW_FUTURE
            first = (
                f"/users/{self.uid}/calendarView/delta"
                f"?startDateTime={_iso(start)}&endDateTime={_iso(end)}"
            )
            _, new_link = self._delta(first, refresh)
        if changed:
            self._list(cid, path, refresh=refresh)
        else:
            files = sum(1 for kind, _v in ctx.children(path).values() if kind == "f")
            ctx.session.keep_subtree(path, items=files)
            ctx.report.add("items_unchanged", files)
        if new_link:
            self.state["view"] = {"calendar": cid, "delta": new_link}
            ctx.publish()

    def _delta(self, url: str, refresh: set[str]) -> tuple[int, str | None]:
        entries = 0
        link: str | None = None
        for page in self.ctx.client.pages(url, self.ctx.res, headers=HEADERS):
            for event in page.values:
                entries += 1
                master = event.get("seriesMasterId")
                if master:
                    refresh.add(str(master))
            link = page.delta_link or link
        return entries, link

    # -- listing a calendar ----------------------------------------------------------------

    def _list(self, cid: str, path: str, *, refresh: set[str]) -> None:
        ctx = self.ctx
        enumeration = Enumeration(ctx, path)
        url = f"/users/{self.uid}/calendars/{cid}/events"
        for event in ctx.client.list_all(url, ctx.res, headers=HEADERS):
            self._event(event, path, enumeration, refresh)
        enumeration.finish()

    def _store(
        self,
        event: dict[str, Any],
        path: str,
        enumeration: Enumeration,
        extra: dict[str, str],
        *,
        force: bool = False,
    ) -> tuple[str, bool]:
        """Store (or keep) one event; returns (its file stem, whether it changed)."""
        ctx = self.ctx
        eid = str(event.get("id", ""))
        stem, version = event_stem(event, eid), event_version(event)
        enumeration.saw(f"{stem}.json")
        enumeration.saw(f"{stem}.ics")
        json_path = f"{path}/{stem}.json"
        if not force and version:
            # The event, its .ics and its attachments are kept only all together; if
            # one is missing (a base older than item groups) the event is stored again.
            stored = ctx.entry(json_path)
            names = json.loads(stored.attrs.get("attachments", "[]")) if stored else []
            companions = [f"{path}/{stem}.ics", *(f"{path}/{name}" for name in names)]
            if ctx.unchanged_all((json_path, *companions), version):
                for name in names:
                    enumeration.saw(name)
                return stem, False
        mtime = time_ns(event.get("lastModifiedDateTime"))
        attrs = {**event_attrs(event, eid, version), **zone_attrs(event), **extra}
        # The event, its .ics and its attachments are one unit for checkpoints.
        with ctx.group():
            if event.get("hasAttachments"):
                others: list[dict[str, str]] = []
                names = self._attachments(eid, stem, path, enumeration, version, mtime, others)
                attrs["attachments"] = json.dumps(names, ensure_ascii=False)
                if others:
                    attrs["otherAttachments"] = json.dumps(others, ensure_ascii=False)
            add_event(ctx, event, f"{path}/{stem}", attrs, mtime)
        return stem, True

    def _attachments(
        self,
        eid: str,
        stem: str,
        path: str,
        enumeration: Enumeration,
        version: str,
        mtime: int,
        others: list[dict[str, str]],
    ) -> list[str]:
        """Store the event's file attachments beside it; returns their file names.

        Only file attachments have bytes; other kinds (item, reference) are left out with
        a note, their name and kind appended to ``others`` (restore reports them).
        Each file is versioned by the event's changeKey, so an unchanged event keeps
        its attachments without reading them. Raises what the listing raises,
        except ItemGone (the event vanished: nothing to store)."""
        ctx = self.ctx
        url = f"/users/{self.uid}/events/{eid}/attachments"
        names: list[str] = []
        try:
            attachments = list(ctx.client.list_all(url, ctx.res, headers=HEADERS))
            self.failures.resolved(f"{eid}/attachments")
        except ItemGone:
            return names
        except Unreadable as exc:  # ErrorCannotOpenFileAttachment: the event is kept
            self.failures.record(f"{eid}/attachments", f"{path}/{stem}.attachments", exc)
            return names
        for n, att in enumerate(attachments):
            raw = att.get("contentBytes")
            if att.get("@odata.type") != "#microsoft.graph.fileAttachment" or raw is None:
                ctx.note("event attachments other than files are recorded as metadata only")
                kind = str(att.get("@odata.type") or "").rsplit(".", 1)[-1] or "attachment"
                others.append({"name": str(att.get("name") or ""), "type": kind})
                continue
            label = str(att.get("name") or att.get("id") or n)
            name = f"{stem}.attachment.{safe_name(label)}"
            if name in names:
                name = f"{stem}.attachment.{n} {safe_name(label)}"
            names.append(name)
            enumeration.saw(name)
            ctx.add_file(
                f"{path}/{name}",
                base64.b64decode(str(raw)),
                version=version,
                attrs={
                    "type": "eventAttachment",
                    "of": f"{stem}.json",
                    "id": str(att.get("id") or ""),
                    "name": label,
                    "graph": graph_json(att, drop=("contentBytes",)),
                },
                mtime_ns=mtime,
                count=False,
            )
        return names

    def _event(
        self,
        event: dict[str, Any],
        path: str,
        enumeration: Enumeration,
        refresh: set[str],
    ) -> None:
        ctx = self.ctx
        eid = str(event.get("id", ""))
        if not eid:
            return
        if event.get("type") != "seriesMaster":
            self._store(event, path, enumeration, {})
            return
        start = (event.get("start") or {}).get("dateTime")
        stem = item_name(start, event.get("subject"), eid, "")
        stored = ctx.entry(f"{path}/{stem}.json")
        known: dict[str, str] = {}
        if stored is not None:
            try:
                known = dict(json.loads(stored.attrs.get("exceptions", "{}")))
            except ValueError:
                known = {}
        version = str(event.get("changeKey") or "")
        if (
            stored is not None
            and stored.version == version
            and eid not in refresh
            and all(_stored_as(ctx, path, name, v) for name, v in known.items())
        ):
            # The series did not change: neither did its exceptions or occurrences.
            extra = {"exceptions": json.dumps(known, sort_keys=True)}
            if stored.attrs.get("occurrences"):
                extra["occurrences"] = stored.attrs["occurrences"]
            self._store(event, path, enumeration, extra)
            for name, exc_version in known.items():
                enumeration.saw(f"{name}.json")
                enumeration.saw(f"{name}.ics")
                # True: _stored_as checked both above (this thread alone writes here).
                ctx.unchanged_all((f"{path}/{name}.json", f"{path}/{name}.ics"), exc_version)
            return
        exceptions, occurrences = self._exceptions(event, path, enumeration, known)
        # A changed exception list changes the master's record even if its changeKey did not.
        self._store(
            event,
            path,
            enumeration,
            {"exceptions": json.dumps(exceptions, sort_keys=True), "occurrences": occurrences},
            force=exceptions != known
            or (stored is not None and stored.attrs.get("occurrences") != occurrences),
        )

    def _exceptions(
        self,
        master: dict[str, Any],
        path: str,
        enumeration: Enumeration,
        known: dict[str, str],
    ) -> tuple[dict[str, str], str]:
        """Find and store the exceptions of a series; returns {file stem: changeKey} and
        the ``occurrences`` attribute: the window searched and the original start day
        of every instance in it (what a restore needs to cancel the occurrences that
        were cancelled, which Graph v1.0 does not list)."""
        ctx = self.ctx
        mid = str(master["id"])
        start, end = series_window(master, self.now)
        url = f"/users/{self.uid}/events/{mid}/instances"
        params = {
            "startDateTime": _iso(start),
            "endDateTime": _iso(end),
            "$select": "id,type,seriesMasterId,changeKey,start,subject,originalStart",
        }
        found: dict[str, str] = {}
        days: set[str] = set()
        for instance in ctx.client.list_all(url, ctx.res, params=params, headers=HEADERS):
            original = parse_time(instance.get("originalStart") or None)
            if original is not None:
                days.add(original.strftime("%Y-%m-%d"))
            if instance.get("type") != "exception":
                continue
            xid = str(instance.get("id", ""))
            when = (instance.get("start") or {}).get("dateTime")
            stem = item_name(when, instance.get("subject"), xid, "")
            version = str(instance.get("changeKey") or "")
            if known.get(stem) == version and ctx.unchanged_all(
                (f"{path}/{stem}.json", f"{path}/{stem}.ics"), version
            ):
                enumeration.saw(f"{stem}.json")
                enumeration.saw(f"{stem}.ics")
                found[stem] = version
                continue
            try:
                full = ctx.client.get_json(
                    f"/users/{self.uid}/events/{xid}", ctx.res, headers=HEADERS
                )
            except ItemGone:
                continue  # cancelled meanwhile
            stem, _ = self._store(full, path, enumeration, {"seriesMasterId": mid})
            found[stem] = str(full.get("changeKey") or version)
        occurrences = json.dumps(
            {"window": [_iso(start), _iso(end)], "days": sorted(days)}, separators=(",", ":")
        )
        return found, occurrences


def event_stem(event: dict[str, Any], eid: str) -> str:
    """The file stem of an event: its start, subject and ID (docs/layout.md)."""
    return item_name((event.get("start") or {}).get("dateTime"), event.get("subject"), eid, "")


def event_version(event: dict[str, Any]) -> str:
    """What tells one version of an event from another ("" when Graph gave none)."""
    return str(event.get("changeKey") or event.get("@odata.etag") or "")


def event_attrs(event: dict[str, Any], eid: str, version: str) -> dict[str, str]:
    """The attributes every stored event carries (a user's and a group's alike)."""
    return {
        "type": "event",
        "eventType": str(event.get("type") or "singleInstance"),
        "id": eid,
        "name": str(event.get("subject") or ""),
        "changeKey": version,
    }


def add_event(
    ctx: ServiceContext, event: dict[str, Any], stem_path: str, attrs: dict[str, str], mtime: int
) -> None:
    """Store an event's Graph JSON and its ``.ics`` rendering (``stem_path``: the
    path without the suffix). Call it inside ``ctx.group()`` with its companions."""
    eid, version = attrs["id"], attrs["changeKey"]
    body = json.dumps(event, indent=1, sort_keys=True, ensure_ascii=False).encode()
    ctx.add_file(
        f"{stem_path}.json", body, version=version, item_id=eid, attrs=attrs, mtime_ns=mtime
    )
    ctx.add_file(
        f"{stem_path}.ics",
        render_ics(event),
        version=version,
        attrs={"type": "rendering", "of": f"{stem_path.rpartition('/')[2]}.json"},
        mtime_ns=mtime,
        count=False,
    )


def zone_attrs(event: dict[str, Any]) -> dict[str, str]:
    """``timeZone`` (the event's own zone, as Graph names it) and ``localStart`` (its
    start there), when Graph gives the zone and Coffer can read it."""
    local = own_zone_times(event).get("start")
    if local is None:
        return {}
    return {"timeZone": str(local["timeZone"]), "localStart": str(local["dateTime"])[:19]}


def _stored_as(ctx: ServiceContext, path: str, stem: str, version: str) -> bool:
    """Whether the exception ``stem`` and its .ics are stored with ``version``."""
    return all(
        (entry := ctx.entry(f"{path}/{stem}.{ext}")) is not None and entry.version == version
        for ext in ("json", "ics")
    )


def backup_calendar(ctx: ServiceContext) -> None:
    CalendarBackup(ctx).run()
