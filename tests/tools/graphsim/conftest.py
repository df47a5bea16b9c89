"""Fixtures: simulated tenants over real HTTPS (no mocks).

`tenant` is shared by the tests of a module that only read, or that make changes they
account for; tests that need a pristine tenant start their own with `fresh_tenant`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.graphsim.testing import RunningTenant, running_tenant


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTenant]:
    # Rate limits off so reading everything stays fast; throttling has its own tests.
    with running_tenant(tmp_path_factory.mktemp("tenant"), seed=3, throttling=False) as t:
        yield t


@pytest.fixture
def fresh_tenant(tmp_path: Path) -> Iterator[RunningTenant]:
    with running_tenant(tmp_path / "tenant", seed=5) as t:
        yield t
