"""Access tokens: issuing them (identity platform) and checking them (Graph).

Tokens are RS256 JWTs signed with the tenant's signing key, in Graph's v1 shape
(entra-docs identity-platform/access-token-claims-reference.md): `aud`
https://graph.microsoft.com, `iss` https://sts.windows.net/{tid}/, `tid`, `appid`,
`roles` for app-only tokens, `scp`/`upn`/`oid` for delegated ones. Graph's checks answer
401 InvalidAuthenticationToken (concepts/errors.md). `expire_all()` revokes every token
issued so far (a generation number in a private claim). Thread-safe.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .httpcore import GraphError

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

# Application permissions the simulated app has been granted (roles claim).
APP_ROLES = [
    "User.Read.All",
    "Mail.ReadWrite",
    "Contacts.ReadWrite",
    "Calendars.ReadWrite",
    "Files.ReadWrite.All",
    "Sites.ReadWrite.All",
    "Team.ReadBasic.All",
    "Channel.ReadBasic.All",
    "ChannelMessage.Read.All",
    "Group.Read.All",
    "Group-Conversation.Read.All",
    "MailboxSettings.Read",
]
OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}


@dataclass
class AuthContext:
    """Who is calling Graph: the app, and for delegated tokens the signed-in user."""

    app_id: str
    user_id: str | None  # None for app-only tokens
    scopes: list[str]
    claims: dict[str, Any]

    @property
    def delegated(self) -> bool:
        return self.user_id is not None


class TokenService:
    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        signing_key: rsa.RSAPrivateKey,
        lifetime: Callable[[], int],
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._signing_key = signing_key
        self._signing_public = signing_key.public_key()
        self.kid = key_id(signing_key)
        self._lifetime = lifetime
        self._lock = threading.Lock()
        self._validated: dict[str, dict[str, Any]] = {}
        self.token_generation = 0
        # The application permissions consented for the app: what new app-only tokens
        # carry. Revoking one takes effect for tokens issued afterwards, as in Entra ID
        # (a token is a snapshot of the consent at issuance).
        self.app_roles: list[str] = list(APP_ROLES)

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims,
            self._signing_key,
            algorithm="RS256",
            headers={"typ": "JWT", "x5t": self.kid, "kid": self.kid},
        )

    def jwks(self) -> dict[str, Any]:
        numbers = self._signing_public.public_numbers()

        def b64(n: int) -> str:
            raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.kid,
                    "x5t": self.kid,
                    "n": b64(numbers.n),
                    "e": b64(numbers.e),
                    "issuer": f"https://login.microsoftonline.com/{self.tenant_id}/v2.0",
                }
            ]
        }

    def app_token(self, method: str) -> dict[str, Any]:
        """The client-credentials token response (method: secret or certificate)."""
        now = int(time.time())
        lifetime = self._lifetime()
        claims = {
            "aud": GRAPH_RESOURCE,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": self.client_id,
            "appidacr": "2" if method == "certificate" else "1",
            "idtyp": "app",
            "oid": stable_uuid(f"sp:{self.client_id}"),
            "sub": stable_uuid(f"sp:{self.client_id}"),
            "roles": list(self.app_roles),
            "tid": self.tenant_id,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
            "xms_sim_gen": self.token_generation,
        }
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.sign(claims),
        }

    def user_tokens(self, user: dict[str, Any], scopes: list[str]) -> dict[str, Any]:
        """The delegated token response (device code, refresh token)."""
        now = int(time.time())
        lifetime = self._lifetime()
        graph_scopes = sorted(
            {
                s.rsplit("/", 1)[-1]
                for s in scopes
                if s.lower() not in OIDC_SCOPES and not s.endswith("/.default")
            }
            or {"User.Read"}
        )
        access = {
            "aud": GRAPH_RESOURCE,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": self.client_id,
            "appidacr": "0",
            "idtyp": "user",
            "oid": user["id"],
            "sub": user["id"],
            "upn": user["userPrincipalName"],
            "name": user.get("displayName", ""),
            "scp": " ".join(graph_scopes),
            "tid": self.tenant_id,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
            "xms_sim_gen": self.token_generation,
        }
        id_claims = {
            "aud": self.client_id,
            "iss": f"https://login.microsoftonline.com/{self.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "oid": user["id"],
            "sub": user["id"],
            "tid": self.tenant_id,
            "name": user.get("displayName", ""),
            "preferred_username": user["userPrincipalName"],
            "ver": "2.0",
        }
        refresh = {
            "aud": f"refresh:{self.client_id}",
            "sub": user["id"],
            "scp": scopes,
            "iat": now,
            "jti": secrets.token_urlsafe(12),
        }
        client_info = base64.urlsafe_b64encode(
            json.dumps({"uid": user["id"], "utid": self.tenant_id}).encode()
        ).decode()
        return {
            "token_type": "Bearer",
            "scope": " ".join(graph_scopes),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.sign(access),
            "refresh_token": self.sign(refresh),
            "id_token": self.sign(id_claims),
            "client_info": client_info.rstrip("="),
        }

    def refresh_claims(self, token: str) -> dict[str, Any]:
        """The claims of a refresh token we issued. Raises ValueError."""
        try:
            return dict(
                jwt.decode(
                    token,
                    self._signing_public,
                    algorithms=["RS256"],
                    audience=f"refresh:{self.client_id}",
                )
            )
        except jwt.PyJWTError as exc:
            raise ValueError(str(exc)) from None

    def expire_all(self) -> None:
        """Make Graph refuse every token issued until now (admin API)."""
        with self._lock:
            self.token_generation += 1
            self._validated.clear()

    def validate(self, authorization: str) -> AuthContext:
        """Check an `Authorization` header as Graph does. Raises GraphError 401."""
        www = {
            "WWW-Authenticate": (
                'Bearer realm="", authorization_uri="https://login.microsoftonline.com/'
                f'common/oauth2/authorize", client_id="{GRAPH_APP_ID}"'
            )
        }
        if not authorization.strip():
            raise GraphError(
                401, "InvalidAuthenticationToken", "Access token is empty.", headers=www
            )
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise GraphError(
                401, "InvalidAuthenticationToken", "Access token is empty.", headers=www
            )
        with self._lock:
            claims = self._validated.get(token)
        if claims is None:
            if token.count(".") != 2:
                raise GraphError(
                    401,
                    "InvalidAuthenticationToken",
                    "IDX14100: JWT is not well formed, there are no dots (.).",
                    headers=www,
                )
            try:
                claims = jwt.decode(
                    token,
                    self._signing_public,
                    algorithms=["RS256"],
                    options={"verify_exp": False, "verify_aud": False},
                )
            except jwt.InvalidSignatureError:
                raise GraphError(
                    401,
                    "InvalidAuthenticationToken",
                    "Access token validation failure. Invalid signature.",
                    headers=www,
                ) from None
            except jwt.PyJWTError:
                raise GraphError(
                    401,
                    "InvalidAuthenticationToken",
                    "Access token validation failure.",
                    headers=www,
                ) from None
            if claims.get("aud") not in (GRAPH_RESOURCE, GRAPH_APP_ID, f"{GRAPH_RESOURCE}/"):
                raise GraphError(
                    401,
                    "InvalidAuthenticationToken",
                    "Access token validation failure. Invalid audience.",
                    headers=www,
                )
            if claims.get("tid") != self.tenant_id:
                raise GraphError(
                    401,
                    "InvalidAuthenticationToken",
                    "Access token validation failure. Invalid issuer.",
                    headers=www,
                )
            with self._lock:
                if len(self._validated) > 10_000:
                    self._validated.clear()
                self._validated[token] = claims
        now = time.time()
        revoked = int(claims.get("xms_sim_gen", 0)) < self.token_generation
        if float(claims.get("exp", 0)) <= now or revoked:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                headers=www,
            )
        if claims.get("idtyp") == "user":
            return AuthContext(
                app_id=str(claims.get("appid")),
                user_id=str(claims.get("oid")),
                scopes=str(claims.get("scp", "")).split(),
                claims=claims,
            )
        return AuthContext(
            app_id=str(claims.get("appid")),
            user_id=None,
            scopes=list(claims.get("roles", [])),
            claims=claims,
        )


def stable_uuid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def key_id(key: rsa.RSAPrivateKey) -> str:
    """A stable key id for the signing key (hash of its public modulus)."""
    n = key.public_key().public_numbers().n
    digest = hashlib.sha1(n.to_bytes((n.bit_length() + 7) // 8, "big")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
