"""Item groups and ``unchanged``: what a checkpoint (the base of a run after a crash)
may hold of an item that becomes several files.

A checkpoint is taken from another thread here, as a download worker's add
triggers it in a real run, while this thread is in the middle of an item.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from store import BackupRun, Owner, OwnerSession, Repository, Snapshot
from tests.store.support.helpers import make_repo, read_all

OWNER = Owner("users", "ann", "ann@example.com")


def _checkpoint_from_another_thread(session: OwnerSession) -> Snapshot:
    taken: list[Snapshot] = []
    worker = threading.Thread(target=lambda: taken.append(session.checkpoint()))
    worker.start()
    worker.join(timeout=30)
    assert taken, "the checkpoint did not complete"
    return taken[0]


def _base(repo: Repository, files: dict[str, bytes]) -> Snapshot:
    with BackupRun(repo) as run, run.owner(OWNER) as session:
        for path, content in files.items():
            session.add_item(path, content, version="v1")
        return session.commit()


def test_a_checkpoint_in_the_middle_of_a_group_holds_none_of_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    run = BackupRun(repo, checkpoint_seconds=3600)
    session = run.owner(OWNER)
    session.add_item("before.json", b"{}", version="v1")
    with session.group():
        session.add_item("t.json", b'{"id": 1}', version="v1")
        middle = _checkpoint_from_another_thread(session)
        session.add_item("t.html", b"<p>1</p>", version="v1")
    after = session.checkpoint()
    session.close()
    run.abort()  # kill -9: nothing after the last checkpoint exists
    assert read_all(repo, middle) == {"before.json": b"{}"}
    assert read_all(repo, after) == {
        "before.json": b"{}",
        "t.json": b'{"id": 1}',
        "t.html": b"<p>1</p>",
    }


def test_the_automatic_checkpoint_never_splits_a_group(tmp_path: Path) -> None:
    # An interval of zero checkpoints after every write outside a group: the JSON
    # alone would be committed before its rendering is added.
    repo = make_repo(tmp_path / "repo")
    run = BackupRun(repo, checkpoint_seconds=0.0)
    session = run.owner(OWNER)
    with session.group():
        session.add_item("t.json", b"{}", version="v1")
        assert repo.list_snapshots() == []
        session.add_item("t.html", b"<p/>", version="v1")
    snaps = repo.list_snapshots()
    session.close()
    run.abort()
    assert len(snaps) == 1
    assert snaps[0].partial
    assert set(read_all(repo, snaps[0])) == {"t.json", "t.html"}


def test_a_group_that_raises_applies_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    base = _base(repo, {"old.json": b"old"})
    with BackupRun(repo) as run, run.owner(OWNER) as session:
        with pytest.raises(RuntimeError), session.group():
            session.add_item("t.json", b"{}", version="v1")
            session.remove("old.json")
            raise RuntimeError("rendering failed")
        session.add_item("u.json", b"{}", version="v1")
        final = session.commit()
    assert read_all(repo, base) == {"old.json": b"old"}
    assert read_all(repo, final) == {"old.json": b"old", "u.json": b"{}"}


def test_a_move_in_a_group_is_at_one_place_in_every_checkpoint(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    _base(repo, {"a/x.json": b"x"})
    run = BackupRun(repo, checkpoint_seconds=3600)
    session = run.owner(OWNER)
    with session.group():
        session.add_item("b/x.json", b"x", version="v1")
        middle = _checkpoint_from_another_thread(session)
        session.remove("a/x.json")
    after = session.checkpoint()
    session.close()
    run.abort()
    assert read_all(repo, middle) == {"a/x.json": b"x"}
    assert read_all(repo, after) == {"b/x.json": b"x"}


def test_nested_groups_apply_once_at_the_outermost_end(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    run = BackupRun(repo, checkpoint_seconds=3600)
    session = run.owner(OWNER)
    with session.group():
        with session.group():
            session.add_item("t.json", b"{}", version="v1")
        session.add_item("t.ics", b"BEGIN", version="v1")
        middle = _checkpoint_from_another_thread(session)
    after = session.checkpoint()
    session.close()
    run.abort()
    assert read_all(repo, middle) == {}
    assert set(read_all(repo, after)) == {"t.json", "t.ics"}


def test_unchanged_says_false_for_a_path_the_base_does_not_have(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    _base(repo, {"t.json": b"{}"})  # its rendering never made it into the base
    with BackupRun(repo) as run, run.owner(OWNER) as session:
        assert session.unchanged("t.html", "v1") is False
        assert session.unchanged("t.json", "v2") is False
        assert session.unchanged_all(("t.json", "t.html"), "v1") is False
        session.full_scope()
        final = session.commit()
    # Nothing was marked by the refused unchanged_all: a full scope drops the JSON,
    # so a caller that ignored the False would notice at once, not lose a page.
    assert read_all(repo, final) == {}
    assert final.stats["items_unchanged"] == 0


def test_unchanged_all_keeps_an_item_and_its_companions(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    _base(repo, {"t.json": b"{}", "t.html": b"<p/>", "other": b"o"})
    with BackupRun(repo) as run, run.owner(OWNER) as session:
        session.full_scope()
        with session.group():
            assert session.unchanged_all(("t.json", "t.html"), "v1")
        final = session.commit()
    assert read_all(repo, final) == {"t.json": b"{}", "t.html": b"<p/>"}
    assert final.stats["items_unchanged"] == 2
    assert final.stats["bytes_read"] == 0


def test_no_checkpoint_splits_a_group_while_threads_write_and_checkpoint_at_once(
    tmp_path: Path,
) -> None:
    """Four writer threads store items of two files each while checkpoints are taken
    back to back from another thread: every checkpoint has each .json with its .html."""
    repo = make_repo(tmp_path / "repo")
    run = BackupRun(repo, checkpoint_seconds=3600)
    session = run.owner(OWNER)
    done = threading.Event()
    checkpoints: list[Snapshot] = []

    written = [0] * 4
    deadline = time.monotonic() + 60

    def writer(n: int) -> None:
        # Until four checkpoints were taken during the writes (and at least 40 items);
        # the pause inside the group leaves a checkpoint time to land in its middle.
        i = 0
        while (i < 40 or len(checkpoints) < 4) and time.monotonic() < deadline:
            with session.group():
                session.add_item(f"w{n}/{i}.json", f"{n}-{i}".encode(), version="v1")
                time.sleep(0.002)
                session.add_item(f"w{n}/{i}.html", f"<p>{n}-{i}</p>".encode(), version="v1")
            i += 1
        written[n] = i

    def checkpointer() -> None:
        while not done.is_set():
            checkpoints.append(session.checkpoint())

    taker = threading.Thread(target=checkpointer)
    taker.start()
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=120)
    done.set()
    taker.join(timeout=120)
    final = session.commit()
    run.close()
    assert len(checkpoints) >= 4
    # Earlier checkpoints were deleted as newer ones came: read the trees they named.
    sizes = set()
    for snapshot in [*checkpoints, final]:
        files = {p for p, e in repo.reader(snapshot).walk() if e.is_file}
        stems = {p.rsplit(".", 1)[0] for p in files}
        assert files == {f"{s}.json" for s in stems} | {f"{s}.html" for s in stems}
        sizes.add(len(files))
    assert len(sizes) >= 3  # checkpoints were taken in the middle, not only at the ends
    assert len({p for p, e in repo.reader(final).walk() if e.is_file}) == 2 * sum(written)
