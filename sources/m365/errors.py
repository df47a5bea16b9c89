"""Errors of the Microsoft 365 source.

SourceError (sources.errors)
└── M365Error (1)                     anything from the Microsoft 365 side
    ├── M365ConfigError (16)          the [tenant] configuration is unusable
    ├── AuthError (1)                 sign-in failed (wrong secret, expired certificate, ...)
    └── GraphError (1)                Graph answered with an error (status, code, message)
        ├── ItemGone                  404 / 410 on one item: vanished since it was listed
        ├── AccessDenied              403 (missing permission, protected API not approved)
        ├── MailboxUnavailable        404 MailboxNotEnabledForRESTAPI / no OneDrive:
        │                             the service does not apply to this user
        ├── ResyncRequired            410 on a delta link (syncStateNotFound, resyncRequired,
        │                             SyncStateInvalid, resyncChanges*): enumerate afresh
        └── TransientGraphError       throttling, 5xx or dropped connections that outlasted
            │                         every retry
            └── AmbiguousWrite        a write whose outcome is unknown (the connection
                                      dropped, or Graph answered 5xx, after it was sent):
                                      look before sending it again

Codes are compared case-insensitively (Graph spells them ``itemNotFound`` and
``ErrorItemNotFound``, ``innerError`` and ``innererror``).
"""

from __future__ import annotations

from sources.errors import SourceError


class M365Error(SourceError):
    """Root of the Microsoft 365 source's errors."""


class M365ConfigError(M365Error):
    """The [tenant] configuration is missing something or holds a wrong value."""

    exit_code = 16


class AuthError(M365Error):
    """The identity platform refused to sign in (the message says why)."""


class GraphError(M365Error):
    """An error answer from Graph: HTTP status, error code and message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        url: str = "",
        inner_code: str = "",
        location: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.url = url
        self.inner_code = inner_code
        self.location = location
        where = f" ({_short(url)})" if url else ""
        super().__init__(f"Graph {status} {code}: {message}{where}")

    def has_code(self, *codes: str) -> bool:
        """True when the error or inner error code is one of ``codes`` (any case)."""
        mine = {self.code.lower(), self.inner_code.lower()}
        return any(code.lower() in mine for code in codes)


class ItemGone(GraphError):
    """The item does not exist (any more)."""


class AccessDenied(GraphError):
    """Graph refused access (permission missing, protected API not approved)."""


class MailboxUnavailable(GraphError):
    """The user has no usable mailbox or OneDrive (not licensed, not provisioned)."""


class ResyncRequired(GraphError):
    """A delta link is no longer valid: the collection must be enumerated afresh."""


class TransientGraphError(GraphError):
    """Throttling, server errors or dropped connections that outlasted every retry."""


class AmbiguousWrite(TransientGraphError):
    """A non-idempotent write (a POST that creates something) may or may not have been
    carried out: the connection dropped, or Graph answered 5xx, after it was sent.
    Sending it again could create a duplicate: the caller looks first."""


def _short(url: str) -> str:
    # Delta and skip tokens are long and say nothing to a person.
    base = url.split("?", 1)[0]
    return base if len(base) < 160 else base[:157] + "..."
