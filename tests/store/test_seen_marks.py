"""Items a full-scope run keeps by name (``OwnerSession.keep_children``, what
a folder walk calls for the unchanged files of a partly changed folder):
exactly those stay, in the top folder and below, across a checkpoint and
inside a group; the others go."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import BackupRun
from tests.store.support.helpers import make_repo, read_all, snapshot_of

FILES = {
    "top-1": b"t1",
    "top-2": b"t2",
    "a/1": b"one",
    "a/2": b"two",
    "a/3": b"three",
    "a/sub/x": b"x",
    "b/4": b"four",
}


def test_kept_names_stay_and_the_others_go(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = snapshot_of(repo, FILES)
    with BackupRun(repo) as run, run.owner(first.owner) as session:
        session.full_scope()
        session.keep_children("", [b"top-1"])  # top-2 is gone
        session.keep_children("a", [b"1", b"3"])  # 2 is gone; 3 changes below
        session.add_item("a/3", b"three, changed")
        session.keep_children("a/sub", [b"x"])
        session.keep_children("b", [b"4", b"not-there"])  # an unknown name keeps nothing
        second = session.commit()
    assert read_all(repo, second) == {
        "top-1": b"t1",
        "a/1": b"one",
        "a/3": b"three, changed",
        "a/sub/x": b"x",
        "b/4": b"four",
    }
    assert second.stats["items_unchanged"] == 6


def test_marks_made_across_a_checkpoint_add_up(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = snapshot_of(repo, FILES)
    with BackupRun(repo) as run, run.owner(first.owner) as session:
        session.full_scope()
        session.keep_children("a", [b"1"])
        session.checkpoint()  # the record is flushed; the next marks join it
        session.keep_children("a", [b"2"])
        session.keep_children("a/sub", [b"x"])
        second = session.commit()
    assert read_all(repo, second) == {"a/1": b"one", "a/2": b"two", "a/sub/x": b"x"}


def test_marks_inside_a_group_still_count(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = snapshot_of(repo, FILES)
    with BackupRun(repo) as run, run.owner(first.owner) as session:
        session.full_scope()
        with session.group():
            session.keep_children("a", [b"2"])
        session.keep_children("a", [b"1"])
        second = session.commit()
    assert read_all(repo, second) == {"a/1": b"one", "a/2": b"two"}


# -- scopes, subtrees kept whole and names kept, against a model ----------------

_FOLDERS = ["", "a", "a/b", "a/b/c", "d", "d/e"]
_TREE = {
    f"{folder}/f{i}".lstrip("/"): f"{folder}:{i}".encode() for folder in _FOLDERS for i in range(3)
}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    scopes=st.lists(st.sampled_from(_FOLDERS), max_size=2, unique=True),
    kept=st.lists(st.sampled_from(_FOLDERS[1:]), max_size=2, unique=True),
    names=st.sets(st.sampled_from(sorted(_TREE))),
    changed=st.sets(st.sampled_from(sorted(_TREE)), max_size=3),
)
def test_the_merge_keeps_what_the_model_keeps(
    tmp_path_factory: pytest.TempPathFactory,
    scopes: list[str],
    kept: list[str],
    names: set[str],
    changed: set[str],
) -> None:
    """An item stays when it was changed, or is outside every full scope, or
    lies in a subtree kept whole, or was kept by name; the others go."""
    repo = make_repo(tmp_path_factory.mktemp("repo"))
    first = snapshot_of(repo, _TREE)

    def under(path: str, folder: str) -> bool:
        return folder == "" or path.startswith(folder + "/")

    with BackupRun(repo) as run, run.owner(first.owner) as session:
        for scope in scopes:
            session.full_scope(scope)
        for folder in kept:
            session.keep_subtree(folder)
        for path in sorted(names - changed):
            folder, _, name = path.rpartition("/")
            session.keep_children(folder, [name.encode()])
        for path in sorted(changed):
            session.add_item(path, _TREE[path] + b" changed")
        second = session.commit()
    expected = {
        path: content + b" changed" if path in changed else content
        for path, content in _TREE.items()
        if path in changed
        or path in names
        or not any(under(path, scope) for scope in scopes)
        or any(under(path, folder) for folder in kept)
    }
    assert read_all(repo, second) == expected
    repo.close()
