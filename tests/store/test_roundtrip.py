"""Whatever goes in comes out byte-exact, through the whole engine."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import BackupRun, BlobId, Owner, Repository
from tests.store.support.helpers import make_repo, read_all, reopen, snapshot_of

names = st.text(
    alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
).filter(lambda n: n not in (".", ".."))
paths = st.lists(names, min_size=1, max_size=3).map("/".join)


def _random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


contents = st.one_of(
    st.binary(max_size=3000),
    st.builds(_random_bytes, st.integers(), st.integers(20_000, 80_000)),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=40), st.integers(1, 3000)),
)


def _consistent(files: dict[str, bytes]) -> dict[str, bytes]:
    """Drop paths that are also a parent of another path (a file cannot be a folder)."""
    keys = sorted(files)
    return {k: v for k, v in files.items() if not any(o.startswith(k + "/") for o in keys)}


@pytest.fixture(scope="module")
def shared_repo(tmp_path_factory: pytest.TempPathFactory) -> Repository:
    return make_repo(tmp_path_factory.mktemp("hyp") / "repo", small=True, pack_size=64 * 1024)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.dictionaries(paths, contents, min_size=1, max_size=12))
def test_any_bytes_round_trip(shared_repo: Repository, files: dict[str, bytes]) -> None:
    files = _consistent(files)
    owner = Owner("folders", f"hyp:{len(files)}", "hyp")
    snapshot = snapshot_of(shared_repo, files, owner)
    assert read_all(shared_repo, snapshot) == files


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.builds(_random_bytes, st.integers(), st.integers(0, 200_000)),
    st.lists(st.tuples(st.integers(0, 200_000), st.integers(0, 50_000)), max_size=8),
)
def test_seek_and_read_any_range(
    shared_repo: Repository, data: bytes, ranges: list[tuple[int, int]]
) -> None:
    snapshot = snapshot_of(shared_repo, {"f": data}, Owner("folders", "seek", "seek"))
    reader = shared_repo.reader(snapshot).open("f")
    for offset, length in ranges:
        assert reader.pread(offset, length) == data[offset : offset + length]
        reader.seek(offset)
        assert reader.read(length) == data[offset : offset + length]


def test_segments_dedupe_shared_parts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", small=True)
    attachment = random.Random(7).randbytes(100_000)  # shared by two "mails"
    with BackupRun(repo) as run, run.owner(Owner("users", "u1", "u1")) as session:
        session.add_item("a.eml", [b"From: a\r\n\r\n", attachment, b"--end a"])
        session.commit()
    stored_after_one = run.writer.stats.bytes_new_raw
    with BackupRun(repo) as run, run.owner(Owner("users", "u2", "u2")) as session:
        session.add_item("b.eml", [b"From: someone else entirely\r\n\r\n", attachment, b"--b"])
        snap = session.commit()
    assert stored_after_one > len(attachment)
    # The second mail adds only its own headers and trailer (plus tree pages).
    assert run.writer.stats.bytes_new_raw < 4096
    assert (
        read_all(repo, snap)["b.eml"]
        == b"From: someone else entirely\r\n\r\n" + attachment + b"--b"
    )


def test_full_scope_removes_what_was_not_seen(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = snapshot_of(repo, {"a/1": b"one", "a/2": b"two", "b/3": b"three"})
    with BackupRun(repo) as run, run.owner(first.owner) as session:
        session.full_scope()
        entry = session.entry("a/1")
        assert entry is not None
        assert entry.version is not None
        assert session.unchanged("a/1", entry.version)
        session.add_item("c/4", b"four")
        second = session.commit()
    assert read_all(repo, second) == {"a/1": b"one", "c/4": b"four"}
    assert second.parent == first.snapshot_id
    assert second.stats["items_removed"] >= 2
    assert read_all(repo, first) == {"a/1": b"one", "a/2": b"two", "b/3": b"three"}


def test_delta_session_keeps_what_it_does_not_mention(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = snapshot_of(repo, {f"mail/inbox/{i}.eml": f"m{i}".encode() for i in range(500)})
    with BackupRun(repo) as run, run.owner(first.owner) as session:
        session.remove("mail/inbox/7.eml")
        session.add_item("mail/inbox/new.eml", b"new")
        session.add_item("mail/sent/1.eml", b"sent", item_id="ID-1")
        second = session.commit()
    expected = {f"mail/inbox/{i}.eml": f"m{i}".encode() for i in range(500) if i != 7}
    expected["mail/inbox/new.eml"] = b"new"
    expected["mail/sent/1.eml"] = b"sent"
    assert read_all(repo, second) == expected
    # A third run finds the item by its source ID and moves it.
    with BackupRun(repo) as run, run.owner(first.owner) as session:
        assert session.lookup_id("ID-1") == "mail/sent/1.eml"
        session.add_item("mail/archive/1.eml", reuse_content_of="mail/sent/1.eml", item_id="ID-1")
        session.remove("mail/sent/1.eml")
        third = session.commit()
    files = read_all(repo, third)
    assert files["mail/archive/1.eml"] == b"sent"
    assert "mail/sent/1.eml" not in files
    # Unchanged folders keep their tree: the inbox page IDs are shared.
    reader2, reader3 = repo.reader(second), repo.reader(third)
    assert reader2.stat("mail/inbox").subtree == reader3.stat("mail/inbox").subtree


def test_directory_replaced_by_file_and_back(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = snapshot_of(repo, {"x/a": b"a", "x/b": b"b", "y": b"y"})
    with BackupRun(repo) as run, run.owner(first.owner) as session:
        session.add_item("x", b"now a file")
        session.remove("y")
        session.add_item("y/inside", b"now a folder")
        second = session.commit()
    assert read_all(repo, second) == {"x": b"now a file", "y/inside": b"now a folder"}


def test_directories_and_symlinks_keep_metadata(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with BackupRun(repo) as run, run.owner(Owner("folders", "m", "m")) as session:
        session.add_directory("d", mode=0o750, mtime_ns=123_456_789_012, attrs={"k": "v"})
        session.add_item("d/f", b"x", mode=0o600, mtime_ns=42)
        session.add_directory("empty", mode=0o700, mtime_ns=7)
        session.add_symlink("l", b"../somewhere", mtime_ns=9)
        snap = session.commit()
    reader = repo.reader(snap)
    d = reader.stat("d")
    assert (d.mode, d.mtime_ns, d.attrs) == (0o750, 123_456_789_012, {"k": "v"})
    assert (reader.stat("d/f").mode, reader.stat("d/f").mtime_ns) == (0o600, 42)
    assert list(reader.listdir("empty")) == []
    assert reader.stat("l").target == b"../somewhere"


def _all_pages(repo: Repository, page_id: BlobId) -> tuple[set[BlobId], int]:
    """Every page ID of a directory's tree and the number of leaves."""
    page = repo.tree_reader.page(page_id)
    if page.children is None:
        return {page_id}, 1
    pages, leaves = {page_id}, 0
    for _first, child, _count in page.children:
        child_pages, child_leaves = _all_pages(repo, child)
        pages |= child_pages
        leaves += child_leaves
    return pages, leaves


def test_large_folder_pages_and_lookup(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    files = {f"big/{i:06d}.eml": str(i).encode() for i in range(20_000)}
    snap = snapshot_of(repo, files)
    reader = repo.reader(snap)
    root = reader.stat("big").subtree
    assert root is not None
    old_pages, leaves = _all_pages(repo, root)
    assert leaves > 50  # paged, not one blob
    assert repo.tree_reader.count(root) == 20_000
    assert reader.open("big/013370.eml").read() == b"13370"
    names = [e.display_name for e in reader.listdir("big", after=b"019997.eml")]
    assert names == ["019998.eml", "019999.eml"]
    assert len(list(reader.listdir("big", after=b"009999.eml"))) == 10_000
    # Adding one item rewrites one page per level: the rest are shared.
    with BackupRun(repo) as run, run.owner(snap.owner) as session:
        session.add_item("big/010000a.eml", b"x")
        second = session.commit()
    new_root = repo.reader(second).stat("big").subtree
    assert new_root is not None
    new_pages, _ = _all_pages(repo, new_root)
    assert len(new_pages - old_pages) <= 4
    assert repo.reader(second).open("big/010000a.eml").read() == b"x"


def test_catalogue_rebuilt_when_cache_is_lost(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = snapshot_of(repo, {"a": b"1", "b": b"2"})
    repo = reopen(repo, cache=tmp_path / "fresh-cache")  # a new machine
    with BackupRun(repo) as run, run.owner(first.owner) as session:
        session.full_scope()
        entry = session.entry("a")
        assert entry is not None
        assert entry.version is not None
        assert session.unchanged("a", entry.version)
        second = session.commit()
    assert read_all(repo, second) == {"a": b"1"}
    assert second.stats["bytes_read"] == 0


def test_checkpoint_then_resume(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    owner = Owner("folders", "cp", "cp")
    run = BackupRun(repo, checkpoint_seconds=3600)
    session = run.owner(owner)
    session.full_scope()
    for i in range(50):
        session.add_item(f"f{i}", f"content {i}".encode(), version="v")
    session.set_sync_state(b"position-50")
    checkpoint = session.checkpoint()
    for i in range(50, 60):
        session.add_item(f"f{i}", b"never committed", version="v")
    session.close()
    run.abort()  # the process dies here
    assert checkpoint.partial
    snaps = repo.list_snapshots()
    assert [s.partial for s in snaps] == [True]
    # The next run resumes from the checkpoint: what it holds is not read again.
    with BackupRun(repo) as run2, run2.owner(owner) as session2:
        assert session2.parent is not None
        assert session2.parent.snapshot_id == checkpoint.snapshot_id
        assert session2.sync_state == b"position-50"
        session2.full_scope()
        for i in range(60):
            if not session2.unchanged(f"f{i}", "v"):
                session2.add_item(f"f{i}", f"content {i}".encode(), version="v")
        final = session2.commit()
    assert final.stats["items_unchanged"] == 50
    assert read_all(repo, final) == {f"f{i}": f"content {i}".encode() for i in range(60)}
    # The checkpoint was superseded and removed.
    assert [s.partial for s in repo.list_snapshots()] == [False]


def test_keep_subtree_skips_unchanged_folders(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    files = {f"a/{i}": b"a" for i in range(50)} | {f"b/{i}": b"b" for i in range(50)}
    first = snapshot_of(repo, files)
    with BackupRun(repo) as run, run.owner(first.owner) as session:
        session.full_scope()
        children = session.children("a")
        assert len(children) == 50
        assert children[b"7"][0] == "f"
        session.keep_subtree("a", items=50)
        session.add_item("b/new", b"new")  # "b" is enumerated: its old items go
        second = session.commit()
    assert read_all(repo, second) == {f"a/{i}": b"a" for i in range(50)} | {"b/new": b"new"}
    assert repo.reader(second).stat("a").subtree == repo.reader(first).stat("a").subtree
    assert second.stats["items_unchanged"] == 50
