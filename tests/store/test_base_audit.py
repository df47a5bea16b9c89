"""OwnerSession on a base that names blobs in no index (store/backup/audit.py), through
the engine API on a real repository: the sync state, and what the audit costs.

The CLI tests (tests/cli/test_lost_blobs.py) plant lost packs under folder backups; a
folder has no sync state, which Microsoft 365 owners have (their delta links): here a
checkpoint's sync state is in a lost pack. Without the audit the session did not even
open ("blob ... is not in any index"), on every run.
"""

from __future__ import annotations

import time
from pathlib import Path

from store import BackupRun, Owner, Repository
from store.backup.audit import audit_base
from store.cache.catalogue import OwnerStore
from store.ids import TREE, BlobId
from tests.cli.test_lost_blobs import lose
from tests.store.support.helpers import make_repo

OWNER = Owner("users", "u-1", "ada@example.com")


def _named_blobs(repo: Repository, snapshot_tree: BlobId) -> set[BlobId]:
    """Every blob a snapshot's tree names (pages and chunks)."""
    out: set[BlobId] = set()
    stack = [snapshot_tree]
    while stack:
        page = stack.pop()
        out.add(page)
        for entry in repo.tree_reader.entries(page):
            out.update(chunk for chunk, _ in entry.chunks)
            if entry.subtree is not None:
                stack.append(entry.subtree)
    return out


def test_a_checkpoint_whose_sync_state_is_lost_resumes_with_a_full_enumeration(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", cache=tmp_path / "cache")
    try:
        with BackupRun(repo) as run:
            session = run.owner(OWNER)
            session.add_item("mail/a.eml", b"alpha " * 500, version="v1")
            session.add_item("mail/b.eml", b"beta " * 500, version="v1")
            session.set_sync_state(b'{"delta": "https://graph/delta?token=1"}')
            checkpoint = session.checkpoint()
            session.close()  # killed: never committed
        assert checkpoint.partial
        assert checkpoint.sync
        # The tree pack holds the sync state (and the checkpoint's pages); the items'
        # chunks are in a data pack that stays.
        lose(repo, checkpoint.sync)

        with BackupRun(repo) as run:
            session = run.owner(OWNER)
            assert session.sync_state is None  # the source enumerates everything
            assert session.base_warning is not None
            assert "checkpoint" in session.base_warning
            assert "users/" in session.base_warning
            # The items' content is all there: they are reused, not read again.
            assert session.unchanged("mail/a.eml", "v1")
            assert session.unchanged("mail/b.eml", "v1")
            assert session.stats.extra["base_reread"] == 0
            snapshot = session.commit()
        assert not snapshot.partial
        for blob_id in _named_blobs(repo, snapshot.tree):
            assert repo.blob_index.contains(blob_id), blob_id.hex()
        reader = repo.reader(snapshot)
        files = {
            path: reader.open(entry).read() for path, entry in reader.walk("") if entry.is_file
        }
        assert files == {"mail/a.eml": b"alpha " * 500, "mail/b.eml": b"beta " * 500}
    finally:
        repo.close()


def test_a_clean_base_is_reused_and_the_audit_costs_one_pass(tmp_path: Path) -> None:
    """No warning on a healthy base; the audit of 20,000 items is timed (printed)."""
    repo = make_repo(tmp_path / "repo", cache=tmp_path / "cache")
    try:
        with BackupRun(repo) as run:
            session = run.owner(OWNER)
            for i in range(20_000):
                session.add_item(f"f/{i // 1000}/{i}.txt", b"%d" % i, version="1")
            session.set_sync_state(b"state")
            session.commit()
        with BackupRun(repo) as run:
            session = run.owner(OWNER)
            assert session.base_warning is None
            assert session.sync_state == b"state"
            assert "base_reread" not in session.stats.extra
            store: OwnerStore = session.store
            parent = session.parent
            assert parent is not None
            started = time.process_time()
            audit = audit_base(repo, store, parent.sync)
            took = time.process_time() - started
            session.close()
        assert audit.clean
        assert not audit.items
        assert not audit.directories
        print(f"audit of 20,000 items: {took:.3f} s of CPU")
        # The loaded value of a sync blob is a tree blob: the type check stays.
        assert repo.load_blob(parent.sync[0], TREE) == b"state"
    finally:
        repo.close()


def _split_inbox(tmp_path: Path) -> tuple[Repository, BlobId]:
    """A repository whose 3,000-item folder is split into leaf pages, one of them in
    another pack than the root page; returns it and that leaf. Where the folder is
    cut depends on the repository's keys (content-defined splitting, FORMAT.md §8):
    about one repository in five cut it into two leaves that shared the root's
    pack, so fresh repositories are tried until one has the shape."""
    for attempt in range(12):
        repo = make_repo(
            tmp_path / f"repo{attempt}", cache=tmp_path / f"cache{attempt}", pack_size=4096
        )
        with BackupRun(repo) as run:
            session = run.owner(OWNER)
            for i in range(3000):
                session.add_item(f"inbox/{i:05d}.eml", b"message %d" % i, version="1")
            base = session.commit()
        entry = repo.tree_reader.lookup(base.tree, b"inbox")
        assert entry is not None
        assert entry.subtree is not None
        root = repo.tree_reader.page(entry.subtree)
        assert root.children is not None  # split: an interior page over leaves
        root_pack = repo.blob_index.lookup(entry.subtree)
        assert root_pack is not None
        for _, page_id, _ in root.children:
            where = repo.blob_index.lookup(page_id)
            if where is not None and where.pack_id != root_pack.pack_id:
                return repo, page_id
        repo.close()
    raise AssertionError("no repository split the folder with a leaf outside the root's pack")


def test_a_lost_leaf_page_of_a_large_directory_is_written_again(tmp_path: Path) -> None:
    """A directory of 3,000 items is split into leaf pages under an interior root page
    (FORMAT.md §8); the audit sees the root page (indexed here) but not the leaves.
    One leaf's pack is lost (the index rewritten without it, so the blob index is
    rebuilt: a new generation): the next commit must write the directory's pages
    again instead of reusing the root that names the lost leaf. Without the
    generation rule the new snapshot named the lost page."""
    repo, leaf = _split_inbox(tmp_path)
    try:
        lose(repo, [leaf])
        with BackupRun(repo) as run:
            session = run.owner(OWNER)
            assert session.base_warning is None  # the audit cannot see a leaf
            for i in range(3000):
                assert session.unchanged(f"inbox/{i:05d}.eml", "1")
            snapshot = session.commit()
        for blob_id in _named_blobs(repo, snapshot.tree):
            assert repo.blob_index.contains(blob_id), blob_id.hex()
        reader = repo.reader(snapshot)
        assert sum(1 for _, e in reader.walk("") if e.is_file) == 3000
    finally:
        repo.close()


def test_a_folder_whose_items_were_all_lost_is_not_kept_as_complete(tmp_path: Path) -> None:
    """A source keeps a folder whose version is unchanged (a group conversation:
    sources/m365/backup/groups.py). When the audit forgot every item in it, the
    folder must no longer carry that version, or it was kept empty: the new
    snapshot silently lacked the items (test_lost_base.py found it, when the lost
    packs held a whole conversation)."""
    repo = make_repo(tmp_path / "repo", cache=tmp_path / "cache")
    try:
        with BackupRun(repo) as run:
            session = run.owner(OWNER)
            session.add_directory("conversations", version="list-1")
            session.add_directory("conversations/topic", version="delivered-1")
            session.add_item("conversations/topic/thread.json", b"thread body 1", version="t1")
            session.add_item("conversations/topic/thread.html", b"<p>1</p>", version="t1")
            session.commit()
        snap = max(repo.list_snapshots(), key=lambda s: s.time_ns)
        reader = repo.reader(snap)
        named = {
            chunk
            for path, entry in reader.walk("")
            if path.startswith("conversations/")
            for chunk, _ in entry.chunks
        }
        lose(repo, named)
        with BackupRun(repo) as run:
            session = run.owner(OWNER)
            assert session.base_warning is not None
            topic = session.entry("conversations/topic")
            assert topic is not None
            assert topic.version != "delivered-1"  # the folder is read again
            assert session.entry("conversations/topic/thread.json") is None
            session.close()
    finally:
        repo.close()
