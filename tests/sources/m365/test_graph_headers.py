"""The headers every Graph request carries, merged in one place (graph.py)."""

from __future__ import annotations

import re

from sources.m365.graph.client import USER_AGENT, graph_headers, make_http_session, merge_prefer


def test_preferences_are_merged_once_with_the_callers_first() -> None:
    sent = graph_headers({"prefer": 'outlook.timezone="UTC", odata.maxpagesize=100'})
    assert list(sent) == ["Prefer"]
    assert sent["Prefer"] == (
        'outlook.timezone="UTC", odata.maxpagesize=100, IdType="ImmutableId", '
        "include-unknown-enum-members"
    )
    # A preference the caller already gives is not repeated.
    again = graph_headers({"Prefer": 'IdType="ImmutableId", hierarchicalsharing'})
    assert (
        again["Prefer"] == 'IdType="ImmutableId", hierarchicalsharing, include-unknown-enum-members'
    )
    assert graph_headers(None)["Prefer"] == 'IdType="ImmutableId", include-unknown-enum-members'
    assert merge_prefer("a=1, b", "A=2", None, "c") == "a=1, b, c"


def test_the_client_identifies_itself_as_sharepoint_asks() -> None:
    # "ISV|CompanyName|AppName/Version" (Avoid getting throttled or blocked in
    # SharePoint Online, "How to decorate your http traffic").
    assert re.fullmatch(r"ISV\|Coffer\|Coffer/[0-9][0-9A-Za-z.+-]*", USER_AGENT)
    assert make_http_session(None).headers["User-Agent"] == USER_AGENT
