"""Microsoft 365 owners whose base names blobs in no index (store/backup/audit.py).

The reported defect: a repository holding a snapshot or checkpoint whose blobs are in
no index (the blob writer's old checkpoint defect, or storage that lost a pack and its
index object) failed those owners on every later run with "blob ... is not in any
index" until the user ran ``repair index`` and ``repair snapshots``. Here the packs
under a complete backup of the simulated tenant are lost for real (deleted, the index
rewritten without them); the next run must end ok for every owner, warn for each
affected one in the report, read their items again, and commit snapshots that name
no lost blob (``check --read-data``) and hold the tenant byte for byte.
"""

from __future__ import annotations

from store import CheckState, check_repository, latest_per_owner
from tests.cli.test_lost_blobs import lose
from tests.sources.m365.support.helpers import open_repo
from tests.sources.m365.support.tenant import Setup


def _contents(setup: Setup) -> dict[str, dict[str, bytes]]:
    """Every owner's latest snapshot, file by file."""
    repo = open_repo(setup.repo, setup.cache)
    try:
        out: dict[str, dict[str, bytes]] = {}
        for snap in latest_per_owner(repo.list_snapshots()):
            reader = repo.reader(snap)
            out[snap.owner.identity] = {
                path: reader.open(entry).read() for path, entry in reader.walk("") if entry.is_file
            }
        return out
    finally:
        repo.close()


def test_owners_whose_base_lost_its_packs_are_backed_up_again(setup: Setup) -> None:
    first = setup.backup()
    assert first["status"] == "ok"
    reference = _contents(setup)
    repo = open_repo(setup.repo, setup.cache)
    try:
        # The first user's items, its tree pages and its sync state (delta links): every
        # pack holding one of them (in a small tenant they hold other owners' too).
        snap = next(
            s for s in latest_per_owner(repo.list_snapshots()) if s.owner.kind == "users" and s.sync
        )
        reader = repo.reader(snap)
        named = {chunk for _, entry in reader.walk("") for chunk, _ in entry.chunks}
        named.add(snap.tree)
        named.update(snap.sync)
        lost = lose(repo, named)
    finally:
        repo.close()
    assert lost

    report = setup.backup()
    assert report["status"] == "ok", [
        (o["name"], o["status"], o["error"]) for o in report["owners"] if o["status"] != "ok"
    ]
    warned = {o["name"]: o["warnings"] for o in report["owners"] if o["warnings"]}
    assert snap.owner.name in warned, warned
    assert all(len(w) == 1 and "this backup builds on" in w[0] for w in warned.values())

    # ``check --read-data``: the new snapshots name nothing that is lost. The first
    # run's snapshots still do (history is not rewritten: a blob whose content came
    # back, like every item read again, is whole again; a sync state of then is not).
    new = {o["snapshot"] for o in report["owners"] if o["snapshot"]}
    repo = open_repo(setup.repo, setup.cache)
    try:
        result = check_repository(repo, read_data=True, state=CheckState(repo.cache_dir))
        affected = {s.id_hex for s in result.affected}
        assert result.damaged
        assert affected
        assert not affected & new, [p.message for p in result.errors][:5]
        for snapshot in latest_per_owner(repo.list_snapshots()):
            assert snapshot.id_hex in new
            for blob_id in snapshot.sync:
                repo.load_blob(blob_id)
    finally:
        repo.close()
    now = _contents(setup)
    assert now.keys() == reference.keys()
    for owner, files in reference.items():
        assert now[owner].keys() == files.keys(), owner
        changed = [p for p in files if now[owner][p] != files[p]]
        assert changed == [], (owner, changed[:5])
