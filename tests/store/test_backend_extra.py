"""Edge cases of the backend contract that the base conformance suite leaves out.

``ExtraConformance`` is mixed into every backend's test class next to
``BackendConformance``; here it runs against the local backend, which
defines the reference behaviour.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from store.backend import Backend, LocalBackend
from store.errors import ObjectNotFound


class ExtraConformance:
    """Ranges at the edges, missing objects in every form, prefix matching."""

    def test_ranges_at_and_past_the_end(self, backend: Backend) -> None:
        backend.put("data/00/edge", b"0123456789")
        assert backend.get("data/00/edge", 9, 1) == b"9"
        assert backend.get("data/00/edge", 10) == b""
        assert backend.get("data/00/edge", 10, 5) == b""
        assert backend.get("data/00/edge", 50) == b""
        assert backend.get("data/00/edge", 3, 0) == b""
        assert backend.get("data/00/edge", 0, 10) == b"0123456789"

    def test_ranges_of_an_empty_object(self, backend: Backend) -> None:
        backend.put("index/empty", b"")
        assert backend.get("index/empty", 0, 10) == b""
        assert backend.get("index/empty", 3) == b""

    def test_missing_objects_in_every_form(self, backend: Backend) -> None:
        backend.put("data/00/present", b"x")
        for offset, length in ((0, None), (5, 10), (0, 0), (5, None)):
            with pytest.raises(ObjectNotFound):
                backend.get("data/00/missing", offset, length)
        # A "directory" that holds objects is not an object itself.
        for key in ("data", "data/00"):
            with pytest.raises(ObjectNotFound):
                backend.get(key)
            with pytest.raises(ObjectNotFound):
                backend.stat(key)
            assert not backend.exists(key)

    def test_list_prefix_is_a_string_prefix(self, backend: Backend) -> None:
        for key in ("data/00/a", "data/01/b", "data/10/c", "index/x"):
            backend.put(key, b"1")
        assert {info.key for info in backend.list("data/0")} == {"data/00/a", "data/01/b"}
        assert [info.key for info in backend.list("data/00/a")] == ["data/00/a"]
        assert list(backend.list("data/00/ab")) == []
        assert list(backend.list("dat/")) == []

    def test_overwrite_with_shorter_content(self, backend: Backend) -> None:
        backend.put("keys/k", b"a much longer first version")
        backend.put("keys/k", b"short")
        assert backend.get("keys/k") == b"short"
        assert [(i.key, i.size) for i in backend.list("keys/")] == [("keys/k", 5)]


class TestLocalExtra(ExtraConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        return LocalBackend(tmp_path / "repo")
