"""``is_directory_entry`` and folder listings: the merge's cheap look at an encoded entry's type
must agree with decoding it, whatever the bytes (the catalogue is a local
file, hostile until checked)."""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import pytest

from store import DIRECTORY, FILE, SYMLINK, BackupRun, BlobId, Entry, IntegrityError
from store.format.paths import SEPARATOR
from store.format.tree import is_directory_entry
from tests.store.support.helpers import make_repo, snapshot_of


def _entry(name: bytes, kind: str) -> Entry:
    return Entry(
        name=name,
        type=kind,
        chunks=((BlobId(os.urandom(32)), 10),) if kind == FILE else (),
        subtree=BlobId(os.urandom(32)) if kind == DIRECTORY else None,
        target=b"elsewhere" if kind == SYMLINK else None,
        version="v1",
        attrs={"u": "root"},
    )


@pytest.mark.parametrize("length", [1, 200, 255, 256, 70_000])
@pytest.mark.parametrize("kind", [FILE, DIRECTORY, SYMLINK])
def test_the_type_read_in_place_is_the_decoded_type(kind: str, length: int) -> None:
    raw = _entry(b"n" * length, kind).encode()
    assert is_directory_entry(raw) is (kind == DIRECTORY)


def test_a_directory_named_like_the_type_marker_is_still_told_by_its_type() -> None:
    # The name itself holds the bytes of a type marker: only the position counts.
    for kind in (FILE, DIRECTORY):
        raw = _entry(b"\xa1t\xa1d\xa1t\xa1f", kind).encode()
        assert is_directory_entry(raw) is (kind == DIRECTORY)


def test_other_layouts_are_decoded_whole() -> None:
    assert is_directory_entry(msgpack.packb({"t": "d", "n": b"x"}))
    assert not is_directory_entry(msgpack.packb({"t": "f", "n": b"x"}))
    assert is_directory_entry(msgpack.packb({"n": "str-name", "t": "d"}))
    assert not is_directory_entry(msgpack.packb({"n": b"x", "t": "dir"}))
    assert not is_directory_entry(msgpack.packb([b"n", "d"]))
    assert not is_directory_entry(b"")


def test_damage_is_refused_not_guessed() -> None:
    raw = _entry(b"name", DIRECTORY).encode()
    # A name length that points past the end falls back to decoding: damage.
    lying = raw[:4] + b"\xff" + raw[5:]
    with pytest.raises(IntegrityError):
        is_directory_entry(lying)
    with pytest.raises(IntegrityError):
        is_directory_entry(raw[:6])
    with pytest.raises(IntegrityError):
        is_directory_entry(b"\xc1garbage")


def test_a_folder_listing_refuses_a_planted_catalogue_entry(tmp_path: Path) -> None:
    """The catalogue is a file on the local disk: an entry that is msgpack but
    not a map is damage named as such (it was an AttributeError)."""
    repo = make_repo(tmp_path / "repo")
    first = snapshot_of(repo, {"a/x": b"x", "a/sub/y": b"y", "b": b"b"})
    with BackupRun(repo) as run, run.owner(first.owner) as session:
        assert set(session.children("a")) == {b"x", b"sub"}  # not "sub"'s "y"
        with session.store.env.begin(write=True, db=session.store.catalogue) as txn:
            txn.put(b"a" + SEPARATOR + b"x", msgpack.packb([1, 2]))
        with pytest.raises(IntegrityError, match="catalogue entry: malformed"):
            session.children("a")
        assert set(session.children("")) == {b"a", b"b"}  # the others are unaffected
