"""A folder rerun after partial changes gives exactly the tree a fresh backup
of the same folder gives (issue 14: unchanged items of a partly changed folder
are kept by name, not looked up and decoded one by one)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from sources.folder import backup_folder
from store import BackupRun, Owner, Repository, Snapshot
from store.backup.merge import _under_any
from store.format.paths import is_under
from tests.store.support.helpers import make_repo, read_all

FRESH = Owner("folders", "fresh", "fresh")


def _make_tree(root: Path, rng: random.Random) -> None:
    for folder in range(4):
        path = root / f"d{folder}"
        path.mkdir(parents=True)
        for number in range(40):
            (path / f"{number:03d}.eml").write_bytes(rng.randbytes(rng.randrange(10, 3000)))
    (root / "d0" / "sub").mkdir()
    for number in range(10):
        (root / "d0" / "sub" / f"s{number}").write_bytes(rng.randbytes(100))
    (root / "d1" / "link").symlink_to("000.eml")
    (root / "gone").mkdir()
    (root / "gone" / "x").write_bytes(b"x")


def _change(root: Path, rng: random.Random) -> int:
    """Change parts of some folders; returns how many items stayed unchanged."""
    d0 = sorted((root / "d0").glob("*.eml"))
    changed = rng.sample(d0, 3)
    for path in changed:
        with open(path, "ab") as handle:
            handle.write(b"changed")
    removed = rng.sample([p for p in d0 if p not in changed], 2)
    for path in removed:
        path.unlink()
    (root / "d0" / "new.eml").write_bytes(b"new")
    (root / "d0" / "sub" / "s3").unlink()
    (root / "d1" / "005.eml").chmod(0o600)  # metadata only: a new version
    (root / "d1" / "link").unlink()
    (root / "d1" / "link").symlink_to("001.eml")
    (root / "d2" / "007.eml").unlink()
    (root / "d2" / "007.eml").mkdir()  # a file replaced by a folder
    (root / "d2" / "007.eml" / "inside").write_bytes(b"inside")
    (root / "d2" / "008.eml").unlink()
    os.mkfifo(root / "d2" / "008.eml")  # a file replaced by a FIFO: skipped, gone
    (root / "gone" / "x").unlink()
    (root / "gone").rmdir()
    # d3 untouched (kept whole); d0: 40 - 3 changed - 2 removed; d0/sub: 9;
    # d1: 40 files and a link, 2 changed; d2: 40 - 2.
    return 40 + 35 + 9 + 39 + 38


def _backup(repo: Repository, root: Path, owner: Owner | None = None) -> Snapshot:
    with BackupRun(repo) as run:
        return backup_folder(run, root, owner=owner, processes=0).snapshot


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_partial_rerun_gives_the_tree_of_a_fresh_backup(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "data"
    _make_tree(root, rng)
    repo = make_repo(tmp_path / "repo", small=True)
    first = _backup(repo, root)
    unchanged = _change(root, rng)
    rerun = _backup(repo, root)
    fresh = _backup(repo, root, FRESH)
    assert rerun.tree == fresh.tree  # same entries, same pages, same blob IDs
    assert rerun.stats["items_unchanged"] == unchanged
    assert rerun.stats["items_removed"] == 2 + 1 + 1 + 1 + 1  # d0 x2, s3, 008, gone/x, 007
    expected = {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink()
    }
    assert read_all(repo, rerun) == expected
    # The untouched folder's subtree is the first run's, not rewritten.
    assert repo.reader(rerun).stat("d3").subtree == repo.reader(first).stat("d3").subtree


def test_a_second_rerun_after_a_partial_one_changes_nothing(tmp_path: Path) -> None:
    rng = random.Random(9)
    root = tmp_path / "data"
    _make_tree(root, rng)
    repo = make_repo(tmp_path / "repo", small=True)
    _backup(repo, root)
    _change(root, rng)
    rerun = _backup(repo, root)
    again = _backup(repo, root)
    assert again.tree == rerun.tree
    assert again.stats["items_new"] == again.stats["items_changed"] == 0
    assert again.stats["items_removed"] == 0


def test_under_any_agrees_with_is_under() -> None:
    rng = random.Random(4)
    names = [b"a", b"b", b"ab", b"a\x01", b"c"]
    for _ in range(2000):
        key = b"\x00".join(rng.choice(names) for _ in range(rng.randrange(1, 5)))
        prefixes = frozenset(
            b"\x00".join(rng.choice(names) for _ in range(rng.randrange(0, 4)))
            for _ in range(rng.randrange(0, 4))
        )
        assert _under_any(key, prefixes) == any(is_under(key, p) for p in prefixes)
