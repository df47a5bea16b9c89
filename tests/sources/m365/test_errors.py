"""How Graph errors are classified (sources/m365/graph/errors.py, client.error_for)."""

from __future__ import annotations

import requests

from sources.m365.graph.client import error_for
from sources.m365.graph.errors import (
    AccessDenied,
    ItemGone,
    MailboxUnavailable,
    ResyncRequired,
)


def _response(status: int, body: str, headers: dict[str, str] | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = body.encode()
    resp.headers.update(headers or {})
    resp.url = "https://graph.example/v1.0/x"
    return resp


def test_error_codes_are_classified_case_insensitively() -> None:
    gone = error_for(
        _response(
            410,
            '{"error": {"code": "resyncRequired", "message": "m", "innererror": '
            '{"code": "resyncChangesApplyDifferences"}}}',
            {"Location": "https://graph.example/next"},
        )
    )
    assert isinstance(gone, ResyncRequired)
    assert gone.location == "https://graph.example/next"
    assert gone.has_code("RESYNCCHANGESAPPLYDIFFERENCES")
    nomail = error_for(_response(404, '{"error": {"code": "mailboxnotenabledforrestapi"}}'))
    assert isinstance(nomail, MailboxUnavailable)
    assert isinstance(
        error_for(_response(404, '{"error": {"code": "ErrorItemNotFound"}}')), ItemGone
    )
    assert isinstance(error_for(_response(403, '{"error": {"code": "Forbidden"}}')), AccessDenied)
    assert isinstance(
        error_for(_response(400, '{"error": {"code": "SyncStateNotFound"}}')), ResyncRequired
    )
