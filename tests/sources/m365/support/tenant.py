"""Fixtures of the Microsoft 365 tests: simulated tenants and repositories."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sources.m365.helpers import backup, init_repo
from tools.graphsim.testing import RunningTenant, running_tenant


@dataclass
class Setup:
    """A tenant, a repository for it, and a private cache."""

    tenant: RunningTenant
    root: Path

    @property
    def state(self) -> Path:
        return self.root / "sim"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def backup(self, **overrides: Any) -> dict[str, Any]:
        return backup(self.repo, self.cache, self.state, **overrides)


def make_setup(root: Path, **tenant_options: Any) -> Iterator[Setup]:
    tenant_options.setdefault("seed", 3)
    tenant_options.setdefault("throttling", False)
    with running_tenant(root / "sim", scale="small", **tenant_options) as tenant:
        init_repo(root / "repo", root / "cache").close()
        yield Setup(tenant, root)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """A fresh small tenant (rate limits off) and an empty repository."""
    yield from make_setup(tmp_path)
