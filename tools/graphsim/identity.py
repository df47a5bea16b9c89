"""The Microsoft identity platform, as far as Coffer uses it.

Endpoints (paths relative to the authority host, `{tenant}` is the tenant id or domain):

    GET  /{tenant}/v2.0/.well-known/openid-configuration   OIDC discovery (msal reads it)
    GET  /{tenant}/discovery/v2.0/keys                      JWKS of the token-signing key
    POST /{tenant}/oauth2/v2.0/token                        client_credentials, device_code,
                                                            refresh_token grants
    POST /{tenant}/oauth2/v2.0/devicecode                   device authorization request

Sources: entra-docs identity-platform/v2-oauth2-client-creds-grant-flow.md (requests,
responses, error shape), certificate-credentials.md (client assertion: header x5t or
x5t#S256, claims aud/iss/sub/exp/nbf/jti), v2-oauth2-device-code.md (device flow and its
errors), reference-error-codes.md (AADSTS codes).

Issuing and checking access tokens is tokens.py's job; `validate_access_token` is what
Graph uses to accept or refuse them. Device codes live in memory; everything else is
stateless (signed), so tokens survive a restart. Thread-safe.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from .certs import x5t, x5t_s256
from .config import IdentitySettings
from .httpcore import Request, Response, iso, json_response, utc_now
from .tokens import GRAPH_APP_ID, GRAPH_RESOURCE, AuthContext, TokenService

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class DeviceCode:
    device_code: str
    user_code: str
    client_id: str
    scopes: list[str]
    expires_at: float
    interval: int
    approved_user: str | None = None
    declined: bool = False
    redeemed: bool = False
    created: float = field(default_factory=time.time)


class AadError(Exception):
    """An identity-platform error: answered as {"error", "error_description", ...}."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description


@dataclass
class UserLookup:
    """How identity finds users for the device flow (provided by the simulator)."""

    find: Callable[[str], dict[str, Any] | None]  # by id or UPN


class IdentityPlatform:
    def __init__(
        self,
        *,
        tenant_id: str,
        domain: str,
        client_id: str,
        client_secret: str,
        client_cert: x509.Certificate,
        signing_key: rsa.RSAPrivateKey,
        settings: IdentitySettings,
        users: UserLookup,
    ) -> None:
        self.tenant_id = tenant_id
        self.domain = domain
        self.client_id = client_id
        self.client_secret = client_secret
        self._cert = client_cert
        self._cert_x5t = x5t(client_cert)
        self._cert_x5t_s256 = x5t_s256(client_cert)
        self.settings = settings
        self.tokens = TokenService(
            tenant_id=tenant_id,
            client_id=client_id,
            signing_key=signing_key,
            lifetime=lambda: self.settings.token_lifetime,
        )
        self._users = users
        self._lock = threading.Lock()
        self._device_codes: dict[str, DeviceCode] = {}

    # -- routing ----------------------------------------------------------------------

    def tenant_matches(self, tenant: str) -> bool:
        return tenant.lower() in (
            self.tenant_id.lower(),
            self.domain.lower(),
            "organizations",
            "common",
        )

    def handle(self, req: Request) -> Response:
        """Serve an identity request whose path starts with /{tenant}/."""
        parts = req.path.strip("/").split("/", 1)
        tenant = parts[0]
        rest = "/" + (parts[1] if len(parts) > 1 else "")
        base = f"{req.base_url}/{tenant}"
        try:
            if not self.tenant_matches(tenant):
                raise AadError(
                    400,
                    "invalid_request",
                    90002,
                    f"Tenant '{tenant}' not found. Check to make sure you have the correct"
                    " tenant ID and are signing into the correct cloud.",
                )
            if rest == "/v2.0/.well-known/openid-configuration" and req.method == "GET":
                return json_response(self.openid_configuration(base))
            if rest == "/discovery/v2.0/keys" and req.method == "GET":
                return json_response(self.jwks())
            if rest == "/oauth2/v2.0/token":
                self._require_post(req)
                return self._token(req, f"{base}/oauth2/v2.0/token")
            if rest == "/oauth2/v2.0/devicecode":
                self._require_post(req)
                return self._devicecode(req, base)
            raise AadError(404, "invalid_request", 90004, "The request isn't properly formatted.")
        except AadError as err:
            return self._aad_error(err)

    @staticmethod
    def _require_post(req: Request) -> None:
        if req.method != "POST":
            raise AadError(
                400,
                "invalid_request",
                900561,
                f"The endpoint only accepts POST requests. Received a {req.method} request.",
            )

    def openid_configuration(self, base: str) -> dict[str, Any]:
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base.rsplit('/', 1)[0]}/{self.tenant_id}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/openid/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "name", "tid"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def jwks(self) -> dict[str, Any]:
        return self.tokens.jwks()

    # -- errors -----------------------------------------------------------------------

    def _aad_error(self, err: AadError) -> Response:
        trace = str(uuid.uuid4())
        corr = str(uuid.uuid4())
        stamp = utc_now().strftime("%Y-%m-%d %H:%M:%SZ")
        desc = (
            f"AADSTS{err.code}: {err.description}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {corr}\r\nTimestamp: {stamp}"
        )
        body = {
            "error": err.error,
            "error_description": desc,
            "error_codes": [err.code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"https://login.microsoftonline.com/error?code={err.code}",
        }
        return json_response(body, err.status)

    # -- token endpoint -----------------------------------------------------------------

    def _form(self, req: Request) -> dict[str, str]:
        raw = req.read_body(1 << 20).decode("utf-8", "replace")
        return dict(parse_qsl(raw, keep_blank_values=True))

    def _token(self, req: Request, token_endpoint: str) -> Response:
        form = self._form(req)
        auth = req.header("Authorization")
        if auth.lower().startswith("basic "):
            # RFC 6749 2.3.1 client_secret_basic, which the docs say is also supported.
            try:
                user, _, pwd = base64.b64decode(auth[6:]).decode().partition(":")
                form.setdefault("client_id", user)
                form.setdefault("client_secret", pwd)
            except (ValueError, UnicodeDecodeError):
                pass
        grant = form.get("grant_type", "")
        if not grant:
            raise AadError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        client_id = form.get("client_id", "")
        if not client_id:
            raise AadError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        if client_id != self.client_id:
            raise AadError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory"
                f" '{self.domain}'.",
            )
        if grant == "client_credentials":
            method = self._authenticate_client(form, token_endpoint)
            self._check_app_scope(form.get("scope", ""))
            return json_response(self.tokens.app_token(method))
        if grant == DEVICE_GRANT:
            return self._redeem_device_code(form)
        if grant == "refresh_token":
            return self._redeem_refresh_token(form)
        raise AadError(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant}'.",
        )

    def _authenticate_client(self, form: dict[str, str], token_endpoint: str) -> str:
        """Verify the client secret or assertion; returns "secret" or "certificate"."""
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if secret is None and assertion is None:
            raise AadError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion'"
                " or 'client_secret'.",
            )
        if secret is not None:
            if not secrets.compare_digest(secret.encode(), self.client_secret.encode()):
                raise AadError(
                    401,
                    "invalid_client",
                    7000215,
                    f"Invalid client secret provided. Ensure the secret being sent in the"
                    f" request is the client secret value, not the client secret ID, for a"
                    f" secret added to app '{self.client_id}'.",
                )
            return "secret"
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise AadError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_assertion_type'.",
            )
        self._verify_assertion(str(assertion), token_endpoint)
        return "certificate"

    def _verify_assertion(self, assertion: str, token_endpoint: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise AadError(
                401, "invalid_client", 50027, f"JWT token is invalid or malformed: {exc}."
            ) from None
        alg = header.get("alg")
        if alg not in ("RS256", "PS256"):
            raise AadError(
                401,
                "invalid_client",
                700027,
                f"Client assertion failed signature validation: unsupported alg {alg!r}.",
            )
        thumb = str(header.get("x5t#S256") or header.get("x5t") or "").rstrip("=")
        if thumb not in (self._cert_x5t, self._cert_x5t_s256):
            raise AadError(
                401,
                "invalid_client",
                700027,
                f"The certificate with identifier used to sign the client assertion is not"
                f" registered on application. [Reason - The key was not found., Thumbprint of"
                f" key used by client: '{thumb}']",
            )
        try:
            claims = jwt.decode(
                assertion,
                self._cert.public_key(),  # type: ignore[arg-type]
                algorithms=[alg],
                audience=token_endpoint,
                options={"require": ["exp", "aud", "iss", "sub"]},
                leeway=300,
            )
        except jwt.InvalidSignatureError:
            raise AadError(
                401,
                "invalid_client",
                700027,
                "Client assertion contains an invalid signature.",
            ) from None
        except jwt.InvalidAudienceError:
            raise AadError(
                401,
                "invalid_client",
                700023,
                f"Client assertion audience claim does not match Realm issuer. Expected"
                f" '{token_endpoint}'.",
            ) from None
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            raise AadError(
                401,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            ) from None
        except jwt.PyJWTError as exc:
            raise AadError(401, "invalid_client", 50027, f"Invalid JWT token. {exc}.") from None
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            raise AadError(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            )

    @staticmethod
    def _check_app_scope(scope: str) -> None:
        allowed = {f"{GRAPH_RESOURCE}/.default", f"{GRAPH_APP_ID}/.default"}
        requested = scope.split()
        if not requested:
            raise AadError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        bad = [s for s in requested if s not in allowed]
        if bad:
            raise AadError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {bad[0]} is not valid. Client credential flows"
                f" must have a scope value with /.default suffixed to the resource identifier"
                f" (application ID URI).",
            )

    # -- device code flow ---------------------------------------------------------------

    def _devicecode(self, req: Request, base: str) -> Response:
        form = self._form(req)
        client_id = form.get("client_id", "")
        if client_id != self.client_id:
            raise AadError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory"
                f" '{self.domain}'.",
            )
        scopes = [s for s in form.get("scope", "").split() if s]
        if not scopes:
            raise AadError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        code = DeviceCode(
            device_code=secrets.token_urlsafe(48),
            user_code=user_code,
            client_id=client_id,
            scopes=scopes,
            expires_at=time.time() + self.settings.device_code_lifetime,
            interval=self.settings.device_code_interval,
        )
        with self._lock:
            self._device_codes[code.device_code] = code
        verification = f"{req.base_url}/_sim/devicelogin"
        return json_response(
            {
                "user_code": code.user_code,
                "device_code": code.device_code,
                "verification_uri": verification,
                "expires_in": self.settings.device_code_lifetime,
                "interval": code.interval,
                "message": (
                    f"To sign in, use a web browser to open the page {verification} and enter"
                    f" the code {code.user_code} to authenticate."
                ),
            }
        )

    def pending_device_codes(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "user_code": c.user_code,
                    "scopes": c.scopes,
                    "expires_at": iso(_from_epoch(c.expires_at)),
                    "approved_user": c.approved_user,
                    "declined": c.declined,
                }
                for c in self._device_codes.values()
                if not c.redeemed
            ]

    def approve_device_code(self, user_code: str, upn: str, *, decline: bool = False) -> None:
        """The user signs in at the verification page (admin API). Raises KeyError."""
        user = self._users.find(upn)
        if user is None:
            raise KeyError(f"no user {upn!r}")
        with self._lock:
            for code in self._device_codes.values():
                if code.user_code.upper() == user_code.strip().upper():
                    if decline:
                        code.declined = True
                    else:
                        code.approved_user = str(user["id"])
                    return
        raise KeyError(f"no pending device code {user_code!r}")

    def _redeem_device_code(self, form: dict[str, str]) -> Response:
        device_code = form.get("device_code", "")
        with self._lock:
            code = self._device_codes.get(device_code)
        if code is None or code.redeemed:
            raise AadError(
                400,
                "bad_verification_code",
                70018,
                "Invalid verification code due to User typing in wrong user code for device"
                " code flow. Authorization isn't approved.",
            )
        if time.time() > code.expires_at:
            raise AadError(400, "expired_token", 70019, "Verification code expired.")
        if code.declined:
            raise AadError(
                400, "authorization_declined", 65004, "User declined to consent to access the app."
            )
        if code.approved_user is None:
            raise AadError(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        code.redeemed = True
        return self._issue_user_tokens(code.approved_user, code.scopes)

    def _redeem_refresh_token(self, form: dict[str, str]) -> Response:
        try:
            claims = self.tokens.refresh_claims(form.get("refresh_token", ""))
        except ValueError:
            raise AadError(
                400, "invalid_grant", 70000, "Provided grant is invalid or malformed."
            ) from None
        scopes = form.get("scope", "").split() or list(claims.get("scp", []))
        return self._issue_user_tokens(str(claims["sub"]), scopes)

    def _issue_user_tokens(self, user_id: str, scopes: list[str]) -> Response:
        user = self._users.find(user_id)
        if user is None:
            raise AadError(400, "invalid_grant", 50034, "The user account does not exist.")
        return json_response(self.tokens.user_tokens(user, scopes))

    # -- Graph-side validation ------------------------------------------------------------

    def expire_all_tokens(self) -> None:
        """Make Graph refuse every token issued until now (admin API)."""
        self.tokens.expire_all()

    def validate_access_token(self, authorization: str) -> AuthContext:
        """Check an `Authorization` header as Graph does. Raises GraphError 401."""
        return self.tokens.validate(authorization)


def _from_epoch(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)
