"""Where and how to sign in to a tenant: the connection part of ``[tenant]``.

Built by ``sources.m365.settings.from_table``; read by the sign-in (auth) and
the client. Secrets are read from their files only when needed and never
appear in ``repr`` or error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sources.m365.graph.errors import M365ConfigError

# Delegated scopes for the device-code sign-in (one's own mailbox and OneDrive).
DEVICE_SCOPES = ("Mail.Read", "Contacts.Read", "Calendars.Read", "Files.Read", "User.Read")


@dataclass(frozen=True)
class Connection:
    """Where and how to sign in. ``secret`` is loaded lazily from its file."""

    tenant_id: str
    client_id: str
    auth: str  # "app" (client credentials) or "device_code" (delegated, one's own data)
    credential: str  # "certificate" or "secret" (app auth)
    authority: str
    graph_url: str
    ca_file: Path | None
    client_secret_file: Path | None = field(default=None, repr=False)
    certificate: Path | None = None
    private_key: Path | None = field(default=None, repr=False)
    token_cache: Path | None = None
    custom_authority: bool = False

    def read_secret(self) -> str:
        """The client secret from its file (trailing newline removed)."""
        if self.client_secret_file is None:
            raise M365ConfigError("[tenant] has no client_secret_file")
        text = _read_text(self.client_secret_file, "client_secret_file").strip()
        if not text:
            raise M365ConfigError(f"client secret file {self.client_secret_file} is empty")
        return text

    def read_certificate(self) -> tuple[str, str]:
        """(private key PEM, certificate PEM)."""
        if self.certificate is None or self.private_key is None:
            raise M365ConfigError("[tenant] needs both certificate and private_key")
        return (
            _read_text(self.private_key, "private_key"),
            _read_text(self.certificate, "certificate"),
        )


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise M365ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
