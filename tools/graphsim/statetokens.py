"""Opaque, tamper-evident state tokens ($skiptoken, $deltatoken, token=...).

Graph's state tokens are opaque to clients (concepts/delta-query-overview.md, "State
tokens"); they encode the query options of the first request. Ours are
base64url(JSON) + "." + HMAC-SHA256 truncated, keyed by a per-tenant secret, so a client
cannot forge or edit them and the simulator stays stateless across restarts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


class TokenError(ValueError):
    """The token is malformed or was not issued by this tenant."""


class StateTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def encode(self, payload: dict[str, Any]) -> str:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        mac = hmac.new(self._secret, body, hashlib.sha256).digest()[:12]
        return (
            base64.urlsafe_b64encode(body).rstrip(b"=").decode()
            + "."
            + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        )

    def decode(self, token: str) -> dict[str, Any]:
        try:
            body_b64, mac_b64 = token.strip().split(".", 1)
            body = base64.urlsafe_b64decode(body_b64 + "=" * (-len(body_b64) % 4))
            mac = base64.urlsafe_b64decode(mac_b64 + "=" * (-len(mac_b64) % 4))
        except (ValueError, TypeError) as exc:
            raise TokenError("malformed token") from exc
        expected = hmac.new(self._secret, body, hashlib.sha256).digest()[:12]
        if not hmac.compare_digest(mac, expected):
            raise TokenError("token signature mismatch")
        try:
            payload = json.loads(body)
        except json.JSONDecodeError as exc:
            raise TokenError("malformed token") from exc
        if not isinstance(payload, dict):
            raise TokenError("malformed token")
        return payload
