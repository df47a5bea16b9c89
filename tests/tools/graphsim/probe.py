"""A minimal Graph client for the conformance probe: plain requests, nothing of Coffer.

It follows `@odata.nextLink` verbatim until a page without one, and ends delta rounds at
`@odata.deltaLink`, as Microsoft documents (paging.md, delta-query-overview.md).
"""

from __future__ import annotations

import time
from typing import Any

import requests


def get(session: requests.Session, url: str, **kw: Any) -> dict[str, Any]:
    """GET a JSON page, waiting out 429/503 as Retry-After says (throttling.md)."""
    for _ in range(20):
        resp = session.get(url, timeout=60, **kw)
        if resp.status_code in (429, 503) and "Retry-After" in resp.headers:
            time.sleep(float(resp.headers["Retry-After"]))
            continue
        break
    assert resp.status_code == 200, f"GET {url}: {resp.status_code} {resp.text[:500]}"
    return dict(resp.json())


def collect(
    session: requests.Session, url: str, *, page_size: int | None = None
) -> list[dict[str, Any]]:
    """Every item of a collection, following nextLinks."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else {}
    out: list[dict[str, Any]] = []
    next_url: str | None = url
    pages = 0
    while next_url:
        page = get(session, next_url, headers=headers)
        out.extend(page["value"])
        next_url = page.get("@odata.nextLink")
        pages += 1
        assert pages < 10_000
    return out


def delta_round(
    session: requests.Session, url: str, *, page_size: int | None = None
) -> tuple[list[dict[str, Any]], str, int]:
    """One delta round: (items, deltaLink, pages)."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else {}
    out: list[dict[str, Any]] = []
    next_url = url
    pages = 0
    while True:
        page = get(session, next_url, headers=headers)
        pages += 1
        out.extend(page["value"])
        if "@odata.deltaLink" in page:
            assert "@odata.nextLink" not in page
            return out, str(page["@odata.deltaLink"]), pages
        next_url = str(page["@odata.nextLink"])
        assert pages < 10_000
