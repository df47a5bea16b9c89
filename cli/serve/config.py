"""The ``[serve]`` table of coffer.toml: where the console listens and what it reads.

    [serve]
    listen = "127.0.0.1:8765"
    users_file = "console-users.json"
    metrics_token_file = "metrics.token"
    tls_certificate = "console.crt"     # both or neither
    tls_key = "console.key"
    session_hours = 8
    login_attempts = 5                  # failures per user or address ...
    login_window_seconds = 900          # ... within this window lock it out ...
    lockout_seconds = 300               # ... for this long
    stale_hours = 26                    # an owner's last success older than this stands out

Relative paths are relative to the configuration file. Raises ConfigError
(one line naming the key) for anything malformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.errors import ConfigError
from cli.settings.config import Config

DEFAULT_LISTEN = "127.0.0.1:8765"
DEFAULT_USERS_FILE = "console-users.json"


@dataclass(frozen=True)
class ServeSettings:
    """The console's settings (see the module docstring)."""

    host: str
    port: int
    users_file: Path
    metrics_token_file: Path | None = None
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    session_seconds: int = 8 * 3600
    login_attempts: int = 5
    login_window_seconds: float = 900.0
    lockout_seconds: float = 300.0
    stale_seconds: float = 26 * 3600.0

    @property
    def tls(self) -> bool:
        return self.tls_certificate is not None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6). Raises ConfigError."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"listen address {value!r} is not HOST:PORT")
    return host, int(port)


def _number(table: dict[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"[serve] {key} must be a positive number")
    return float(value)


def _path(config: Config, table: dict[str, Any], key: str) -> Path | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"[serve] {key} must be a path")
    return config.resolve(value)


def serve_settings(config: Config, listen: str | None = None) -> ServeSettings:
    """The settings of ``config``'s ``[serve]`` table; ``listen`` overrides its address."""
    table = config.section("serve")
    known = {
        "listen",
        "users_file",
        "metrics_token_file",
        "tls_certificate",
        "tls_key",
        "session_hours",
        "login_attempts",
        "login_window_seconds",
        "lockout_seconds",
        "stale_hours",
    }
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[serve]: unknown key {unknown[0]!r}")
    address = listen or table.get("listen", DEFAULT_LISTEN)
    if not isinstance(address, str):
        raise ConfigError("[serve] listen must be a string HOST:PORT")
    host, port = parse_listen(address)
    cert, key = _path(config, table, "tls_certificate"), _path(config, table, "tls_key")
    if (cert is None) != (key is None):
        raise ConfigError("[serve] tls_certificate and tls_key go together: give both or neither")
    users = _path(config, table, "users_file") or config.resolve(DEFAULT_USERS_FILE)
    return ServeSettings(
        host=host,
        port=port,
        users_file=users,
        metrics_token_file=_path(config, table, "metrics_token_file"),
        tls_certificate=cert,
        tls_key=key,
        session_seconds=int(_number(table, "session_hours", 8) * 3600),
        login_attempts=int(_number(table, "login_attempts", 5)),
        login_window_seconds=_number(table, "login_window_seconds", 900),
        lockout_seconds=_number(table, "lockout_seconds", 300),
        stale_seconds=_number(table, "stale_hours", 26) * 3600,
    )
