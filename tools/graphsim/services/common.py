"""Helpers shared by the Graph services: public rendering, lookups, delta rounds.

`public(data)` drops private keys (leading "_"). `delta_round()` implements Graph's delta
protocol once for every resource that keys changes by the store's `scope`:

- a round starts from a watermark (0 for the initial round) and covers the changes up to
  the store's sequence number when the round started, paged with `$skiptoken` (or
  `token=` for drives and lists) and ending with a `deltaLink` carrying the new watermark;
- the initial round never returns tombstones; later rounds do (as `@removed` entries or
  a `deleted` facet, rendered by the caller);
- every token carries the service's epoch: after `POST /_sim/delta/expire` old tokens get
  410 Gone with the service's documented code (delta-query-overview.md "Synchronization
  reset"; driveitem-delta.md and listitem-delta.md for resyncChangesApplyDifferences and
  the Location header).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..httpcore import GraphError, Request, Response
from ..odata import apply_select, collection, link, page_size, parse_select
from ..statetokens import TokenError
from ..store import Item
from ..tenant import Tenant


def public(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not k.startswith("_")}


def etag(change_key: str) -> str:
    return f'W/"{change_key}"'


def require_item(
    t: Tenant, key: str, kinds: Sequence[str], owner: str | None = None, what: str = "item"
) -> Item:
    item = t.store.get(key)
    if item is None or item.kind not in kinds or (owner is not None and item.owner != owner):
        raise GraphError(
            404,
            "ErrorItemNotFound"
            if what in ("message", "folder", "contact", "event")
            else "itemNotFound",
            "The specified object was not found in the store."
            if what != "item"
            else "Item not found",
        )
    return item


@dataclass
class DeltaSpec:
    """How one resource does delta."""

    service: str  # epoch name in Tenant.DELTA_SERVICES
    scope: str
    kinds: Sequence[str]
    path: str  # canonical path of the delta function (for links)
    token_param: str = "$skiptoken"  # "$skiptoken"/"$deltatoken" (Outlook, Teams) or "token"
    default_page: int = 10
    max_page: int = 1000
    gone_code: str = "syncStateNotFound"
    gone_message: str = "The sync state generation is not found. The delta token is expired."
    gone_inner: str | None = None
    gone_location: bool = False
    supports_latest: bool = False


def read_delta_state(t: Tenant, req: Request, spec: DeltaSpec) -> dict[str, Any] | None:
    """The state of the round, from `$skiptoken`/`$deltatoken`/`token`; raises 410/400."""
    raw = None
    names = ("$skiptoken", "$deltatoken") if spec.token_param != "token" else ("token",)
    for name in names:
        value = req.query.get(name) or req.params.get(f"q:{name.lstrip('$')}")
        if value:
            raw = value
            break
    if raw is None or (raw == "latest" and spec.supports_latest):
        return None
    try:
        state = t.tokens.decode(raw)
    except TokenError:
        raise GraphError(400, "invalidRequest", "The delta or skip token is invalid.") from None
    if state.get("svc") != spec.service or state.get("scope") != spec.scope:
        raise GraphError(400, "invalidRequest", "The token does not belong to this collection.")
    if int(state.get("ep", -1)) != t.epoch(spec.service):
        headers = {}
        if spec.gone_location:
            headers["Location"] = link(req, spec.path)
        raise GraphError(
            410, spec.gone_code, spec.gone_message, headers=headers, inner_code=spec.gone_inner
        )
    return state


def delta_round(
    t: Tenant,
    req: Request,
    spec: DeltaSpec,
    render: Callable[[Item, bool], dict[str, Any] | None],
    *,
    extra_state: dict[str, Any] | None = None,
    accept: Callable[[Item, dict[str, Any]], bool] | None = None,
) -> Response:
    """One page of a delta round. `render(item, initial)` returns JSON or None to skip.

    `accept(item, state)` can filter rows (e.g. changeType); `extra_state` is stored in
    the tokens on the first request (query options of the initial request).
    """
    state = read_delta_state(t, req, spec)
    latest = (
        req.query.get("token") == "latest" or req.params.get("q:token") == "latest"
    ) and spec.supports_latest
    if state is None:
        state = {
            "svc": spec.service,
            "scope": spec.scope,
            "ep": t.epoch(spec.service),
            "since": 0,
            "upto": t.store.current_seq,
            "after": 0,
            "top": page_size(req, spec.default_page, spec.max_page),
            "select": parse_select(req),
            **(extra_state or {}),
        }
        if latest:
            state["since"] = t.store.current_seq
    elif "upto" not in state:
        # A deltaLink: a new round from its watermark.
        state = {**state, "upto": t.store.current_seq, "after": 0}
    if "$top" in req.query or "maxpagesize" in req.header("Prefer"):
        state["top"] = page_size(req, spec.default_page, spec.max_page)
    size = int(state["top"])
    req.delta_select = state.get("select")
    initial = int(state["since"]) == 0
    out: list[dict[str, Any]] = []
    cursor = int(state["after"])
    more = False
    if not latest:
        while True:
            rows = t.store.changes(
                spec.scope,
                spec.kinds,
                since=int(state["since"]),
                upto=int(state["upto"]),
                after_seq=cursor,
                limit=200,
                include_deleted=not initial,
            )
            for row in rows:
                if accept is not None and not accept(row, state):
                    cursor = row.seq
                    continue
                obj = render(row, initial)
                if obj is None:
                    cursor = row.seq
                    continue
                if len(out) >= size:
                    more = True
                    break
                out.append(apply_select(obj, state.get("select")) if "@removed" not in obj else obj)
                cursor = row.seq
            if more or len(rows) < 200:
                break
    token_name = "token" if spec.token_param == "token" else None
    if more:
        nxt = {**state, "after": cursor}
        encoded = t.tokens.encode(nxt)
        next_link = link(req, spec.path, **{token_name or "$skiptoken": encoded})
        return collection(req, out, next_link=next_link)
    done = {k: v for k, v in state.items() if k not in ("upto", "after")}
    done["since"] = int(state["upto"])
    encoded = t.tokens.encode(done)
    delta_link = link(req, spec.path, **{token_name or "$deltatoken": encoded})
    return collection(req, out, delta_link=delta_link)
