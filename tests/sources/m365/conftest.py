"""Fixtures of the Microsoft 365 tests: simulated tenants and repositories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sources.m365.support.tenant import Setup, make_setup


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """A fresh small tenant (rate limits off) and an empty repository."""
    yield from make_setup(tmp_path)
