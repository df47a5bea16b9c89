"""Graph's error answers, as the sources cited in docs/simulator.md record them, and
the class Coffer gives each (errors.classify, errors.permanent_item_error)."""

from __future__ import annotations

import pytest

from sources.m365.graph.errors import (
    AccessDenied,
    DeltaNotSupported,
    GraphError,
    ItemGone,
    MailboxUnavailable,
    ResourceLocked,
    ResyncRequired,
    TransientGraphError,
    Unreadable,
    classify,
    permanent_item_error,
)

CASES = [
    # (status, code, message, inner code) -> class
    (
        400,
        "BadRequest",
        "Parameter 'DeltaToken' not supported for this request.",
        "",
        DeltaNotSupported,
    ),
    (403, "malwareDetected", "Malware detected", "", Unreadable),
    (400, "ErrorInvalidRecipients", "One or more of the recipients are not valid.", "", Unreadable),
    (
        400,
        "ErrorCannotOpenFileAttachment",
        "OLE conversion failed for an attachment.",
        "",
        Unreadable,
    ),
    (
        404,
        "ErrorSyncFolderNotFound",
        "The folder to be synchronized could not be found.",
        "",
        ItemGone,
    ),
    (404, "ErrorItemNotFound", "The specified object was not found in the store.", "", ItemGone),
    (404, "itemNotFound", "The resource could not be found.", "", ItemGone),
    (
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        "",
        MailboxUnavailable,
    ),
    (404, "ErrorInvalidUser", "The requested user 'x' is invalid.", "", MailboxUnavailable),
    (404, "ResourceNotFound", "User's mysite not found.", "", MailboxUnavailable),
    (400, "BadRequest", "Tenant does not have a SPO license.", "", MailboxUnavailable),
    (423, "notAllowed", "Access to this site has been blocked.", "resourceLocked", ResourceLocked),
    (403, "accessDenied", "The site is read only.", "resourceLocked", ResourceLocked),
    (410, "resyncRequired", "Resync required.", "", ResyncRequired),
    (403, "ErrorAccessDenied", "Access is denied.", "", AccessDenied),
]


@pytest.mark.parametrize(("status", "code", "message", "inner", "cls"), CASES)
def test_each_answer_has_its_class(
    status: int, code: str, message: str, inner: str, cls: type[GraphError]
) -> None:
    assert type(classify(status, code, message, inner_code=inner)) is cls


def test_codes_and_messages_are_compared_without_case() -> None:
    assert isinstance(classify(403, "MALWAREDETECTED", "x"), Unreadable)
    assert isinstance(
        classify(400, "BadRequest", "tenant does not have a spo LICENSE."), MailboxUnavailable
    )


def test_permanent_failures_of_one_item() -> None:
    assert permanent_item_error(classify(403, "malwareDetected", "Malware detected"))
    assert permanent_item_error(classify(500, "generalException", "An unspecified error"))
    # Throttling and dropped connections that outlasted the retries are the service's.
    assert not permanent_item_error(TransientGraphError(429, "throttled", "still throttled"))
    assert not permanent_item_error(TransientGraphError(0, "ConnectionError", "dropped"))
    assert not permanent_item_error(classify(404, "itemNotFound", "gone"))
    assert not permanent_item_error(classify(403, "accessDenied", "no"))
