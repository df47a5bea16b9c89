"""Helpers for tests that run against the simulator.

    from tools.graphsim.testing import running_tenant

    @pytest.fixture(scope="module")
    def tenant(tmp_path_factory):
        with running_tenant(tmp_path_factory.mktemp("m365"), seed=3) as t:
            yield t

    def test_something(tenant):
        s = tenant.graph()                       # requests.Session with a valid token
        r = s.get(f"{tenant.info.graph_url}/users")
        assert len(r.json()["value"]) == tenant.admin.inventory()["totals"]["..."]

`RunningTenant` bundles the `Simulator`, its `ConnectionInfo`, an `AdminClient`, and
factories for HTTP sessions that trust the simulator's CA (and ignore the environment's
CA bundle variables, as Coffer must). `AdminClient` wraps every `/_sim` endpoint.
Nothing here mocks anything: requests go over real HTTPS to the real server.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization

from .certs import load_certificate, x5t
from .config import ThrottlePolicy
from .identity import ASSERTION_TYPE
from .simulator import ConnectionInfo, Simulator

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def trusted_session(info: ConnectionInfo) -> requests.Session:
    """A requests session that trusts only the simulator's CA."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override verify
    session.verify = str(info.ca_file)
    return session


def app_token(
    info: ConnectionInfo, *, method: str = "secret", session: requests.Session | None = None
) -> str:
    """An app-only token from the simulated identity platform (client credentials).

    `method` is "secret" or "certificate" (a client assertion signed with the app's key,
    as certificate-credentials.md describes). Plain HTTP, so tools/ needs no msal; the
    conformance tests use msal itself.
    """
    http = session or trusted_session(info)
    endpoint = f"{info.authority}/oauth2/v2.0/token"
    form = {"client_id": info.client_id, "grant_type": "client_credentials", "scope": GRAPH_SCOPE}
    if method == "certificate":
        key = serialization.load_pem_private_key(info.private_key.read_bytes(), password=None)
        now = int(time.time())
        claims = {
            "aud": endpoint,
            "iss": info.client_id,
            "sub": info.client_id,
            "jti": str(uuid.uuid4()),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        }
        header = {"x5t": x5t(load_certificate(info.certificate))}
        form["client_assertion_type"] = ASSERTION_TYPE
        form["client_assertion"] = jwt.encode(claims, key, algorithm="RS256", headers=header)  # type: ignore[arg-type]
    else:
        form["client_secret"] = info.client_secret
    result = http.post(endpoint, data=form, timeout=60).json()
    if "access_token" not in result:
        raise RuntimeError(
            f"token request failed: {result.get('error')}: {result.get('error_description')}"
        )
    return str(result["access_token"])


class AdminClient:
    """The admin API (`/_sim`). Methods return the decoded JSON; HTTP errors raise."""

    def __init__(self, info: ConnectionInfo) -> None:
        self.base = info.admin_url
        self.session = trusted_session(info)

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> Any:
        resp = self.session.request(
            method, f"{self.base}{path}", json=body, params=params or None, timeout=120
        )
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} /_sim{path}: {resp.status_code} {resp.text}")
        return resp.json()

    # counters
    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "/stats"))

    def reset_stats(self) -> dict[str, Any]:
        return dict(self._call("POST", "/stats/reset"))

    # tenant contents
    def info(self) -> dict[str, Any]:
        return dict(self._call("GET", "/info"))

    def inventory(self, detail: bool = True) -> dict[str, Any]:
        return dict(self._call("GET", "/inventory", detail=str(detail).lower()))

    def users(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/users")["value"])

    def item(self, key: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/items/{key}"))

    def invitations(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/invitations")["value"])

    def clear_invitations(self) -> None:
        self._call("DELETE", "/invitations")

    # faults
    def inject_faults(
        self, *rules: dict[str, Any], seed: int | None = None
    ) -> list[dict[str, Any]]:
        """Add fault rules, e.g. `{"kind": "429", "match": "/messages", "count": 2}`."""
        body: dict[str, Any] = {"rules": list(rules)}
        if seed is not None:
            body["seed"] = seed
        return list(self._call("POST", "/faults", body)["rules"])

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults")["rules"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def expire_delta_tokens(self, services: list[str] | None = None) -> list[str]:
        body = {"services": services} if services else {}
        return list(self._call("POST", "/delta/expire", body)["expired"])

    def expire_tokens(self) -> None:
        self._call("POST", "/tokens/expire")

    # behaviour
    def settings(self, **changes: Any) -> dict[str, Any]:
        return dict(self._call("POST", "/settings", changes))

    def throttling(
        self, *, enabled: bool | None = None, scale: float | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if enabled is not None:
            body["enabled"] = enabled
        if scale is not None:
            body["scale"] = scale
        return dict(self._call("POST", "/throttling", body))

    def reset_throttling(self) -> None:
        self._call("POST", "/throttling/reset")

    def switches(
        self,
        *,
        protected_api_approved: bool | None = None,
        unlicensed: list[str] | None = None,
        licensed: list[str] | None = None,
        app_roles: list[str] | None = None,
        revoke_roles: list[str] | None = None,
        grant_roles: list[str] | None = None,
        **flags: Any,
    ) -> dict[str, Any]:
        """Set switches (tenant.py ``Switches.FLAGS``, e.g. ``strict_immutable_ids=True``),
        license states and the app's consented permissions; returns them all."""
        body: dict[str, Any] = dict(flags)
        if app_roles is not None:
            body["app_roles"] = app_roles
        if revoke_roles:
            body["revoke_roles"] = revoke_roles
        if grant_roles:
            body["grant_roles"] = grant_roles
        if protected_api_approved is not None:
            body["protected_api_approved"] = protected_api_approved
        if unlicensed:
            body["unlicensed"] = unlicensed
        if licensed:
            body["licensed"] = licensed
        return dict(self._call("POST", "/switches", body))

    # mutations
    def churn(
        self, percent: float, seed: int = 0, kinds: list[str] | None = None
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"percent": percent, "seed": seed}
        if kinds:
            body["kinds"] = kinds
        return list(self._call("POST", "/churn", body)["changes"])

    def mutate(self, **op: Any) -> dict[str, Any]:
        """One change (mutations.py), for example:

        `mutate(op="delete", id=...)`, `mutate(op="update", id=..., changes={...})`,
        `mutate(op="move", id=..., destination=...)`,
        `mutate(op="create", kind="message", parent=..., props={...})`."""
        return dict(self._call("POST", "/mutate", op))

    def behaviours(self, **body: Any) -> dict[str, Any]:
        """Switch behaviours (behaviours.py): `behaviours(enable=[...], disable=[...],
        profile="realistic", mark={id: what}, unmark=[id])`; no arguments: what is on."""
        if not body:
            return dict(self._call("GET", "/behaviours"))
        return dict(self._call("POST", "/behaviours", body))

    # device code sign-in
    def device_codes(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/devicecodes")["value"])

    def approve_device_code(self, user_code: str, user: str) -> None:
        self._call("POST", "/devicecodes/approve", {"user_code": user_code, "user": user})

    def decline_device_code(self, user_code: str, user: str) -> None:
        self._call("POST", "/devicecodes/decline", {"user_code": user_code, "user": user})


@dataclass
class RunningTenant:
    sim: Simulator
    info: ConnectionInfo
    admin: AdminClient

    def session(self) -> requests.Session:
        return trusted_session(self.info)

    def token(self, method: str = "secret") -> str:
        return app_token(self.info, method=method)

    def graph(self, method: str = "secret") -> requests.Session:
        """A session trusting the CA with `Authorization: Bearer <app token>` set."""
        s = trusted_session(self.info)
        s.headers["Authorization"] = f"Bearer {app_token(self.info, method=method, session=s)}"
        return s

    def url(self, path: str) -> str:
        return f"{self.info.graph_url}/{path.lstrip('/')}"


@contextlib.contextmanager
def running_tenant(
    state_dir: str | Path | None = None,
    *,
    seed: int = 0,
    scale: str = "small",
    users: int | None = None,
    throttling: bool | float | ThrottlePolicy | None = True,
    **kwargs: Any,
) -> Iterator[RunningTenant]:
    """Start a simulated tenant (in a temporary directory unless given) and stop it after."""
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="graphsim-"))
        sim = Simulator(
            state_dir, seed=seed, scale=scale, users=users, throttling=throttling, **kwargs
        )
        info = sim.start()
        stack.callback(sim.stop)
        admin = AdminClient(info)
        stack.callback(admin.session.close)
        yield RunningTenant(sim, info, admin)
