"""Errors of the Microsoft 365 source.

SourceError (sources.errors)
└── M365Error (1)                     anything from the Microsoft 365 side
    ├── M365ConfigError (16)          the [tenant] configuration is unusable
    ├── AuthError (1)                 sign-in failed (wrong secret, expired certificate, ...)
    └── GraphError (1)                Graph answered with an error (status, code, message)
        ├── ItemGone                  404 (itemNotFound, ErrorItemNotFound,
        │                             ErrorSyncFolderNotFound) on a folder or item that
        │                             existed when the round started: deleted in flight
        ├── AccessDenied              403 (missing permission, protected API not approved)
        ├── MailboxUnavailable        the service does not apply to this user or tenant:
        │                             MailboxNotEnabledForRESTAPI (on-premises, inactive),
        │                             ErrorInvalidUser, ResourceNotFound "mysite not
        │                             found" (no OneDrive), 400 "Tenant does not have a
        │                             SPO license" (a mail-only tenant)
        ├── ResourceLocked            423 / innerError resourceLocked / notAllowed: a site
        │                             an administrator locked (no access)
        ├── DeltaNotSupported         400 "Parameter 'DeltaToken' not supported for this
        │                             request": a Teams channel without messages
        ├── Unreadable                an item that can never be read: malwareDetected,
        │                             ErrorInvalidRecipients, ErrorCannotOpenFileAttachment
        ├── ResyncRequired            410 on a delta link (syncStateNotFound, resyncRequired,
        │                             SyncStateInvalid, resyncChanges*): enumerate afresh
        └── TransientGraphError       throttling, 5xx or dropped connections that outlasted
            │                         every retry
            └── AmbiguousWrite        a write whose outcome is unknown (the connection
                                      dropped, or Graph answered 5xx, after it was sent):
                                      look before sending it again

Codes are compared case-insensitively (Graph spells them ``itemNotFound`` and
``ErrorItemNotFound``, ``innerError`` and ``innererror``). :func:`classify` turns
an answer into its class; :func:`permanent_item_error` says whether a failure
reading one item's content will recur (the item is recorded as failed and the
delta link moves on) or is the service's trouble (the link is held back). The
codes and their sources are listed in docs/simulator.md ("Behaviours").
"""

from __future__ import annotations

from sources.errors import SourceError
from store import ExitCode


class M365Error(SourceError):
    """Root of the Microsoft 365 source's errors."""


class M365ConfigError(M365Error):
    """The [tenant] configuration is missing something or holds a wrong value."""

    exit_code = ExitCode.CONFIG


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


class ResourceLocked(GraphError):
    """The site is locked by an administrator (Lock status NoAccess): nothing in it
    can be read until it is unlocked."""


class DeltaNotSupported(GraphError):
    """Graph refuses a delta query for this collection (a Teams channel that never
    had a message): list it instead."""


class Unreadable(GraphError):
    """Graph will never hand out this item's content (malware, an item Exchange
    cannot open): a permanent failure of the item, not of the service."""


GONE_CODES = (
    "syncStateNotFound",
    "resyncRequired",
    "SyncStateInvalid",
    "resyncChangesApplyDifferences",
    "resyncChangesUploadDifferences",
)
NOT_APPLICABLE_CODES = (
    "MailboxNotEnabledForRESTAPI",
    "MailboxNotSupportedForRESTAPI",
    "ResourceNotFound",  # "User's mysite not found": no OneDrive provisioned
    "ErrorMailboxNotFound",
    "ErrorInvalidUser",  # Corso: some datacentres answer it for a user without a mailbox
)
NO_SPO_LICENSE = "tenant does not have a spo license"
DELTA_NOT_SUPPORTED = "parameter 'deltatoken' not supported"
UNREADABLE_CODES = ("malwareDetected", "ErrorInvalidRecipients", "ErrorCannotOpenFileAttachment")
GONE_ITEM_CODES = ("itemNotFound", "ErrorItemNotFound", "ErrorSyncFolderNotFound")
LOCKED_CODES = ("resourceLocked", "notAllowed")


def classify(
    status: int,
    code: str,
    message: str,
    *,
    url: str = "",
    inner_code: str = "",
    location: str | None = None,
) -> GraphError:
    """The class of a Graph error answer (see the tree above). Pure function."""
    args: dict[str, str] = {"url": url, "inner_code": inner_code}
    probe = GraphError(status, code, message, **args)
    text = message.lower()
    if status == 410 or probe.has_code(*GONE_CODES):
        return ResyncRequired(status, code, message, location=location, **args)
    if (probe.has_code(*NOT_APPLICABLE_CODES) and status in (400, 403, 404)) or (
        NO_SPO_LICENSE in text and status in (400, 403)
    ):
        return MailboxUnavailable(status, code, message, **args)
    if status == 423 or (status in (403, 409) and probe.has_code(*LOCKED_CODES)):
        return ResourceLocked(status, code, message, **args)
    if status == 400 and DELTA_NOT_SUPPORTED in text:
        return DeltaNotSupported(status, code, message, **args)
    if probe.has_code(*UNREADABLE_CODES):
        return Unreadable(status, code, message, **args)
    if status == 404 or (status == 400 and probe.has_code(*GONE_ITEM_CODES)):
        return ItemGone(status, code, message, **args)
    if status == 403:
        return AccessDenied(status, code, message, **args)
    return probe


def permanent_item_error(exc: GraphError) -> bool:
    """Whether a failure to read one item's content is the item's own and will recur:
    Graph refuses the item itself (Unreadable), or the item alone keeps answering a
    server error after every retry while the collection around it reads fine (a
    corrupt item). Throttling and dropped connections are the service's trouble.
    Such an item is recorded as failed, retried a few later runs, and does not hold
    back its collection's delta link."""
    if isinstance(exc, Unreadable):
        return True
    if isinstance(exc, TransientGraphError):
        return False
    return type(exc) is GraphError and exc.status >= 500


def _short(url: str) -> str:
    # Delta and skip tokens are long and say nothing to a person.
    base = url.split("?", 1)[0]
    return base if len(base) < 160 else base[:157] + "..."
