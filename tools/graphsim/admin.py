"""The admin API under `/_sim` (not Graph: no authentication, not counted in stats).

    GET    /_sim/health                      {"ok": true}
    GET    /_sim/info                        tenant id, domain, seed, scale, users
    GET    /_sim/stats                       request counters (stats.py)
    POST   /_sim/stats/reset
    GET    /_sim/inventory[?detail=false]    exact expected contents (inventory.py)
    GET    /_sim/users                       id, UPN, purpose, mailbox, drive per user
    GET    /_sim/items/{key}                 one stored object, private fields included
    GET    /_sim/invitations                 invitations writes would have sent
    DELETE /_sim/invitations
    GET    /_sim/faults                      active fault rules and how often they fired
    POST   /_sim/faults                      {"rules": [FaultRule...], "seed": n} (adds)
    DELETE /_sim/faults
    POST   /_sim/delta/expire                {"services": ["mail", ...]} (all if omitted)
    POST   /_sim/tokens/expire               Graph refuses every token issued so far
    POST   /_sim/settings                    {"token_lifetime", "device_code_interval",
                                              "download_url_lifetime", ...}
    POST   /_sim/throttling                  {"enabled": bool, "scale": float}
    POST   /_sim/throttling/reset            forget the request windows
    POST   /_sim/switches                    {"protected_api_approved": bool,
                                              "strict_immutable_ids": bool, ...
                                              (Switches.FLAGS, tenant.py),
                                              "unlicensed": [user], "licensed": [user],
                                              "app_roles": [permission] (what new app
                                              tokens carry), "revoke_roles": [...],
                                              "grant_roles": [...]}
    GET    /_sim/behaviours                  behaviours on, and the objects marked
    POST   /_sim/behaviours                  {"enable": [...], "disable": [...],
                                              "profile": "realistic",
                                              "mark": {graph id: what}, "unmark": [id],
                                              "soft_delete": [user]}
    POST   /_sim/churn                       {"percent": 1, "seed": 0, "kinds": [...]}
    POST   /_sim/mutate                      {"op": "create|update|move|delete", ...}
    GET    /_sim/devicecodes                 pending device codes
    POST   /_sim/devicecodes/approve         {"user_code", "user"} (sign-in)
    POST   /_sim/devicecodes/decline         {"user_code", "user"}
    GET    /_sim/devicelogin                 the verification page (text)

Errors are JSON `{"error": {"code", "message"}}` with 400/404 statuses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from .behaviours import Behaviours, apply_profile, soft_delete
from .faults import Faults
from .httpcore import GraphError, Request, Response, error_response, json_response
from .identity import IdentityPlatform
from .inventory import inventory
from .mutations import churn, mutate, wipe_messages
from .stats import Stats
from .tenant import Tenant
from .throttling import Throttler


class AdminApi:
    def __init__(
        self,
        *,
        tenant: Tenant,
        identity: IdentityPlatform,
        stats: Stats,
        faults: Faults,
        throttler: Throttler,
        info: Callable[[], dict[str, Any]],
        behaviours: Behaviours | None = None,
    ) -> None:
        self.behaviours = behaviours or Behaviours()
        self.t = tenant
        self.identity = identity
        self.stats = stats
        self.faults = faults
        self.throttler = throttler
        self.info = info

    def __call__(self, req: Request) -> Response:
        try:
            return self._dispatch(req)
        except GraphError as err:
            return error_response(err, req.request_id, req.header("client-request-id"))
        except (ValueError, KeyError, TypeError) as exc:
            return json_response({"error": {"code": "badRequest", "message": str(exc)}}, 400)

    def _body(self, req: Request) -> dict[str, Any]:
        raw = req.read_body(16 << 20)
        if not raw.strip():
            return {}
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("the body must be a JSON object")
        return value

    def _dispatch(self, req: Request) -> Response:
        path = req.path.rstrip("/")
        m = req.method
        t = self.t
        if path == "/_sim/health":
            return json_response({"ok": True})
        if path == "/_sim/info" and m == "GET":
            return json_response(self.info())
        if path == "/_sim/stats" and m == "GET":
            return json_response(self.stats.snapshot())
        if path == "/_sim/stats/reset" and m == "POST":
            self.stats.reset()
            return json_response(self.stats.snapshot())
        if path == "/_sim/inventory" and m == "GET":
            return json_response(inventory(t, detail=req.query.get("detail", "true") != "false"))
        if path == "/_sim/users" and m == "GET":
            users = [
                {
                    "id": u.key,
                    "userPrincipalName": u.data.get("userPrincipalName"),
                    "displayName": u.data.get("displayName"),
                    "purpose": u.data.get("_purpose"),
                    "mailbox": bool(u.data.get("_mailbox")),
                    "drive": u.data.get("_drive"),
                    "wellKnownFolders": u.data.get("_wk", {}),
                }
                for u in t.store.iter_live(["user"])
            ]
            return json_response({"value": users})
        if path.startswith("/_sim/items/") and m == "GET":
            key = path[len("/_sim/items/") :]
            item = t.store.get(key, include_deleted=True)
            if item is None:
                raise GraphError(404, "itemNotFound", f"No item {key!r}.")
            return json_response(asdict(item))
        if path == "/_sim/invitations":
            if m == "GET":
                return json_response({"value": t.store.invitations()})
            if m == "DELETE":
                t.store.clear_invitations()
                return json_response({"value": []})
        if path == "/_sim/faults":
            if m == "GET":
                return json_response({"rules": self.faults.describe()})
            if m == "POST":
                body = self._body(req)
                rules = body.get("rules") or ([body] if "kind" in body else [])
                self.faults.add(list(rules), body.get("seed"))
                return json_response({"rules": self.faults.describe()})
            if m == "DELETE":
                self.faults.clear()
                return json_response({"rules": []})
        if path == "/_sim/delta/expire" and m == "POST":
            services = self._body(req).get("services")
            return json_response({"expired": t.expire_delta_tokens(services)})
        if path == "/_sim/tokens/expire" and m == "POST":
            self.identity.expire_all_tokens()
            return json_response({"ok": True})
        if path == "/_sim/settings" and m == "POST":
            settings = t.set_settings(**self._body(req))
            self.identity.settings = settings
            return json_response(asdict(settings))
        if path == "/_sim/throttling" and m == "POST":
            body = self._body(req)
            policy = self.throttler.policy
            if "enabled" in body:
                policy = replace(policy, enabled=bool(body["enabled"]))
            if "scale" in body:
                policy = replace(policy, scale=float(body["scale"]))
            self.throttler.set_policy(policy)
            return json_response({"enabled": policy.enabled, "scale": policy.scale})
        if path == "/_sim/throttling/reset" and m == "POST":
            self.throttler.reset()
            return json_response({"ok": True})
        if path == "/_sim/switches" and m == "POST":
            body = self._body(req)
            # Licences and the app's consented permissions have their own keys.
            own = ("unlicensed", "licensed", "app_roles", "revoke_roles", "grant_roles")
            t.switches.update({k: v for k, v in body.items() if k not in own})
            for ref in body.get("unlicensed", []):
                t.switches.unlicensed.add(t.require_user(str(ref)).key)
            for ref in body.get("licensed", []):
                t.switches.unlicensed.discard(t.require_user(str(ref)).key)
            tokens = self.identity.tokens
            if "app_roles" in body:
                tokens.app_roles = [str(r) for r in body["app_roles"]]
            revoked = {str(r) for r in body.get("revoke_roles", [])}
            tokens.app_roles = [r for r in tokens.app_roles if r not in revoked]
            for role in body.get("grant_roles", []):
                if str(role) not in tokens.app_roles:
                    tokens.app_roles.append(str(role))
            return json_response(
                {
                    **t.switches.flags(),
                    "unlicensed": sorted(t.switches.unlicensed),
                    "app_roles": list(tokens.app_roles),
                }
            )
        if path == "/_sim/behaviours":
            if m == "POST":
                body = self._body(req)
                if body.get("profile"):
                    apply_profile(t, self.behaviours, str(body["profile"]))
                self.behaviours.set(
                    enable=[str(x) for x in body.get("enable", [])],
                    disable=[str(x) for x in body.get("disable", [])],
                )
                for key, what in dict(body.get("mark") or {}).items():
                    self.behaviours.mark(str(key), str(what))
                for key in body.get("unmark", []):
                    self.behaviours.unmark(str(key))
                for ref in body.get("soft_delete", []):
                    soft_delete(t, str(ref))
            return json_response(self.behaviours.describe())
        if path == "/_sim/churn" and m == "POST":
            body = self._body(req)
            changes = churn(
                t, float(body.get("percent", 1)), int(body.get("seed", 0)), body.get("kinds")
            )
            return json_response({"changes": changes})
        if path == "/_sim/wipe" and m == "POST":
            return json_response({"deleted": wipe_messages(t)})
        if path == "/_sim/mutate" and m == "POST":
            return json_response(mutate(t, self._body(req)))
        if path == "/_sim/devicecodes" and m == "GET":
            return json_response({"value": self.identity.pending_device_codes()})
        if path in ("/_sim/devicecodes/approve", "/_sim/devicecodes/decline") and m == "POST":
            body = self._body(req)
            try:
                self.identity.approve_device_code(
                    str(body["user_code"]), str(body["user"]), decline=path.endswith("decline")
                )
            except KeyError as exc:
                raise GraphError(404, "itemNotFound", str(exc)) from None
            return json_response({"ok": True})
        if path == "/_sim/devicelogin":
            text = "Coffer simulator: approve device codes with POST /_sim/devicecodes/approve.\n"
            return Response(200, [("Content-Type", "text/plain; charset=utf-8")], text.encode())
        raise GraphError(404, "itemNotFound", f"No admin endpoint {m} {path}.")
