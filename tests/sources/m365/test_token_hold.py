"""App tokens are held between requests and renewed where msal would renew
them (sources/m365/graph/auth.py, AppTokens): real msal, the simulator's
identity platform over HTTPS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sources.m365.graph.auth import AppTokens, token_source
from sources.m365.graph.client import make_http_session
from tests.sources.m365.support.helpers import settings_for
from tools.graphsim.testing import RunningTenant, running_tenant

pytestmark = pytest.mark.sim


@pytest.fixture
def tenant(tmp_path: Path) -> Iterator[RunningTenant]:
    with running_tenant(tmp_path / "sim", seed=3, throttling=False) as running:
        yield running


def _tokens(tmp_path: Path) -> AppTokens:
    settings = settings_for(tmp_path / "sim", certificate=None, private_key=None)
    conn = settings.connection
    source = token_source(conn, make_http_session(str(conn.ca_file) if conn.ca_file else None))
    assert isinstance(source, AppTokens)
    return source


def test_a_held_token_is_handed_out_without_asking_msal(
    tenant: RunningTenant, tmp_path: Path
) -> None:
    source = _tokens(tmp_path)
    asked: list[Any] = []
    acquire = source._app.acquire_token_for_client

    def counting(*args: Any, **kwargs: Any) -> Any:
        asked.append(args)
        return acquire(*args, **kwargs)

    source._app.acquire_token_for_client = counting  # type: ignore[method-assign]
    first = source.token()
    assert all(source.token() == first for _ in range(1000))
    assert len(asked) == 1


def test_a_token_is_renewed_where_msal_would_renew_it(
    tenant: RunningTenant, tmp_path: Path
) -> None:
    """Tokens of 303 s: msal takes one with less than five minutes left as
    expired, so after 3 s a new one is fetched. Holding the token for the
    whole of its lifetime would hand out the old one (the test fails)."""
    tenant.admin.settings(token_lifetime=303)
    source = _tokens(tmp_path)
    first = source.token()
    assert source.token() == first
    time.sleep(3.5)
    renewed = source.token()
    assert renewed != first
    assert source.token() == renewed


def test_a_refused_token_is_dropped(tenant: RunningTenant, tmp_path: Path) -> None:
    source = _tokens(tmp_path)
    first = source.token()
    source.refused("some other token")  # not the held one: kept
    assert source.token() == first
    source.refused(first)
    assert source.token() != first
