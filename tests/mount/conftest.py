"""Fixtures of the mount tests: the corpus repository, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mount.support.corpus import Corpus, build_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def fresh_cache(tmp_path: Path) -> Path:
    """A cache directory of its own (an LMDB environment is opened once per process)."""
    return tmp_path / "cache"
