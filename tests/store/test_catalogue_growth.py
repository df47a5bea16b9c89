"""The owner's catalogue file stays near its data after a large first backup.

The merge reads the catalogue in one long read transaction while the new
state is committed in batches; LMDB reuses no page freed after that reader
began. Item IDs are random keys, so writing them during the merge dirtied
a page per ID in every batch, none reusable: a million items grew the file
to 3.7 GB for 250 MB of data. They are now moved into the ``ids`` database
after the merge's reader has ended (store/cache/catalogue.py).
"""

from __future__ import annotations

import random
from pathlib import Path

import lmdb

from store import BackupRun, Owner
from tests.store.support.helpers import make_repo, read_all

ITEMS = 40_000


def _pages_used_and_file(path: Path) -> tuple[int, int]:
    env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=16)
    try:
        used = 0
        with env.begin() as txn:
            names = [bytes(k) for k, _ in txn.cursor()]
            for name in names:
                stat = txn.stat(env.open_db(name, txn=txn, create=False))
                used += stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
        return used * 4096, (env.info()["last_pgno"] + 1) * 4096
    finally:
        env.close()


def test_a_large_first_backup_leaves_a_compact_catalogue(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    owner = Owner("users", "growth", "growth@contoso.example")
    rng = random.Random(3)
    ids = [f"AAMk{rng.randbytes(24).hex()}" for _ in range(ITEMS)]
    with BackupRun(repo) as run, run.owner(owner) as session:
        for number, item_id in enumerate(ids):
            session.add_item(
                f"mail/folder-{number % 20:02d}/{number:06d}.eml",
                b"message %d" % number,
                version=f"v{number}",
                item_id=item_id,
            )
        first = session.commit()
    (store_path,) = [p for p in (repo.cache_dir / "owners").iterdir() if p.is_dir()]
    used, file_bytes = _pages_used_and_file(store_path)
    # What stays is the high-water of one run: the run's own databases
    # (dropped at the end) and the merge's output beside the old state, 3.3
    # times the data here. Before, the 40,000 IDs in 10 batches of 4,096
    # pinned about 4,000 pages each: 6.3 times, growing with the item count.
    assert file_bytes < 4.5 * used, (file_bytes, used)
    # The IDs still find their items, in this run's catalogue and the next.
    with BackupRun(repo) as run, run.owner(owner) as session:
        for number in rng.sample(range(ITEMS), 200):
            assert session.lookup_id(ids[number]) == (
                f"mail/folder-{number % 20:02d}/{number:06d}.eml"
            )
        session.add_item(
            "mail/moved/0.eml", reuse_content_of="mail/folder-00/000000.eml", item_id=ids[0]
        )
        session.remove("mail/folder-00/000000.eml")
        second = session.commit()
    with BackupRun(repo) as run, run.owner(owner) as session:
        assert session.lookup_id(ids[0]) == "mail/moved/0.eml"
        assert session.lookup_id(ids[1]) == "mail/folder-01/000001.eml"
    files = read_all(repo, second)
    assert files["mail/moved/0.eml"] == b"message 0"
    assert len(files) == ITEMS
    assert first.snapshot_id != second.snapshot_id
