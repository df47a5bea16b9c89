"""The local-directory backend: the conformance suite plus what only local disks do."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.backend import Backend, LocalBackend, open_backend
from tests.store.support.backend_conformance import BackendConformance


class TestLocalBackend(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        backend = LocalBackend(tmp_path / "repo")
        yield backend
        backend.close()


def test_put_leaves_no_temporary_files(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.put("data/aa/x", b"content")
    names = [name for _, _, files in os.walk(tmp_path) for name in files]
    assert names == ["x"]
    assert (tmp_path / "data/aa/x").stat().st_mode & 0o777 == 0o600


def test_stale_temporary_files_are_not_listed(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.put("data/aa/x", b"content")
    (tmp_path / "data/aa/.tmp-deadbeef").write_bytes(b"half written")
    assert [info.key for info in backend.list("data/")] == ["data/aa/x"]


def test_open_backend_urls(tmp_path: Path) -> None:
    assert isinstance(open_backend(str(tmp_path)), LocalBackend)
    assert open_backend(f"local:{tmp_path}").location == str(tmp_path)
    with pytest.raises(ValueError, match="unknown repository scheme"):
        open_backend("nosuch:bucket/prefix")
