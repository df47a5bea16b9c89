"""OData query options and collection responses (concepts/query-parameters.md, paging.md).

- Page size: `$top` or `Prefer: odata.maxpagesize=N` (the smaller wins), bounded per
  collection; the applied preference is echoed in `Preference-Applied`.
- `$select`: only the listed properties (plus `id`, which Graph always returns).
- `$filter`: a small subset of the grammar: `prop op value` joined by `and`, with
  eq/ne/gt/ge/lt/le on top-level properties, `startswith(prop,'x')`; anything else is a
  400, never silently ignored.
- `@odata.nextLink` is an absolute URL that carries an opaque `$skiptoken`; the token
  encodes the original options, so clients follow it verbatim.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote

from .httpcore import GraphError, Request, Response, bad_request, json_response, parse_iso
from .statetokens import StateTokens, TokenError


def page_size(req: Request, default: int, maximum: int, state: dict[str, Any] | None = None) -> int:
    """The page size for this request (state from a skiptoken wins)."""
    if state and "top" in state:
        return int(state["top"])
    size = default
    q = req.query
    if "$top" in q:
        try:
            top = int(q["$top"])
        except ValueError:
            raise bad_request(f"Invalid value '{q['$top']}' for query option $top.") from None
        if top < 1:
            raise bad_request("The value for query option $top must be positive.")
        size = top
    m = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", req.header("Prefer"))
    if m:
        size = min(size, int(m.group(1))) if "$top" in q else int(m.group(1))
    return max(1, min(size, maximum))


def prefer_applied(req: Request) -> dict[str, str]:
    m = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", req.header("Prefer"))
    return {"Preference-Applied": f"odata.maxpagesize={m.group(1)}"} if m else {}


def parse_select(req: Request, state: dict[str, Any] | None = None) -> list[str] | None:
    if state and "select" in state:
        return list(state["select"]) if state["select"] is not None else None
    raw = req.query.get("$select")
    if not raw:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


def apply_select(obj: dict[str, Any], select: Sequence[str] | None) -> dict[str, Any]:
    if not select:
        return obj
    wanted = {s.lower() for s in select}
    out = {}
    for key, value in obj.items():
        if key == "id" or key.startswith("@") or key.lower() in wanted:
            out[key] = value
    return out


# -- $filter ---------------------------------------------------------------------------

_CMP = re.compile(
    r"^\s*(?P<prop>[A-Za-z0-9_/]+)\s+(?P<op>eq|ne|gt|ge|lt|le)\s+(?P<value>.+?)\s*$", re.I
)
_STARTS = re.compile(
    r"^\s*startswith\(\s*(?P<prop>[A-Za-z0-9_/]+)\s*,\s*'(?P<value>.*)'\s*\)\s*$", re.I
)
# A lambda over a collection of strings, as group-list.md filters Microsoft 365 groups:
# `groupTypes/any(c:c eq 'Unified')`.
_ANY = re.compile(
    r"^\s*(?P<prop>[A-Za-z0-9_]+)/any\(\s*(?P<v>\w+)\s*:\s*(?P=v)\s+eq\s+'(?P<value>[^']*)'\s*\)\s*$",
    re.I,
)

Predicate = Callable[[dict[str, Any]], bool]


def _literal(text: str) -> Any:
    t = text.strip()
    if t.startswith("'") and t.endswith("'"):
        return t[1:-1].replace("''", "'")
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    if t.lower() == "null":
        return None
    if re.match(r"^\d{4}-\d{2}-\d{2}", t):
        return parse_iso(t)
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        raise bad_request(f"Invalid filter clause: unsupported literal {t!r}.") from None


def _get(obj: dict[str, Any], prop: str) -> Any:
    value: Any = obj
    for part in prop.split("/"):
        if not isinstance(value, dict):
            return None
        match = next((k for k in value if k.lower() == part.lower()), None)
        value = value.get(match) if match else None
    return value


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(right, dt.datetime) and isinstance(left, str):
        try:
            left = parse_iso(left)
        except ValueError:
            return False
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.lower(), right.lower()
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        return bool(
            {
                "gt": left > right,
                "ge": left >= right,
                "lt": left < right,
                "le": left <= right,
            }[op]
        )
    except TypeError:
        return False


def parse_filter(text: str | None, allowed: Sequence[str] | None = None) -> Predicate | None:
    """Compile a $filter expression; `allowed` restricts the properties (case-insensitive)."""
    if not text:
        return None
    clauses = re.split(r"\s+and\s+", text.strip(), flags=re.I)
    preds: list[Predicate] = []
    allow = {a.lower() for a in allowed} if allowed is not None else None
    for clause in clauses:
        m = _ANY.match(clause)
        if m:
            prop, value = m.group("prop"), m.group("value")
            if allow is not None and prop.lower() not in allow:
                raise bad_request(f"Invalid filter clause: unsupported property '{prop}'.")
            preds.append(_any(prop, value))
            continue
        m = _STARTS.match(clause)
        if m:
            prop, value = m.group("prop"), m.group("value").lower()
            if allow is not None and prop.lower() not in allow:
                raise bad_request(f"Invalid filter clause: unsupported property '{prop}'.")
            preds.append(_startswith(prop, value))
            continue
        m = _CMP.match(clause)
        if not m:
            raise bad_request(f"Invalid filter clause: '{clause}'.", "BadRequest")
        prop, op, value = m.group("prop"), m.group("op").lower(), _literal(m.group("value"))
        if allow is not None and prop.lower() not in allow:
            raise bad_request(f"Invalid filter clause: unsupported property '{prop}'.")
        preds.append(_comparison(prop, op, value))
    return lambda obj: all(p(obj) for p in preds)


def _any(prop: str, value: str) -> Predicate:
    return lambda obj: value in (_get(obj, prop) or [])


def _startswith(prop: str, value: str) -> Predicate:
    return lambda obj: str(_get(obj, prop) or "").lower().startswith(value)


def _comparison(prop: str, op: str, value: Any) -> Predicate:
    return lambda obj: _compare(_get(obj, prop), op, value)


def reject_options(req: Request, options: Sequence[str], resource: str) -> None:
    """Refuse query options a resource does not support (error text as Exchange's)."""
    used = [o for o in options if o in req.query]
    if used:
        raise GraphError(
            400,
            "ErrorInvalidUrlQuery",
            f"The following parameters are not supported with change tracking over the"
            f" '{resource}' resource: '{', '.join(used)}'.",
        )


# -- links and collections ---------------------------------------------------------------


def graph_url(req: Request, path: str) -> str:
    """Absolute Graph URL for a canonical path (segments percent-encoded)."""
    encoded = "/".join(quote(seg, safe="@:,!$'()*+;=") for seg in path.strip("/").split("/"))
    return f"{req.base_url}/v1.0/{encoded}"


def link(req: Request, path: str, **params: str) -> str:
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
    return graph_url(req, path) + ("?" + query if query else "")


def read_state(
    req: Request, tokens: StateTokens, name: str = "$skiptoken"
) -> dict[str, Any] | None:
    raw = req.query.get(name)
    if raw is None:
        return None
    try:
        return tokens.decode(raw)
    except TokenError:
        raise bad_request(f"The {name} is invalid.", "invalidRequest") from None


def collection(
    req: Request,
    values: list[dict[str, Any]],
    *,
    next_link: str | None = None,
    delta_link: str | None = None,
    context: str = "",
    extra: dict[str, Any] | None = None,
) -> Response:
    payload: dict[str, Any] = {}
    if context:
        payload["@odata.context"] = f"{req.base_url}/v1.0/$metadata#{context}"
    if extra:
        payload.update(extra)
    if next_link:
        payload["@odata.nextLink"] = next_link
    payload["value"] = values
    if delta_link:
        payload["@odata.deltaLink"] = delta_link
    return json_response(payload, headers=prefer_applied(req))


def paged_list(
    req: Request,
    tokens: StateTokens,
    path: str,
    fetch: Callable[[int, int], list[Any]],
    render: Callable[[Any], dict[str, Any] | None],
    *,
    default: int,
    maximum: int,
    context: str = "",
    key: Callable[[Any], int] = lambda item: int(item.pk),
    filterable: Sequence[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """A keyset-paged collection: `fetch(after_pk, limit)` returns rows in pk order.

    `render` turns a row into JSON (or None to skip it). `$filter` (properties in
    `filterable`) and `$select` apply after rendering; both are kept in the skiptoken.
    """
    state = read_state(req, tokens)
    size = page_size(req, default, maximum, state)
    select = parse_select(req, state)
    ftext = state.get("filter") if state else req.query.get("$filter")
    if ftext and filterable is None:
        raise bad_request("The query option $filter is not supported on this collection.")
    pred = parse_filter(ftext, filterable)
    after = int(state["after"]) if state else 0
    out: list[dict[str, Any]] = []
    last = after
    more = False
    batch_size = 200
    while not more:
        batch = fetch(last, batch_size)
        for row in batch:
            obj = render(row)
            if obj is None or (pred is not None and not pred(obj)):
                last = key(row)
                continue
            if len(out) == size:
                more = True
                break
            out.append(apply_select(obj, select))
            last = key(row)
        if len(batch) < batch_size:
            break
    next_link = None
    if more:
        token = tokens.encode({"after": last, "top": size, "select": select, "filter": ftext})
        # Other options ($expand, includeHiddenFolders, ...) ride along in the link.
        kept = {
            k: v
            for k, v in parse_qsl(req.raw_query, keep_blank_values=True)
            if k.lower() not in ("$skiptoken", "$top", "$select", "$filter")
        }
        next_link = link(req, path, **kept, **{"$skiptoken": token})
    return collection(req, out, next_link=next_link, context=context, extra=extra)
