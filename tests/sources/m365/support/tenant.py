"""A simulated tenant with a repository for it (the ``setup`` fixture of conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.sources.m365.support.helpers import backup, init_repo
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
