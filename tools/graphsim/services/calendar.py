"""Calendar endpoints: calendars, events, instances, calendarView and its delta.

Sources: user-list-calendars.md, user-post-calendars.md, calendar-get.md,
user-list-events.md (singles and series masters only), event-get.md,
event-list-instances.md, user-list-calendarview.md, calendar-list-calendarview.md,
user-post-events.md, calendar-post-events.md, event-update.md, event-delete.md,
event-cancel.md, event-delta.md and concepts/delta-query-events.md, event-list-attachments.md,
event-post-attachments.md, attachment-get.md:

- calendarView delta covers the *primary* calendar only, within startDateTime and
  endDateTime (kept in the tokens), returns occurrences and exceptions in the window, and
  refuses `$select`, `$expand`, `$filter`, `$orderby`, `$search` (400 ErrorInvalidUrlQuery);
- `@removed` (reason "deleted") is given for deleted events in the window *and* for events
  outside the window that were added, changed or deleted since the last round: clients
  must filter them (event-delta.md, "Response").
- `.../events/{id}/attachments` lists an event's attachments (file attachments with their
  `contentBytes`), `.../attachments/{id}` gets one and `/$value` its raw bytes; a POST adds
  a file attachment (up to 3 MB). An occurrence has its series master's attachments.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from ..httpcore import GraphError, Request, Response, bad_request, empty_response, json_response
from ..odata import apply_select, collection, link, page_size, paged_list, parse_select
from ..router import Router
from ..statetokens import TokenError
from ..store import Item, NewItem
from ..tenant import Tenant
from . import calmodel as cm
from . import recurrence as rc
from . import uploads
from .common import public
from .mailmodel import wants_immutable_ids
from .outlookids import default_of, in_format


def register(router: Router, t: Tenant) -> None:
    def add(method: str, pattern: str, handler: Any) -> None:
        router.add(method, pattern, handler, service="outlook", owner_param="user")

    def tz(req: Request) -> str | None:
        return cm.prefer_tz(req.header("Prefer"))

    def ids(req: Request, value: dict[str, Any]) -> dict[str, Any]:
        """``value`` with its event IDs in the format the request asks for."""
        return in_format(t, value, wants_immutable_ids(req.header("Prefer")))

    # -- calendars ----------------------------------------------------------------------

    def list_calendars(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        return paged_list(
            req,
            t.tokens,
            f"/users/{user.key}/calendars",
            lambda after, limit: t.store.by_owner(
                user.key, ["calendar"], after_pk=after, limit=limit
            ),
            lambda c: public(c.data),
            default=10,
            maximum=1000,
            context=f"users('{user.key}')/calendars",
            filterable=["name"],
        )

    def create_calendar(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        name = str(req.json().get("name", "")).strip()
        if not name:
            raise bad_request("The calendar name is required.", "ErrorInvalidRequest")
        if any(
            str(c.data.get("name", "")).lower() == name.lower()
            for c in t.store.by_owner(user.key, ["calendar"])
        ):
            raise GraphError(
                409, "ErrorFolderExists", "A calendar with the specified name already exists."
            )
        with t.store.transaction() as tx:
            data = {
                "id": Tenant.new_outlook_id("AAMkACal"),
                "name": name,
                "color": "auto",
                "hexColor": "",
                "isDefaultCalendar": False,
                "changeKey": Tenant.change_key(),
                "canShare": True,
                "canViewPrivateItems": True,
                "canEdit": True,
                "owner": {"name": user.data.get("displayName"), "address": user.data.get("mail")},
            }
            cal = tx.insert(
                NewItem(
                    "calendar", user.key, cm.calendar_scope(user.key), user.key, data, name=name
                )
            )
        return json_response(public(cal.data), 201)

    def get_calendar(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        cal = cm.resolve_calendar(t, user, req.params.get("calendar"))
        return json_response(apply_select(public(cal.data), parse_select(req)))

    # -- events -----------------------------------------------------------------------

    def _event(req: Request, user: Item) -> tuple[Item, dt.date | None]:
        """The event row, or (master, original date) for a computed occurrence id."""
        ref = default_of(req.params["event"])
        item = t.store.get(ref)
        if item is not None and item.kind == "event" and item.owner == user.key:
            return item, None
        occ = rc.parse_occurrence_id(ref)
        if occ is not None:
            master = t.store.get(occ[0])
            if (
                master is not None
                and master.owner == user.key
                and occ[1].isoformat() not in master.data.get("_cancelled", [])
            ):
                return master, occ[1]
        raise GraphError(
            404, "ErrorItemNotFound", "The specified object was not found in the store."
        )

    def list_events(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        zone = tz(req)
        # /users/{id}/events lists the primary calendar (user-list-events.md).
        cal = cm.resolve_calendar(t, user, req.params.get("calendar"))

        def fetch(after: int, limit: int) -> list[Item]:
            return t.store.children(cal.key, ["event"], after_pk=after, limit=limit)

        def render(item: Item) -> dict[str, Any] | None:
            if item.data.get("type") not in ("singleInstance", "seriesMaster"):
                return None
            return ids(req, cm.render_event(item, zone))

        return paged_list(
            req,
            t.tokens,
            req.raw_path[len("/v1.0") :],
            fetch,
            render,
            default=10,
            maximum=1000,
            context=f"users('{user.key}')/events",
            filterable=[
                "subject",
                "type",
                "start/dateTime",
                "end/dateTime",
                "isAllDay",
                "isCancelled",
            ],
        )

    def get_event(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item, day = _event(req, user)
        if day is None:
            out = ids(req, cm.render_event(item, tz(req)))
            return json_response(apply_select(out, parse_select(req)))
        found = [
            o
            for o in rc.occurrences(
                item.data,
                cm._day_start(day) - dt.timedelta(days=1),
                cm._day_start(day) + dt.timedelta(days=2),
            )
            if o[0] == day
        ]
        if not found:
            raise GraphError(404, "ErrorItemNotFound", "The occurrence could not be found.")
        _, s, e = found[0]
        out = ids(req, cm.render_occurrence(item, day, s, e, tz(req)))
        return json_response(apply_select(out, parse_select(req)))

    def create_event(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        cal = cm.resolve_calendar(t, user, req.params.get("calendar"))
        payload = req.json()
        if not isinstance(payload, dict):
            raise bad_request("The request body must be a JSON object.")
        with t.store.transaction() as tx:
            item = cm.create_event(t, tx, user, cal, payload)
        return json_response(ids(req, cm.render_event(item, tz(req))), 201)

    def patch_event(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item, day = _event(req, user)
        patch = req.json()
        with t.store.transaction() as tx:
            if day is not None:
                item = cm.occurrence_as_exception(t, tx, item, day)
            cm.update_event(t, tx, user, item, patch)
        return json_response(ids(req, cm.render_event(item, tz(req))))

    def delete_event(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item, day = _event(req, user)
        with t.store.transaction() as tx:
            if day is not None:
                cm.cancel_occurrence(t, tx, user, item, day)
            elif item.data.get("type") == "exception":
                master = t.store.get(str(item.data.get("seriesMasterId")))
                if master is not None:
                    cm.cancel_occurrence(
                        t, tx, user, master, dt.date.fromisoformat(str(item.data["_originalDate"]))
                    )
                else:
                    tx.tombstone(item)
            else:
                cm.delete_event(t, tx, user, item)
        return empty_response()

    def cancel_event(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item, day = _event(req, user)
        if not item.data.get("isOrganizer"):
            raise GraphError(400, "ErrorAccessDenied", "Only the organizer can cancel a meeting.")
        with t.store.transaction() as tx:
            if day is not None:
                cm.cancel_occurrence(t, tx, user, item, day)
            else:
                cm.delete_event(t, tx, user, item)
        return empty_response(202)

    def list_instances(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item, day = _event(req, user)
        if day is not None or item.data.get("type") != "seriesMaster":
            raise GraphError(
                400, "ErrorInvalidRequest", "Instances are only available for a series master."
            )
        start, end = cm.window(req.query)
        values = [ids(req, v) for v in cm.instances(t, item, start, end, tz(req))]
        values.sort(key=lambda e: e["start"]["dateTime"])
        return _page_static(req, values, f"/users/{user.key}/events/{item.key}/instances")

    def _page_static(req: Request, values: list[dict[str, Any]], path: str) -> Response:
        """Offset paging over a computed list ($skiptoken keeps window and offset)."""
        state = None
        if "$skiptoken" in req.query:
            try:
                state = t.tokens.decode(req.query["$skiptoken"])
            except TokenError:
                raise bad_request("The $skiptoken is invalid.") from None
        size = page_size(req, 10, 1000, state)
        offset = int(state["offset"]) if state else 0
        select = parse_select(req, state)
        page = [apply_select(v, select) for v in values[offset : offset + size]]
        nxt = None
        if offset + size < len(values):
            token = t.tokens.encode({"offset": offset + size, "top": size, "select": select})
            params = {
                "startDateTime": req.query.get("startDateTime", ""),
                "endDateTime": req.query.get("endDateTime", ""),
                "$skiptoken": token,
            }
            nxt = link(req, path, **params)
        return collection(req, page, next_link=nxt)

    def calendar_view(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        cal = cm.resolve_calendar(t, user, req.params.get("calendar"))
        start, end = cm.window(req.query)
        zone = tz(req)
        values: list[dict[str, Any]] = []
        for item in t.store.children(cal.key, ["event"]):
            values.extend(ids(req, v) for v in cm.view_entries(t, item, start, end, zone))
        values.sort(key=lambda e: (e["start"]["dateTime"], e["id"]))
        return _page_static(req, values, req.raw_path[len("/v1.0") :])

    def calendar_view_delta(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        cal = cm.primary_calendar(t, user)
        path = f"/users/{user.key}/calendarView/delta"
        for option in ("$select", "$expand", "$filter", "$orderby", "$search"):
            if option in req.query:
                raise GraphError(
                    400,
                    "ErrorInvalidUrlQuery",
                    "The following parameters are not supported with change tracking over the"
                    " 'Events' resource: '$orderby, $filter, $select, $expand, $search'.",
                )
        raw = req.query.get("$skiptoken") or req.query.get("$deltatoken")
        if raw:
            try:
                state = t.tokens.decode(raw)
            except TokenError:
                raise GraphError(
                    400, "invalidRequest", "The delta or skip token is invalid."
                ) from None
            if state.get("svc") != "calendar" or state.get("scope") != cal.key:
                raise GraphError(
                    400, "invalidRequest", "The token does not belong to this calendar view."
                )
            if int(state.get("ep", -1)) != t.epoch("calendar"):
                raise GraphError(
                    410,
                    "syncStateNotFound",
                    "The sync state generation is not found. The delta token is expired.",
                )
            if "upto" not in state:
                state = {**state, "upto": t.store.current_seq, "after": 0, "sub": 0}
        else:
            start, end = cm.window(req.query)
            state = {
                "svc": "calendar",
                "scope": cal.key,
                "ep": t.epoch("calendar"),
                "start": start.isoformat(),
                "end": end.isoformat(),
                "since": 0,
                "upto": t.store.current_seq,
                "after": 0,
                "sub": 0,
                "top": page_size(req, 10, 1000),
            }
        if "maxpagesize" in req.header("Prefer"):
            state["top"] = page_size(req, 10, 1000)
        start = dt.datetime.fromisoformat(state["start"])
        end = dt.datetime.fromisoformat(state["end"])
        size = int(state["top"])
        initial = int(state["since"]) == 0
        zone = tz(req)
        out: list[dict[str, Any]] = []
        # Resume at entry `sub` of the row with seq `after` (0: from the start).
        resume_seq, resume_sub = int(state["after"]), int(state["sub"])
        fetch_after = max(0, resume_seq - 1)
        cursor, sub = resume_seq, resume_sub
        more = False
        while not more:
            rows = t.store.changes(
                cal.key,
                ["event"],
                since=int(state["since"]),
                upto=int(state["upto"]),
                after_seq=fetch_after,
                limit=100,
                include_deleted=not initial,
            )
            for row in rows:
                entries = [ids(req, e) for e in _delta_entries(row, start, end, zone, initial)]
                skip = resume_sub if row.seq == resume_seq else 0
                for i in range(skip, len(entries)):
                    if len(out) >= size:
                        more = True
                        cursor, sub = row.seq, i
                        break
                    out.append(entries[i])
                if more:
                    break
                fetch_after = row.seq
            if len(rows) < 100:
                break
            if not more and not rows:
                break
        if more:
            token = t.tokens.encode({**state, "after": cursor, "sub": sub})
            return collection(req, out, next_link=link(req, path, **{"$skiptoken": token}))
        done = {k: v for k, v in state.items() if k not in ("upto", "after", "sub")}
        done["since"] = int(state["upto"])
        return collection(
            req, out, delta_link=link(req, path, **{"$deltatoken": t.tokens.encode(done)})
        )

    def _delta_entries(
        row: Item, start: dt.datetime, end: dt.datetime, zone: str | None, initial: bool
    ) -> list[dict[str, Any]]:
        removed = {"@odata.type": "#microsoft.graph.event", "@removed": {"reason": "deleted"}}
        kind = row.data.get("type")
        if row.deleted:
            if kind == "seriesMaster":
                ids = [
                    rc.occurrence_id(row.key, day)
                    for day, _, _ in rc.occurrences(row.data, start, end)
                ]
                return [{**removed, "id": i} for i in [row.key, *ids]]
            return [{**removed, "id": row.key}]
        if kind == "seriesMaster":
            return [
                {"@odata.type": "#microsoft.graph.event", **e}
                for e in cm.instances(t, row, start, end, zone)
            ]
        entries = [
            {"@odata.type": "#microsoft.graph.event", **e}
            for e in cm.view_entries(t, row, start, end, zone)
        ]
        if kind == "exception" and initial:
            return []  # the initial round shows exceptions through their series master
        if kind == "exception" and cm._overlaps(row.data, start, end):
            entries = [{"@odata.type": "#microsoft.graph.event", **cm.render_event(row, zone)}]
        if not entries and not initial:
            # Changed outside the window: reported as removed (event-delta.md).
            return [{**removed, "id": row.key}]
        return entries

    # -- attachments (event-list-attachments.md, attachment-get.md) ----------------------

    def _attachment_json(att: Item) -> dict[str, Any]:
        out = dict(att.data)
        if out.get("@odata.type") == "#microsoft.graph.fileAttachment":
            out["contentBytes"] = base64.b64encode(t.content.open(att.content).read()).decode()
        return out

    def _event_attachment(req: Request) -> Item:
        user = t.require_mailbox(req.params["user"])
        item, _day = _event(req, user)
        att = t.store.get(req.params["attachment"])
        if att is None or att.kind != "eventAttachment" or att.parent != item.key:
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return att

    def list_event_attachments(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item, _day = _event(req, user)
        return paged_list(
            req,
            t.tokens,
            f"/users/{user.key}/events/{item.key}/attachments",
            lambda after, limit: t.store.children(
                item.key, ["eventAttachment"], after_pk=after, limit=limit
            ),
            _attachment_json,
            default=200,
            maximum=1000,
            context=f"users('{user.key}')/events('{item.key}')/attachments",
        )

    def get_event_attachment(req: Request) -> Response:
        att = _event_attachment(req)
        return json_response(apply_select(_attachment_json(att), parse_select(req)))

    def event_attachment_value(req: Request) -> Response:
        att = _event_attachment(req)
        src = t.content.open(att.content)
        ctype = str(att.data.get("contentType") or "application/octet-stream")
        return Response(200, [("Content-Type", ctype)], src.iter_range(), src.size)

    def add_event_attachment(req: Request) -> Response:
        user = t.require_mailbox(req.params["user"])
        item, day = _event(req, user)
        if day is not None:
            raise GraphError(400, "ErrorInvalidRequest", "Attach files to the series master.")
        with t.store.transaction() as tx:
            att = cm.add_event_attachment(t, tx, item, req.json() or {})
        return json_response(dict(att.data), 201)

    def event_attachment_upload_session(req: Request) -> Response:
        """attachment-createuploadsession.md for an event: 3 MB to 150 MB."""
        user = t.require_mailbox(req.params["user"])
        item, day = _event(req, user)
        if day is not None:
            raise GraphError(400, "ErrorInvalidRequest", "Attach files to the series master.")
        body = req.json() or {}
        spec = body.get("AttachmentItem") or body.get("attachmentItem") or {}
        if str(spec.get("attachmentType", "file")).lower() != "file":
            raise GraphError(400, "ErrorInvalidRequest", "Only file attachments can be uploaded.")
        size = int(spec.get("size") or 0)
        if size <= 0 or size > uploads.MAX_ATTACHMENT:
            raise GraphError(
                400, "ErrorInvalidRequest", "The attachment size must be between 1 byte and 150 MB."
            )
        props = {
            "name": spec.get("name") or "attachment",
            "contentType": spec.get("contentType") or "application/octet-stream",
            "isInline": bool(spec.get("isInline", False)),
            "contentId": spec.get("contentId"),
        }
        sess = uploads.new_session(
            t, "attachment", user.key, {"event": item.key, "props": props}, size
        )
        return json_response(
            {
                "@odata.context": f"{req.base_url}/v1.0/$metadata#microsoft.graph.uploadSession",
                "uploadUrl": uploads.upload_url(req, sess),
                "expirationDateTime": sess.expiration(),
                "nextExpectedRanges": ["0-"],
            },
            201,
        )

    # -- routes ---------------------------------------------------------------------------

    add("GET", "/users/{user}/calendars", list_calendars)
    add("POST", "/users/{user}/calendars", create_calendar)
    add("GET", "/users/{user}/calendar", get_calendar)
    add("GET", "/users/{user}/calendars/{calendar}", get_calendar)
    add("GET", "/users/{user}/calendarView/delta", calendar_view_delta)
    add("GET", "/users/{user}/calendarView", calendar_view)
    add("GET", "/users/{user}/calendar/calendarView", calendar_view)
    add("GET", "/users/{user}/calendars/{calendar}/calendarView", calendar_view)
    for prefix in ("/users/{user}", "/users/{user}/calendar", "/users/{user}/calendars/{calendar}"):
        add("GET", f"{prefix}/events", list_events)
        add("POST", f"{prefix}/events", create_event)
        add("GET", f"{prefix}/events/{{event}}", get_event)
        add("PATCH", f"{prefix}/events/{{event}}", patch_event)
        add("DELETE", f"{prefix}/events/{{event}}", delete_event)
        add("GET", f"{prefix}/events/{{event}}/instances", list_instances)
        add("POST", f"{prefix}/events/{{event}}/cancel", cancel_event)
        add("GET", f"{prefix}/events/{{event}}/attachments", list_event_attachments)
        add("POST", f"{prefix}/events/{{event}}/attachments", add_event_attachment)
        add(
            "POST",
            f"{prefix}/events/{{event}}/attachments/createUploadSession",
            event_attachment_upload_session,
        )
        add("GET", f"{prefix}/events/{{event}}/attachments/{{attachment}}", get_event_attachment)
        add(
            "GET",
            f"{prefix}/events/{{event}}/attachments/{{attachment}}/$value",
            event_attachment_value,
        )
