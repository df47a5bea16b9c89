"""The request pipeline: what happens to every request the server receives.

    /_sim/...                 admin API (no auth, not counted)
    /{tenant}/...             identity platform (not counted)
    /v1.0/...                 Graph: count -> authenticate -> route -> app roles
                              (approles.py) -> throttle -> faults -> behaviours
                              (behaviours.py) -> handler -> headers
    /_dl/..., /_up/...        pre-authenticated download and upload URLs: like Graph but
                              without the Authorization header (and a 401 if one is sent
                              to an upload URL, as driveitem-createuploadsession.md warns)

`GraphApp.execute()` runs one Graph request (or one `$batch` part) and never raises: every
failure becomes a Graph error response. Thread-safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from . import approles
from . import behaviours as bh
from .faults import FaultRule, Faults
from .httpcore import GraphError, Request, Response, error_response
from .identity import IdentityPlatform
from .router import Route, Router, normalize_path
from .stats import Stats
from .tenant import Tenant
from .throttling import Charge, Throttled, Throttler, Ticket
from .tokens import AuthContext

log = logging.getLogger("graphsim")

_WRITES = ("POST", "PUT", "PATCH", "DELETE")
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# The delegated permissions that allow writing each kind of data (the permission
# tables of user-post-messages.md, user-post-contacts.md, user-post-events.md,
# driveitem-put-content.md): a write needs one of them.
_WRITE_PERMISSIONS = (
    (("/messages", "/mailfolders"), ("Mail.ReadWrite",)),
    (("/contacts", "/contactfolders"), ("Contacts.ReadWrite",)),
    (("/events", "/calendars", "/calendar/"), ("Calendars.ReadWrite",)),
    (
        ("/drive", "/drives/", "/items/"),
        ("Files.ReadWrite", "Files.ReadWrite.All", "Sites.ReadWrite.All"),
    ),
)


def _write_permissions(path: str) -> tuple[str, ...]:
    """The permissions one of which a delegated write to ``path`` needs (() if none)."""
    lowered = path.lower()
    for markers, permissions in _WRITE_PERMISSIONS:
        if any(m in lowered for m in markers):
            return permissions
    return ()


_DIAG = '{"ServerInfo":{"DataCenter":"Simulator","Slice":"E","Ring":"1","ScaleUnit":"000"}}'


class GraphApp:
    def __init__(
        self,
        *,
        tenant: Tenant,
        identity: IdentityPlatform,
        router: Router,
        raw_router: Router,
        throttler: Throttler,
        faults: Faults,
        stats: Stats,
        admin: Callable[[Request], Response] | None = None,
        behaviours: bh.Behaviours | None = None,
        latency: float = 0.0,
    ) -> None:
        # Seconds every Graph, identity and download request waits before it is
        # handled: a stand-in for the WAN between a backup server and Microsoft's
        # datacentres (--latency MS), so that scaling out is measurable here.
        self.latency = latency
        self.tenant = tenant
        self.behaviours = behaviours or bh.Behaviours()
        self.identity = identity
        self.router = router
        self.raw_router = raw_router
        self.throttler = throttler
        self.faults = faults
        self.stats = stats
        self.admin = admin

    # -- entry point --------------------------------------------------------------------

    def __call__(self, req: Request) -> Response:
        path = req.raw_path
        try:
            if path == "/_sim" or path.startswith("/_sim/"):
                if self.admin is None:
                    raise GraphError(404, "itemNotFound", "No admin API.")
                return self.admin(req)
            if self.latency > 0:
                time.sleep(self.latency)
            if path == "/v1.0" or path.startswith("/v1.0/"):
                return self.execute(req)
            if path.startswith(("/_dl/", "/_up/")):
                return self.execute(req, raw=True)
            if path.count("/") >= 2:
                return self.identity.handle(req)
            raise GraphError(404, "itemNotFound", "Not found.")
        except GraphError as err:
            return error_response(err, req.request_id, req.header("client-request-id"))
        except Exception:  # the server must always answer
            log.exception("unhandled error for %s %s", req.method, req.target)
            failure = GraphError(500, "generalException", "An unspecified error has occurred.")
            return error_response(failure, req.request_id, req.header("client-request-id"))

    # -- Graph pipeline -------------------------------------------------------------------

    def _resolve_me(self, params: dict[str, str], auth: AuthContext) -> None:
        for key in ("user",):
            if params.get(key, "").lower() != "me":
                continue
            if auth.user_id is None:
                raise GraphError(
                    400,
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                )
            params[key] = auth.user_id

    def _check_delegated_scope(
        self, params: dict[str, str], auth: AuthContext, req: Request
    ) -> None:
        """A delegated (device-code) token may only reach the signed-in user's data, and
        (switch ``enforce_delegated_scopes``) write only with a ReadWrite permission."""
        if auth.user_id is None:
            return
        target = params.get("user")
        if target:
            user = self.tenant.user(target)
            if user is None or user.key != auth.user_id:
                raise GraphError(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
        if self.tenant.switches.enforce_delegated_scopes and req.method in _WRITES:
            needed = _write_permissions(req.path)
            if needed and not set(needed) & set(auth.scopes):
                raise GraphError(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )

    def _check_request_size(self, req: Request) -> None:
        """Switch ``request_size_limit``: Graph refuses a body over 4 MB."""
        if not self.tenant.switches.request_size_limit or req.method not in _WRITES:
            return
        try:
            length = int(req.header("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > MAX_REQUEST_BYTES:
            raise GraphError(400, "BadRequest", "The maximum request length supported is 4MB.")

    def _charge(self, route: Route, params: dict[str, str], req: Request) -> tuple[Charge, str]:
        owner = ""
        if route.owner_param and route.owner_param in params:
            value = params[route.owner_param]
            if route.owner_param == "user":
                user = self.tenant.user(value)
                owner = user.key if user else value
            else:
                owner = value
        body = 0
        if req.method in ("POST", "PUT", "PATCH"):
            try:
                body = int(req.header("Content-Length") or 0)
            except ValueError:
                body = 0
        if route.service == "upload":
            with self.tenant.uploads_lock:
                sess = self.tenant.uploads.get(params.get("session", ""))
            if sess is not None and sess.kind == "attachment":
                return Charge(service="outlook", mailbox=sess.owner, upload_bytes=body), sess.owner
            return Charge(service="sharepoint", units=route.units), sess.owner if sess else ""
        if route.service == "outlook":
            return Charge(service="outlook", mailbox=owner, upload_bytes=body), owner
        if route.service == "sharepoint":
            units = route.units
            # "Delta with a token" costs 1 unit, "delta without a token" 2.
            if route.pattern.endswith("/delta") and (
                req.query.get("token") or "token" in req.raw_query.lower()
            ):
                units = 1
            return Charge(service="sharepoint", units=units), owner
        if route.service == "teams":
            return (
                Charge(
                    service="teams",
                    channel=params.get("channel", owner),
                    channel_message_get=route.channel_get,
                ),
                owner,
            )
        return Charge(), owner

    def execute(self, req: Request, *, raw: bool = False) -> Response:
        """Run one Graph (or pre-authenticated URL) request through the whole pipeline."""
        endpoint = f"{req.method} (unmatched)"
        owner = ""
        ticket: Ticket | None = None
        fault: FaultRule | None = None
        route: Route | None = None
        route_error: GraphError | None = None
        rel = req.raw_path if raw else req.raw_path[len("/v1.0") :] or "/"
        norm = normalize_path(rel)
        try:
            route, params = (self.raw_router if raw else self.router).match(
                req.method, norm.segments
            )
            endpoint = route.name
        except GraphError as err:
            route_error = err
            params = {}
        try:
            exclude = ("drop", "drop_mid", "commit_drop") if req.in_batch else ()
            fault = self.faults.pick(req.method, req.target, exclude)
            if fault is not None:
                self.stats.add_fault()
            if fault is not None and fault.kind == "drop":
                self.stats.record(endpoint, 0)
                return Response(status=0, drop="before")
            if not raw:
                auth = self.identity.validate_access_token(req.header("Authorization"))
                req.auth = auth
            if route_error is not None or route is None:
                raise route_error or GraphError(404, "itemNotFound", "Not found.")
            if not raw:
                self._resolve_me(params, req.auth)
                self._check_delegated_scope(params, req.auth, req)
                approles.check(route, req.auth)
                self._check_request_size(req)
            req.params = params
            if norm.item_path is not None:
                req.params["item_path"] = norm.item_path
            for k, v in norm.extra_query.items():
                req.params[f"q:{k}"] = v
            req.route_name = route.name
            charge, owner = self._charge(route, params, req)
            app_id = req.auth.app_id if req.auth else self.identity.client_id
            ticket = self.throttler.admit(app_id, charge)
            if fault is not None:
                self._apply_fault(fault)
            bh.before(self.tenant, self.behaviours, req, route.name, params)
            resp = route.handler(req)
            resp = bh.after(self.tenant, self.behaviours, req, route.name, resp)
            if fault is not None and fault.kind == "commit_drop":
                resp.drop = "after"
            elif fault is not None and fault.kind == "drop_mid":
                resp.drop = "mid"
        except Throttled as exc:
            headers = {"Retry-After": str(exc.retry_after), **exc.headers}
            throttled = GraphError(exc.status, exc.code, exc.message, headers=headers)
            resp = error_response(throttled, req.request_id, req.header("client-request-id"))
        except GraphError as err:
            resp = error_response(err, req.request_id, req.header("client-request-id"))
        except Exception:
            log.exception("unhandled error for %s %s", req.method, req.target)
            failure = GraphError(500, "generalException", "An unspecified error has occurred.")
            resp = error_response(failure, req.request_id, req.header("client-request-id"))
        if ticket is not None:
            for k, v in ticket.headers.items():
                resp.set_header(k, v)
        self._decorate(req, resp)
        self.stats.record(
            endpoint,
            resp.status,
            owner=owner,
            download=bool(route and route.download and resp.status in (200, 206)),
            batch_part=req.in_batch,
            received=req.body.consumed,
        )
        self._finish(resp, ticket)
        return resp

    def _apply_fault(self, fault: FaultRule) -> None:
        if fault.kind == "slow":
            time.sleep(fault.delay)
        elif fault.kind == "429":
            raise GraphError(
                429,
                "TooManyRequests",
                "Please retry again later.",
                headers={"Retry-After": str(fault.retry_after)},
            )
        elif fault.kind == "503":
            raise GraphError(
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Please retry after a delay.",
                headers={"Retry-After": str(fault.retry_after)},
            )
        elif fault.kind == "504":
            raise GraphError(
                504, "GatewayTimeout", "The gateway did not receive a timely response."
            )
        elif fault.kind == "500":
            raise GraphError(500, "generalException", "An unspecified error has occurred.")

    def _decorate(self, req: Request, resp: Response) -> None:
        resp.set_header("request-id", req.request_id)
        resp.set_header("client-request-id", req.header("client-request-id") or req.request_id)
        resp.set_header("x-ms-ags-diagnostic", _DIAG)
        resp.set_header("Strict-Transport-Security", "max-age=31536000")
        if resp.header("Content-Type") and "json" in (resp.header("Content-Type") or ""):
            resp.set_header("OData-Version", "4.0")

    def _finish(self, resp: Response, ticket: Ticket | None) -> None:
        previous = resp.on_sent

        def done(sent: int, _prev: Any = previous) -> None:
            self.stats.add_bytes(sent)
            if ticket is not None:
                ticket.release()
            if _prev is not None:
                _prev(sent)

        resp.on_sent = done
