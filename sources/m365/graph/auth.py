"""Signing in to Microsoft Graph with msal (the only module that imports msal).

Two ways, both behind :class:`TokenSource`:

- :class:`AppTokens`: app-only client credentials (a certificate, or a client
  secret read from a file) for backing up a whole tenant;
- :class:`DeviceCodeTokens`: device-code sign-in with delegated rights, for
  backing up one's own mailbox and OneDrive (read permissions,
  ``DEVICE_SCOPES``) and restoring into them (``DEVICE_WRITE_SCOPES``: each
  create or change needs the ReadWrite permission, e.g. user-post-messages.md).

msal keeps tokens in its cache (optionally a file, mode 0600) and serves them
until they near expiry; :class:`AppTokens` holds its token between requests
and asks msal again only where msal would renew it. When Graph refuses a
token anyway (revoked, or expired in the middle of a run), the client calls
:meth:`TokenSource.refused`, and the next :meth:`TokenSource.token` fetches a
new one. Thread-safe. Secrets never reach logs or messages: errors quote
msal's error code and description only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import msal
import requests

from sources.m365.graph.connection import DEVICE_SCOPES, Connection
from sources.m365.graph.errors import AuthError

# Graph's resource identifier per cloud (national clouds have their own hosts).
_NATIONAL_GRAPH_HOSTS = (
    "graph.microsoft.us",
    "dod-graph.microsoft.us",
    "microsoftgraph.chinacloudapi.cn",
)
_NETWORK_ATTEMPTS = 4
# msal serves a cached token until five minutes before it expires (its own
# margin in acquire_token_silent: "expires_in < 5*60: consider it expired");
# AppTokens holds one no longer either, nor past msal's proactive refresh.
_MSAL_MARGIN = 5 * 60
# Delegated permissions a restore into one's own mailbox and OneDrive needs.
DEVICE_WRITE_SCOPES = (
    "Mail.ReadWrite",
    "Contacts.ReadWrite",
    "Calendars.ReadWrite",
    "Files.ReadWrite",
    "User.Read",
)


def graph_resource(graph_url: str) -> str:
    """The resource (audience) of tokens for ``graph_url``."""
    host = (urlsplit(graph_url).hostname or "").lower()
    if host in _NATIONAL_GRAPH_HOSTS:
        return f"https://{host}"
    # The public cloud, and the simulator (which plays graph.microsoft.com).
    return "https://graph.microsoft.com"


class TokenSource(Protocol):
    def token(self) -> str:
        """A valid access token (may block to sign in). Raises AuthError."""
        ...

    def refused(self, token: str) -> None:
        """Graph refused ``token``: the next token() gets a new one."""
        ...


class _CacheFile:
    """msal's serialisable cache, kept in a file only the user can read."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.cache = msal.SerializableTokenCache()
        if path is not None and path.exists():
            try:
                self.cache.deserialize(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                pass  # an unreadable cache only costs a new sign-in

    def save(self) -> None:
        """Write the cache if it changed: a new file (mode 0600, unpredictable
        name) renamed over the old one, so tokens never go into a file or
        through a symlink someone else prepared. Raises OSError."""
        if self.path is None or not self.cache.has_state_changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # mkstemp opens with O_CREAT | O_EXCL | O_NOFOLLOW and mode 0600 under a
        # random name: an existing file or symlink there (planted by another
        # user of a shared directory) is refused, never written through.
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.cache.serialize())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.cache.has_state_changed = False


def _describe(result: dict[str, Any]) -> str:
    error = str(result.get("error") or "unknown_error")
    description = str(result.get("error_description") or "").strip().splitlines()
    first = description[0] if description else ""
    return f"{error}: {first}" if first else error


def _with_network_retries(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    delay = 1.0
    for attempt in range(_NETWORK_ATTEMPTS):
        try:
            return call()
        except (requests.ConnectionError, requests.Timeout) as exc:
            if attempt == _NETWORK_ATTEMPTS - 1:
                raise AuthError(
                    f"cannot reach the identity platform: {type(exc).__name__}"
                ) from None
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class AppTokens:
    """App-only tokens (client credentials) with a certificate or a client secret."""

    def __init__(self, conn: Connection, http: requests.Session) -> None:
        self._conn = conn
        self._scopes = [f"{graph_resource(conn.graph_url)}/.default"]
        self._cache = _CacheFile(conn.token_cache)
        self._lock = threading.Lock()
        self._last: str | None = None
        # (token, monotonic time until which it is handed out without msal)
        self._held: tuple[str, float] | None = None
        if conn.credential == "certificate":
            private_key, certificate = conn.read_certificate()
            # With the certificate itself msal signs the assertion with PS256 and
            # the certificate's SHA-256 thumbprint (x5t#S256), as Entra ID prefers.
            credential: Any = {"private_key": private_key, "public_certificate": certificate}
        else:
            credential = conn.read_secret()
        try:
            self._app = msal.ConfidentialClientApplication(
                conn.client_id,
                client_credential=credential,
                authority=conn.authority,
                token_cache=self._cache.cache,
                http_client=http,
                # A custom authority (national cloud, simulator) is trusted as given:
                # instance discovery would ask login.microsoftonline.com first.
                instance_discovery=False if conn.custom_authority else None,
            )
        except ValueError as exc:
            raise AuthError(f"cannot use the {conn.credential}: {exc}") from None

    def token(self) -> str:
        """The app's token; msal is asked only when the one held nears the end
        of what msal itself would serve (``_MSAL_MARGIN`` before it expires,
        or its proactive refresh time), or after :meth:`refused`.

        Every Graph request asks for a token. Asking msal each time searched
        its cache, made a correlation ID and saved the cache file under this
        lock, while the other download threads queued on it (16.8% of a large
        tenant's samples, docs/performance.md); a held token is returned
        without the lock.
        """
        held = self._held
        if held is not None and time.monotonic() < held[1]:
            return held[0]
        with self._lock:
            held = self._held
            if held is not None and time.monotonic() < held[1]:
                return held[0]
            asked = time.monotonic()
            result = _with_network_retries(
                lambda: self._app.acquire_token_for_client(scopes=self._scopes)
            )
            if "access_token" not in result:
                raise AuthError(f"sign-in refused: {_describe(result)}")
            self._cache.save()
            token = str(result["access_token"])
            self._last = token
            self._held = (token, asked + _servable_for(result))
            return token

    def refused(self, token: str) -> None:
        with self._lock:
            if token == self._last:
                # Drop the cached app token so the next call fetches a new one.
                self._app.remove_tokens_for_client()
                self._last = None
                self._held = None


def _servable_for(result: dict[str, Any]) -> float:
    """Seconds msal would keep serving the token of ``result`` from its cache
    (0 when the answer does not say: then msal is asked every time)."""
    try:
        seconds = float(result.get("expires_in", 0)) - _MSAL_MARGIN
        refresh_on = result.get("refresh_on")
        if refresh_on is not None:
            seconds = min(seconds, float(refresh_on) - time.time())
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, seconds)


class DeviceCodeTokens:
    """Delegated tokens for one user, signed in once with a device code.

    ``prompt`` shows msal's instructions (a URL and a code) to the person at
    the terminal. ``scopes``: the delegated permissions asked for (read ones
    by default). The refresh token is kept in the token cache, so later runs
    need no sign-in until it expires.
    """

    def __init__(
        self,
        conn: Connection,
        http: requests.Session,
        prompt: Callable[[str], None],
        scopes: tuple[str, ...] = DEVICE_SCOPES,
    ) -> None:
        resource = graph_resource(conn.graph_url)
        self._scopes = [f"{resource}/{scope}" for scope in scopes]
        self._cache = _CacheFile(conn.token_cache)
        self._prompt = prompt
        self._lock = threading.Lock()
        self._last: str | None = None
        self._force = False
        self.user_id: str | None = None
        self.username: str | None = None
        self._app = msal.PublicClientApplication(
            conn.client_id,
            authority=conn.authority,
            token_cache=self._cache.cache,
            http_client=http,
            instance_discovery=False if conn.custom_authority else None,
        )

    def _remember(self, result: dict[str, Any]) -> str:
        claims = result.get("id_token_claims") or {}
        self.user_id = claims.get("oid") or self.user_id
        self.username = claims.get("preferred_username") or self.username
        self._cache.save()
        self._last = str(result["access_token"])
        self._force = False
        return self._last

    def token(self) -> str:
        with self._lock:
            for account in self._app.get_accounts():

                def silent(account: dict[str, Any] = account) -> dict[str, Any]:
                    found = self._app.acquire_token_silent_with_error(
                        self._scopes, account=account, force_refresh=self._force
                    )
                    return dict(found or {})

                result = _with_network_retries(silent)
                if "access_token" in result:
                    if not self.username:
                        self.username = account.get("username")
                    return self._remember(result)
            flow = _with_network_retries(lambda: self._app.initiate_device_flow(self._scopes))
            if "user_code" not in flow:
                raise AuthError(f"device sign-in could not start: {_describe(flow)}")
            self._prompt(str(flow.get("message") or flow["user_code"]))
            result = _with_network_retries(lambda: self._app.acquire_token_by_device_flow(flow))
            if "access_token" not in result:
                raise AuthError(f"device sign-in failed: {_describe(result)}")
            return self._remember(result)

    def refused(self, token: str) -> None:
        with self._lock:
            if token == self._last:
                self._force = True
                self._last = None


def token_source(
    conn: Connection,
    http: requests.Session,
    prompt: Callable[[str], None] | None = None,
    *,
    write: bool = False,
) -> AppTokens | DeviceCodeTokens:
    """The token source the configuration asks for; ``write``: a restore, which needs
    the delegated ReadWrite permissions (app-only tokens carry the app's roles)."""
    if conn.auth == "device_code":
        scopes = DEVICE_WRITE_SCOPES if write else DEVICE_SCOPES
        return DeviceCodeTokens(conn, http, prompt or (lambda message: None), scopes)
    return AppTokens(conn, http)
