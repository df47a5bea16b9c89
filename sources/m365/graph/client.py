"""The one HTTP client of the Microsoft 365 source: Microsoft Graph over a requests.Session.

- Every request passes the throttling gates (throttle.py): pauses of its
  resource, and at most 4 requests in flight per mailbox.
- 429 and 503 honour ``Retry-After`` (pausing only the throttled scope), for up
  to ``throttle_budget`` seconds per request; 5xx answers and dropped
  connections are retried with exponential backoff and full jitter, up to
  ``max_attempts`` times; a refused token (401) is replaced once or twice.
- Paging follows ``@odata.nextLink`` verbatim; a delta round ends with
  ``@odata.deltaLink``; a 410 on a delta link raises ResyncRequired (with the
  ``Location`` Graph gives for drives).
- Downloads stream into a file-like sink; pre-authenticated URLs
  (``@microsoft.graph.downloadUrl``, the target of ``/content``'s 302) are
  fetched without the Authorization header, as Microsoft requires.
- Writes (:meth:`GraphClient.send`): idempotent ones (PUT of a whole
  resource, PATCH, DELETE, a fragment at a known offset) are retried like
  reads; a non-idempotent one (a POST that creates) is never sent twice by
  the client: when its outcome is unknown (dropped connection, 5xx) it raises
  AmbiguousWrite and the caller looks before creating again.

- Headers every Graph request carries are set here, once
  (:func:`graph_headers`): the preferences of :data:`ALWAYS_PREFER`, merged
  with the caller's own ``Prefer`` values, and the ``User-Agent``. Immutable
  IDs in particular apply only to the request that asks for them
  (outlook-immutable-id.md: "This header only applies to the request it is
  included with"), so a listing without it answers in another ID format and
  nothing would match what a backup recorded. Pre-authenticated URLs (upload
  sessions, download URLs) are not Graph and get none of them.

Errors are classified by status and code (case-insensitively) into the
classes of errors.py. Thread-safe: one client serves every owner of a run.
"""

from __future__ import annotations

import email.utils
import importlib.metadata
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urljoin

import requests

from sources.m365.graph.auth import TokenSource, token_source
from sources.m365.graph.connection import Connection
from sources.m365.graph.errors import (
    AmbiguousWrite,
    AuthError,
    GraphError,
    TransientGraphError,
    Unreadable,
    classify,
)
from sources.m365.graph.throttle import Gates, Resource
from sources.m365.graph.tls import TlsAdapter, tls_context

_TRANSIENT_STATUS = {500, 502, 504, 507, 509}
_THROTTLE_STATUS = {429, 503}
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
# Downloads are read in blocks below glibc's mmap threshold (128 KiB, fixed once
# cli/malloc.py sets the trim threshold): 1 MiB blocks were each a fresh mmap,
# page-faulted in and unmapped (urllib3 and http.client copy each block twice),
# which cost more CPU than the bytes' TLS decryption (docs/performance.md,
# "Microsoft 365 backup"); 64 KiB blocks reuse the heap.
_DOWNLOAD_BLOCK = 64 * 1024

# Preferences sent with every Graph request (RFC 7240: a service ignores those it
# does not implement). IdType: Outlook IDs that survive moves, in the one format
# backups record and restores match on (outlook-immutable-id.md).
# include-unknown-enum-members: members of evolvable enums added after v1.0
# (a shared channel's membershipType, system event messages) instead of
# "unknownFutureValue" (best-practices-concept.md, "Handling future members in
# evolvable enumerations").
ALWAYS_PREFER = ('IdType="ImmutableId"', "include-unknown-enum-members")


def _version() -> str:
    try:
        return importlib.metadata.version("coffer")
    except importlib.metadata.PackageNotFoundError:
        return "0"


# "ISV|CompanyName|AppName/Version", the form SharePoint asks clients to decorate
# their traffic with ("Avoid getting throttled or blocked in SharePoint Online").
USER_AGENT = f"ISV|Coffer|Coffer/{_version()}"


def merge_prefer(*values: str | None) -> str:
    """One ``Prefer`` value from several comma-separated ones, each preference once
    (by name, case-insensitively; the first value of a name wins)."""
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        for part in (value or "").split(","):
            token = part.strip()
            name = token.split("=", 1)[0].strip().lower()
            if token and name not in seen:
                seen.add(name)
                out.append(token)
    return ", ".join(out)


def graph_headers(headers: dict[str, str] | None) -> dict[str, str]:
    """``headers`` with the preferences every Graph request carries merged into
    their ``Prefer`` (see the module docstring); the caller's own come first."""
    out = dict(headers or {})
    own = ""
    for key in [k for k in out if k.lower() == "prefer"]:
        own = merge_prefer(own, out.pop(key))
    out["Prefer"] = merge_prefer(own, *ALWAYS_PREFER)
    return out


@dataclass(frozen=True)
class Page:
    """One page of a collection or of a delta round."""

    values: list[dict[str, Any]]
    next_link: str | None
    delta_link: str | None


@dataclass(frozen=True)
class Answer:
    """A successful answer to a write: status, headers and the JSON body (or {})."""

    status: int
    headers: dict[str, str]
    data: dict[str, Any]


class DownloadUrlExpired(Exception):
    """A pre-authenticated download URL no longer works: fetch the item again."""


class TooLarge(Exception):
    """The content is larger than the configured size limit."""


def make_http_session(ca_file: str | None, pool: int = 64) -> requests.Session:
    """A session that trusts ``ca_file`` only (or certifi's bundle, as
    requests does), ignoring REQUESTS_CA_BUNDLE and proxies from the
    environment, with a pool big enough for every worker thread. The CAs are
    loaded once (sources/m365/graph/tls.py). Raises M365ConfigError when
    ``ca_file`` cannot be read as CAs."""
    http = requests.Session()
    http.trust_env = False
    adapter = TlsAdapter(tls_context(ca_file), pool_connections=8, pool_maxsize=pool, max_retries=0)
    http.mount("https://", adapter)
    http.headers["User-Agent"] = USER_AGENT
    return http


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_fields(resp: requests.Response) -> tuple[str, str, str]:
    """(code, message, inner code) from Graph's error body, tolerant of casing."""
    try:
        body = resp.json()
    except ValueError:
        return (str(resp.status_code), resp.reason or "", "")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):  # the identity platform's and some proxies' shape
        return (error, str(body.get("error_description", "")), "")
    if not isinstance(error, dict):
        return (str(resp.status_code), resp.reason or "", "")
    lowered = {str(k).lower(): v for k, v in error.items()}
    inner = lowered.get("innererror")
    inner_code = ""
    if isinstance(inner, dict):
        inner_code = str({str(k).lower(): v for k, v in inner.items()}.get("code") or "")
    code = str(lowered.get("code") or resp.status_code)
    return (code, str(lowered.get("message") or ""), inner_code)


def error_for(resp: requests.Response) -> GraphError:
    """The error class for a failed answer (errors.classify)."""
    code, message, inner = _error_fields(resp)
    return classify(
        resp.status_code,
        code,
        message,
        url=resp.url,
        inner_code=inner,
        location=resp.headers.get("Location"),
    )


class GraphClient:
    """Microsoft Graph over one requests.Session (see the module docstring)."""

    def __init__(
        self,
        graph_url: str,
        tokens: TokenSource,
        http: requests.Session,
        gates: Gates | None = None,
        *,
        max_attempts: int = 8,
        throttle_budget: float = 1800.0,
        timeout: tuple[float, float] = (30.0, 300.0),
        sleep: Callable[[float], None] = time.sleep,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
    ) -> None:
        self.base = graph_url.rstrip("/")
        self.tokens = tokens
        self.http = http
        self.gates = gates or Gates()
        self.max_attempts = max_attempts
        self.throttle_budget = throttle_budget
        self.timeout = timeout
        self._sleep = sleep
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._random = random.Random()  # noqa: S311 (jitter, not secrets)

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("https://", "http://")):
            return path_or_url
        return f"{self.base}/{path_or_url.lstrip('/')}"

    # -- the retry loop -------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        # Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**n)].
        ceiling = min(self._backoff_cap, self._backoff_base * (2**attempt))
        return self._random.uniform(0.1 * ceiling, ceiling)

    def _run(
        self,
        res: Resource,
        attempt_once: Callable[[dict[str, str]], requests.Response],
        *,
        authenticated: bool,
        what: str,
        ambiguous: bool = False,
        attempts: int | None = None,
    ) -> requests.Response:
        """Call ``attempt_once`` (inside the gates) until it answers for good.

        ``attempt_once`` gets the auth headers and returns a response whose
        body has been consumed, or raises a network error. With ``ambiguous``
        (a non-idempotent write) a network error or a 5xx answer raises
        AmbiguousWrite at once instead of being retried; throttling answers
        (429, 503) are retried, Graph did not carry those requests out.

        ``attempts`` bounds server errors (5xx) only: a lost connection says
        nothing about the item asked for, so it is retried up to the client's
        ``max_attempts`` whatever ``attempts`` says. With 5% of connections
        dropped, three tries lost about one download in 8,000, and the backup
        skipped that item (test_faults' storm test failed in CI with one skip).
        """
        failures = 0  # of either kind: the backoff grows with them
        dropped = 0
        server_errors = 0
        auth_retries = 0
        throttled_for = 0.0
        max_attempts = attempts or self.max_attempts
        while True:
            token = ""
            headers: dict[str, str] = {}
            try:
                with self.gates.admit(res):
                    # The token is taken once admitted: a pause may outlast it.
                    if authenticated:
                        token = self.tokens.token()
                        headers["Authorization"] = f"Bearer {token}"
                    res.count_request()
                    resp = attempt_once(headers)
            except _NETWORK_ERRORS as exc:
                failures += 1
                dropped += 1
                res.count_retry()
                if ambiguous:
                    raise AmbiguousWrite(
                        0,
                        type(exc).__name__,
                        "the connection failed after the request was sent",
                        url=what,
                    ) from None
                if dropped >= self.max_attempts:
                    raise TransientGraphError(
                        0, type(exc).__name__, f"connection failed {dropped} times", url=what
                    ) from None
                self._sleep(self._backoff(failures))
                continue
            status = resp.status_code
            if status < 400:
                return resp
            if status == 401 and authenticated and auth_retries < 3:
                auth_retries += 1
                self.tokens.refused(token)
                continue
            if status in _THROTTLE_STATUS:
                res.count_throttled()
                wait = _retry_after(resp)
                if wait is None:
                    wait = self._backoff(min(failures + 1, 6))
                    failures += 1
                if throttled_for + wait > self.throttle_budget:
                    raise TransientGraphError(
                        status, "throttled", f"still throttled after {throttled_for:.0f}s", url=what
                    )
                throttled_for += wait
                # Pause the scope (others wait too) and wait ourselves at the gate.
                self.gates.pause(res.pause, wait)
                continue
            if status in _TRANSIENT_STATUS:
                failures += 1
                server_errors += 1
                res.count_retry()
                if ambiguous and status != 507:
                    code, message, inner = _error_fields(resp)
                    raise AmbiguousWrite(status, code, message, url=what, inner_code=inner)
                if server_errors >= max_attempts:
                    raise error_for(resp)
                self._sleep(self._backoff(failures))
                continue
            if status == 401:
                code, message, _ = _error_fields(resp)
                raise AuthError(f"Graph refused the token: {code}: {message}")
            raise error_for(resp)

    # -- JSON ----------------------------------------------------------------------------

    def get_json(
        self,
        path_or_url: str,
        res: Resource,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """GET a JSON object. Raises the classified GraphError or TransientGraphError."""
        url = self.url(path_or_url)
        send_headers = graph_headers(headers)

        def once(auth: dict[str, str]) -> requests.Response:
            resp = self.http.get(
                url,
                params=params,
                headers={**send_headers, **auth},
                timeout=self.timeout,
            )
            if resp.status_code == 200:
                try:
                    resp._coffer_json = json.loads(resp.content)  # type: ignore[attr-defined]
                except ValueError as exc:
                    # A body cut short by a dropped connection: try again.
                    raise requests.exceptions.ChunkedEncodingError(str(exc)) from None
            return resp

        resp = self._run(res, once, authenticated=True, what=url)
        data = getattr(resp, "_coffer_json", None)
        if data is None:
            data = resp.json() if resp.content else {}
        if not isinstance(data, dict):
            raise GraphError(resp.status_code, "invalidResponse", "not a JSON object", url=url)
        return data

    def pages(
        self,
        path_or_url: str,
        res: Resource,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Iterator[Page]:
        """The pages of a collection or a delta round, following nextLink verbatim."""
        url: str | None = self.url(path_or_url)
        first = True
        while url:
            data = self.get_json(url, res, params=params if first else None, headers=headers)
            first = False
            values = data.get("value") or []
            next_link = data.get("@odata.nextLink")
            delta_link = data.get("@odata.deltaLink")
            yield Page(
                [v for v in values if isinstance(v, dict)],
                str(next_link) if next_link else None,
                str(delta_link) if delta_link else None,
            )
            url = str(next_link) if next_link else None

    def list_all(
        self,
        path_or_url: str,
        res: Resource,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        for page in self.pages(path_or_url, res, params=params, headers=headers):
            yield from page.values

    # -- writes ----------------------------------------------------------------------------

    def send(
        self,
        method: str,
        path_or_url: str,
        res: Resource,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        idempotent: bool,
        preauthenticated: bool = False,
    ) -> Answer:
        """Send a write (or any request with a body); returns the answer.

        ``idempotent``: whether sending it twice does no harm (PUT, PATCH,
        DELETE, an upload fragment); if not, an unknown outcome raises
        AmbiguousWrite (see the module docstring). ``preauthenticated``: an
        upload URL, sent without the Authorization header. Raises the
        classified GraphError otherwise (404 ItemGone, 403 AccessDenied, ...).
        """
        url = self.url(path_or_url)
        send_headers = dict(headers or {}) if preauthenticated else graph_headers(headers)
        body: bytes | None = data
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            send_headers.setdefault("Content-Type", "application/json")

        def once(auth: dict[str, str]) -> requests.Response:
            resp = self.http.request(
                method,
                url,
                params=params,
                data=body,
                headers={**send_headers, **auth},
                timeout=self.timeout,
                allow_redirects=False,
            )
            _ = resp.content  # read the whole answer inside the gate
            return resp

        resp = self._run(
            res,
            once,
            authenticated=not preauthenticated,
            what=url,
            ambiguous=not idempotent,
        )
        parsed: dict[str, Any] = {}
        if resp.content:
            try:
                loaded = json.loads(resp.content)
            except ValueError:
                loaded = None
            if isinstance(loaded, dict):
                parsed = loaded
        return Answer(resp.status_code, dict(resp.headers), parsed)

    # -- downloads -----------------------------------------------------------------------

    def download(
        self,
        path_or_url: str,
        res: Resource,
        sink: IO[bytes],
        *,
        preauthenticated: bool = False,
        max_bytes: int = 0,
        headers: dict[str, str] | None = None,
        attempts: int | None = None,
    ) -> int:
        """Stream a body into ``sink`` (truncated first on every attempt); returns its size.

        ``attempts`` bounds the tries on server errors (default ``max_attempts``):
        one item's content that keeps failing is that item's problem, retried on
        later runs, and must not hold the run for minutes of backoff.

        A 302 to a pre-authenticated URL is followed without the Authorization
        header. Raises DownloadUrlExpired when a pre-authenticated URL is refused
        (401, 403, 404, 410), TooLarge past ``max_bytes`` (when non-zero), and the
        classified GraphError otherwise.
        """
        url = self.url(path_or_url)
        state = {"url": url, "preauth": preauthenticated}
        graph = graph_headers(headers)

        def once(auth: dict[str, str]) -> requests.Response:
            while True:
                sink.seek(0)
                sink.truncate()
                send = {**(headers or {})}
                if not state["preauth"]:
                    send = {**graph, **auth}
                resp = self.http.get(
                    str(state["url"]),
                    headers=send,
                    stream=True,
                    allow_redirects=False,
                    timeout=self.timeout,
                )
                try:
                    if resp.status_code in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                        # /content answers 302 to a pre-authenticated URL: no token there.
                        state["url"] = urljoin(str(state["url"]), resp.headers["Location"])
                        state["preauth"] = True
                        continue
                    if state["preauth"] and resp.status_code in (401, 403, 404, 410):
                        resp._content = resp.raw.read(1 << 16, decode_content=True)
                        if not isinstance(error_for(resp), Unreadable):
                            raise DownloadUrlExpired(f"download URL answered {resp.status_code}")
                        return resp  # malwareDetected: the file's own, not the URL's
                    if resp.status_code >= 400:
                        resp._content = resp.raw.read(1 << 16, decode_content=True)
                        return resp
                    size = 0
                    for block in resp.iter_content(_DOWNLOAD_BLOCK):
                        size += len(block)
                        if max_bytes and size > max_bytes:
                            raise TooLarge(f"larger than {max_bytes} bytes")
                        sink.write(block)
                    expected = resp.headers.get("Content-Length")
                    if expected is not None and expected.isdigit() and int(expected) != size:
                        raise requests.exceptions.ChunkedEncodingError(
                            f"body cut short: {size} of {expected} bytes"
                        )
                    res.downloaded(size)
                    resp._coffer_size = size  # type: ignore[attr-defined]
                    return resp
                finally:
                    resp.close()

        resp = self._run(res, once, authenticated=True, what=url, attempts=attempts)
        sink.flush()
        return int(getattr(resp, "_coffer_size", 0))


def connect(
    conn: Connection,
    prompt: Callable[[str], None] | None = None,
    *,
    write: bool = False,
    **options: Any,
) -> GraphClient:
    """A client for the tenant of ``conn``: an HTTP session trusting its CA file, the
    token source the configuration asks for (``write``: a restore's permissions;
    ``prompt`` shows a device code) and fresh throttling gates. ``options`` go to
    :class:`GraphClient`."""
    http = make_http_session(str(conn.ca_file) if conn.ca_file else None)
    tokens = token_source(conn, http, prompt, write=write)
    return GraphClient(conn.graph_url, tokens, http, Gates(), **options)
