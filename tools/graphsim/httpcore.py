"""HTTP request and response types shared by the server, the services and the admin API.

Contracts:
- A `Request` is built by the server for one HTTP request; its body is read lazily
  through `read_body()` (bounded, for JSON) or `body_chunks()` (streaming, for uploads).
- A `Response` holds either bytes or an iterable of byte chunks with a known length, so
  large files stream without being held in memory.
- `GraphError` is raised by handlers to produce Microsoft Graph's error shape
  `{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}`
  (concepts/errors.md). Handlers never build error bodies by hand.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, BinaryIO, Literal
from urllib.parse import parse_qsl, unquote

JSON_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"

DropMode = Literal["before", "mid", "after"]


class GraphError(Exception):
    """An error answered in Graph's JSON error shape.

    `inner_code` adds a more specific code inside `innerError` (errors.md: "innererror
    objects might contain more specific codes"), as drives do for resync errors.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        inner_code: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.inner_code = inner_code


def not_found(what: str = "item", code: str = "itemNotFound") -> GraphError:
    return GraphError(404, code, f"The {what} could not be found.")


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    return GraphError(400, code, message)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(ts: dt.datetime) -> str:
    """Graph's timestamp format: UTC, seconds precision, `Z` suffix."""
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> dt.datetime:
    """Parse an ISO 8601 timestamp; naive values are taken as UTC. Raises ValueError."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    # Graph uses 7 fractional digits; Python accepts at most 6.
    if "." in t:
        head, _, rest = t.partition(".")
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        t = head + ("." + digits[:6] if digits else "") + rest[i:]
    value = dt.datetime.fromisoformat(t)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


class BodyReader:
    """Reads a request body from the connection exactly once (Content-Length or chunked)."""

    def __init__(self, rfile: BinaryIO, length: int | None, chunked: bool) -> None:
        self._rfile = rfile
        self._remaining = length if length is not None else 0
        self._chunked = chunked
        self._chunk_left = 0
        self._done = not chunked and not self._remaining
        self.consumed = 0

    @property
    def done(self) -> bool:
        return self._done

    def read(self, n: int = 1 << 20) -> bytes:
        """Return up to n bytes; b"" at the end of the body."""
        if self._done:
            return b""
        if not self._chunked:
            data = self._rfile.read(min(n, self._remaining))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            self._remaining -= len(data)
            self._done = self._remaining == 0
            self.consumed += len(data)
            return data
        if self._chunk_left == 0:
            line = self._rfile.readline(1024)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # Trailers end with an empty line.
                while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                self._done = True
                return b""
            self._chunk_left = size
        data = self._rfile.read(min(n, self._chunk_left))
        if not data:
            raise ConnectionError("client closed the connection mid-body")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._rfile.readline(16)
        self.consumed += len(data)
        return data

    def drain(self, limit: int) -> bool:
        """Discard the rest of the body; False if more than `limit` bytes remained."""
        total = 0
        while not self._done:
            total += len(self.read(1 << 16))
            if total > limit:
                return False
        return True


@dataclass
class Request:
    """One HTTP request as the application sees it."""

    method: str
    target: str  # the raw request target (path and query, percent-encoded)
    headers: Message
    body: BodyReader
    base_url: str  # https://127.0.0.1:PORT
    client: str = ""
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Set by the authentication step for Graph requests.
    auth: Any = None
    # Route information, filled by the router.
    route_name: str = ""
    params: dict[str, str] = field(default_factory=dict)
    in_batch: bool = False
    # The $select of the running delta round (set by services.common.delta_round).
    delta_select: list[str] | None = None
    _body_cache: bytes | None = None

    @property
    def raw_path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    @property
    def raw_query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def query(self) -> dict[str, str]:
        """Query options; OData `$` options are matched case-insensitively (keys lowered)."""
        out: dict[str, str] = {}
        for key, value in parse_qsl(self.raw_query, keep_blank_values=True):
            out[key.lower() if key.startswith("$") else key] = value
        return out

    def header(self, name: str, default: str = "") -> str:
        value = self.headers.get(name)
        return default if value is None else str(value)

    def read_body(self, limit: int = 64 << 20) -> bytes:
        """The whole body (cached). Raises GraphError 413 above `limit` bytes."""
        if self._body_cache is None:
            parts: list[bytes] = []
            size = 0
            while True:
                chunk = self.body.read(1 << 20)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise GraphError(413, "RequestEntityTooLarge", "The request body is too large.")
                parts.append(chunk)
            self._body_cache = b"".join(parts)
        return self._body_cache

    def json(self) -> Any:
        """The body parsed as JSON. Raises GraphError 400 when it is not JSON."""
        raw = self.read_body()
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad_request(f"Unable to read JSON request payload: {exc}") from None


@dataclass
class Response:
    """An HTTP response. `body` is bytes or an iterable of chunks of total `length` bytes."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Iterable[bytes] = b""
    length: int | None = None
    drop: DropMode | None = None  # fault injection: how to cut the connection
    counted_download: bool = False
    on_sent: Callable[[int], None] | None = None

    def content_length(self) -> int:
        if isinstance(self.body, bytes):
            return len(self.body)
        assert self.length is not None, "streaming responses need a length"
        return self.length

    def chunks(self) -> Iterator[bytes]:
        if isinstance(self.body, bytes):
            yield self.body
        else:
            yield from self.body

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        self.headers.append((name, value))


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    hdrs = [("Content-Type", JSON_TYPE)]
    hdrs.extend((headers or {}).items())
    return Response(status=status, headers=hdrs, body=body)


def empty_response(status: int = 204, headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, headers=list((headers or {}).items()), body=b"")


def error_body(err: GraphError, request_id: str, client_request_id: str) -> dict[str, Any]:
    inner: dict[str, Any] = {
        "date": utc_now().strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id,
        "client-request-id": client_request_id or request_id,
    }
    if err.inner_code:
        inner = {"code": err.inner_code, **inner}
    return {"error": {"code": err.code, "message": err.message, "innerError": inner}}


def error_response(err: GraphError, request_id: str, client_request_id: str) -> Response:
    return json_response(error_body(err, request_id, client_request_id), err.status, err.headers)
