"""JSON batching: `POST /$batch` (concepts/json-batching.md).

- At most 20 requests; ids must be unique (case-insensitive); a malformed batch is 400,
  otherwise the batch answers 200 and each part carries its own status, headers and body.
- Parts run through the same pipeline as single requests (authentication with the
  batch's Authorization header, throttling, fault injection except connection faults), so
  a part can be 429 with Retry-After while the others succeed ("Requests in a batch are
  evaluated individually against the applicable throttling limits").
- `dependsOn` runs parts in order; a part whose dependency failed gets 424.
- JSON bodies come back as JSON; other bodies (`$value`, file content) as base64 strings.
  Request bodies: JSON objects, or strings (base64 for binary content types, taken
  verbatim for text/plain such as MIME uploads).
- Parts run sequentially (Graph runs at most 4 Outlook parts in parallel; sequential
  execution stays within that).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from email.message import Message
from typing import Any

from ..httpcore import BodyReader, GraphError, Request, Response, json_response
from ..router import Router

MAX_PARTS = 20


def register(router: Router, execute: Callable[[Request], Response]) -> None:
    def batch(req: Request) -> Response:
        payload = req.json()
        parts = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(parts, list) or not parts:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(parts) > MAX_PARTS:
            raise GraphError(
                400, "BadRequest", f"Too many requests in batch. Max allowed: {MAX_PARTS}."
            )
        seen: set[str] = set()
        for part in parts:
            if (
                not isinstance(part, dict)
                or not part.get("id")
                or not part.get("method")
                or not part.get("url")
            ):
                raise GraphError(400, "BadRequest", "Each request needs id, method and url.")
            pid = str(part["id"]).lower()
            if pid in seen:
                raise GraphError(
                    400, "BadRequest", f"Batch request ids must be unique: '{part['id']}'."
                )
            seen.add(pid)
            if part.get("body") is not None and not _header(part, "Content-Type"):
                raise GraphError(
                    400,
                    "BadRequest",
                    f"Request '{part['id']}' has a body but no Content-Type header.",
                )
        order = _order(parts)
        status_by_id: dict[str, int] = {}
        responses: list[dict[str, Any]] = []
        for part in order:
            pid = str(part["id"])
            deps = [str(d).lower() for d in part.get("dependsOn") or []]
            if any(status_by_id.get(d, 0) >= 400 or d not in status_by_id for d in deps):
                status_by_id[pid.lower()] = 424
                responses.append(
                    {
                        "id": pid,
                        "status": 424,
                        "headers": {"Content-Type": "application/json"},
                        "body": {
                            "error": {
                                "code": "FailedDependency",
                                "message": "A dependency of this request failed.",
                            }
                        },
                    }
                )
                continue
            sub = _sub_request(req, part)
            resp = execute(sub)
            body_bytes = b"".join(resp.chunks()) if resp.status not in (204, 304) else b""
            if resp.on_sent:
                resp.on_sent(len(body_bytes))
            status_by_id[pid.lower()] = resp.status
            headers = {
                k: v
                for k, v in resp.headers
                if k.lower() not in ("strict-transport-security", "x-ms-ags-diagnostic")
            }
            entry: dict[str, Any] = {"id": pid, "status": resp.status, "headers": headers}
            ctype = (resp.header("Content-Type") or "").lower()
            if body_bytes:
                if "json" in ctype:
                    entry["body"] = json.loads(body_bytes)
                else:
                    entry["body"] = base64.b64encode(body_bytes).decode()
            responses.append(entry)
        return json_response({"responses": responses})

    router.add("POST", "/$batch", batch, service="other")


def _header(part: dict[str, Any], name: str) -> str:
    for key, value in (part.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return ""


def _order(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parts in an order that respects dependsOn (input order otherwise)."""
    by_id = {str(p["id"]).lower(): p for p in parts}
    done: set[str] = set()
    out: list[dict[str, Any]] = []
    visiting: set[str] = set()

    def visit(p: dict[str, Any]) -> None:
        pid = str(p["id"]).lower()
        if pid in done:
            return
        if pid in visiting:
            raise GraphError(400, "BadRequest", "The dependsOn graph has a cycle.")
        visiting.add(pid)
        for dep in p.get("dependsOn") or []:
            target = by_id.get(str(dep).lower())
            if target is None:
                raise GraphError(400, "BadRequest", f"Unknown dependsOn id '{dep}'.")
            visit(target)
        visiting.discard(pid)
        done.add(pid)
        out.append(p)

    for p in parts:
        visit(p)
    return out


def _sub_request(outer: Request, part: dict[str, Any]) -> Request:
    url = str(part["url"])
    if url.startswith("http://") or url.startswith("https://"):
        idx = url.find("/v1.0/")
        url = url[idx + len("/v1.0") :] if idx >= 0 else url
    if not url.startswith("/"):
        url = "/" + url
    if url.startswith("/$batch"):
        raise GraphError(400, "BadRequest", "Nested batches are not supported.")
    headers = Message()
    auth = outer.header("Authorization")
    if auth:
        headers["Authorization"] = auth
    for key, value in (part.get("headers") or {}).items():
        headers[key] = str(value)
    body = part.get("body")
    raw = b""
    if body is not None:
        ctype = _header(part, "Content-Type").lower()
        if isinstance(body, (dict, list)):
            raw = json.dumps(body).encode()
        elif "json" in ctype or ctype.startswith("text/"):
            raw = str(body).encode()
        else:
            try:
                raw = base64.b64decode(str(body))
            except ValueError:
                raise GraphError(
                    400, "BadRequest", "A binary body must be base64 encoded."
                ) from None
    headers["Content-Length"] = str(len(raw))
    reader = BodyReader(io.BytesIO(raw), len(raw), False)
    return Request(
        method=str(part["method"]).upper(),
        target="/v1.0" + url,
        headers=headers,
        body=reader,
        base_url=outer.base_url,
        client=outer.client,
        in_batch=True,
    )
