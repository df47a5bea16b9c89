"""The backup data path in worker processes (store/pipeline): same blobs and
trees as in-process, deduplication still decided by the backup, keys never on
a worker's command line or in its environment, a dead worker fails the
backup cleanly, and small runs never start workers."""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest

import sources.folder.backup as folder_backup
from sources.folder import backup_folder
from store import BackupRun, Owner, Repository, WorkerFailed
from store.pipeline import wire
from store.pipeline.worker import ask_ahead
from tests.store.support.helpers import make_repo, read_all
from tests.store.test_cache_prefetch import _evict, _resident


@pytest.fixture
def workers_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file goes to the workers (the real thresholds want far more data
    than a fast test writes; test_a_small_run_starts_no_workers keeps them)."""
    monkeypatch.setattr(folder_backup, "PIPELINE_START_FILES", 0)


def _corpus(root: Path, *, files: int, seed: int = 3) -> dict[str, bytes]:
    """Small and empty files, duplicates, a file cut whole (1 MiB) and one
    streamed through the chunker (over the 4 MiB read-whole limit)."""
    rng = random.Random(seed)
    contents: dict[str, bytes] = {}
    for i in range(files):
        rel = f"d{i % 7}/f{i:04d}.txt"
        if i % 10 == 0:
            data = b"the same attachment\n" * 300  # a duplicate, many times
        elif i % 17 == 0:
            data = b""
        else:
            data = f"mail {i}\n".encode() * rng.randrange(1, 200) + rng.randbytes(
                rng.randrange(0, 5000)
            )
        contents[rel] = data
    contents["big/one-mib.bin"] = rng.randbytes(1 << 20)
    contents["big/streamed.bin"] = rng.randbytes(5 << 20) + b"\0" * (2 << 20)
    contents["big/copy-of-streamed.bin"] = contents["big/streamed.bin"]
    for rel, data in contents.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return contents


def _backup(
    repo: Repository, source: Path, name: str, processes: int
) -> tuple[BackupRun, bytes, list[int], int]:
    """One run of ``source`` as owner ``name``: (run, tree ID, worker PIDs, new data blobs)."""
    owner = Owner("folders", name, name)
    with BackupRun(repo) as run:
        result = backup_folder(run, source, owner=owner, processes=processes)
        pids = run.worker_pids()
    assert not result.skipped
    return run, bytes(result.snapshot.tree), pids, run.writer.stats.blobs_new


@pytest.mark.parametrize("small", [False, True], ids=["default-chunks", "small-chunks"])
@pytest.mark.usefixtures("workers_at_once")
def test_workers_store_the_same_blobs_and_trees_as_in_process(tmp_path: Path, small: bool) -> None:
    source = tmp_path / "src"
    contents = _corpus(source, files=200)
    repo = make_repo(tmp_path / "repo", small=small)
    # Workers first, into an empty repository: they store everything.
    run, tree_workers, pids, new_workers = _backup(repo, source, "with-workers", 2)
    assert len(pids) == 2
    # Dedup is the backup's: the duplicated files were stored once.
    assert run.writer.stats.blobs_duplicate > 0
    # In-process into the same repository (same keys): every chunk and every
    # tree page gets the ID the workers gave it, so nothing is new.
    _run, tree_inline, pids_inline, new_inline = _backup(repo, source, "in-process", 0)
    assert pids_inline == []
    assert tree_inline == tree_workers
    assert new_inline == 0
    assert new_workers > 0
    # And workers again: a blob already stored is not stored twice.
    _run, tree_again, _pids, new_again = _backup(repo, source, "workers-again", 2)
    assert tree_again == tree_workers
    assert new_again == 0
    snapshot = next(s for s in repo.list_snapshots() if s.owner.key == "with-workers")
    restored = read_all(repo, snapshot)
    assert restored == contents


def test_a_small_run_starts_no_workers(tmp_path: Path) -> None:
    """Below the thresholds (20 files, 1 MiB) the run stays in one process."""
    source = tmp_path / "src"
    contents = _corpus(source, files=20)
    contents.pop("big/streamed.bin"), contents.pop("big/copy-of-streamed.bin")
    (source / "big" / "streamed.bin").unlink()
    (source / "big" / "copy-of-streamed.bin").unlink()
    repo = make_repo(tmp_path / "repo")
    _run, _tree, pids, _new = _backup(repo, source, "small", 2)
    assert pids == []
    snapshot = repo.list_snapshots()[0]
    assert read_all(repo, snapshot) == contents


def test_workers_take_over_once_the_walk_has_met_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first files are read in-process, the rest by the workers: one tree."""
    monkeypatch.setattr(folder_backup, "PIPELINE_START_FILES", 60)
    source = tmp_path / "src"
    contents = _corpus(source, files=150)
    repo = make_repo(tmp_path / "repo", small=True)
    _run, tree_mixed, pids, _new = _backup(repo, source, "mixed", 2)
    assert len(pids) == 2
    _run, tree_inline, _pids, new_inline = _backup(repo, source, "in-process", 0)
    assert tree_inline == tree_mixed
    assert new_inline == 0
    snapshot = next(s for s in repo.list_snapshots() if s.owner.key == "mixed")
    assert read_all(repo, snapshot) == contents


def _rchar() -> int:
    with open("/proc/self/io") as io:
        return int(next(line for line in io if line.startswith("rchar:")).split()[1])


@pytest.mark.usefixtures("workers_at_once")
def test_a_sparse_image_is_read_here_by_its_data_only(tmp_path: Path) -> None:
    """Workers would read a sparse image's holes as zeros (64 MiB for this
    one); it stays in the backup's process, which reads its 4 MiB of data.

    ``rchar`` counts this process's reads, the compressed answers of the
    worker included, and, once the run has reaped it, the worker's own reads
    (Linux adds a reaped child's I/O to its parent's): without the routing it
    is 71 MB here.
    """
    mib = 1 << 20
    source = tmp_path / "src"
    source.mkdir()
    contents = {f"mail{i}.txt": f"mail {i}\n".encode() * 500 for i in range(30)}
    for rel, body in contents.items():
        (source / rel).write_bytes(body)
    data = b"".join(b"line %d of the disk\n" % i for i in range(200_000))[: 4 * mib]
    with open(source / "disk.img", "wb") as image:
        image.truncate(64 * mib)
        image.seek(40 * mib)
        image.write(data)
    contents["disk.img"] = bytes(40 * mib) + data + bytes(20 * mib)
    assert (source / "disk.img").stat().st_blocks * 512 < 16 * mib  # it is sparse
    repo = make_repo(tmp_path / "repo")
    before = _rchar()
    _run, _tree, pids, _new = _backup(repo, source, "sparse", 1)
    read_here = _rchar() - before
    assert len(pids) == 1  # the mails went to the worker
    # The image's data was read, its holes were not, by either process.
    assert 4 * mib <= read_here < 8 * mib
    snapshot = repo.list_snapshots()[0]
    assert read_all(repo, snapshot) == contents


@pytest.mark.usefixtures("workers_at_once")
def test_keys_reach_workers_over_the_pipe_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hunter2-password-in-the-environment"
    monkeypatch.setenv("COFFER_PASSWORD", secret)
    repo = make_repo(tmp_path / "repo")
    keyring = repo.keyring
    seed = keyring.chunker_seed
    forbidden = [
        keyring.blob_id_key,
        keyring.blob_id_key.hex().encode(),
        keyring.current_key,
        keyring.current_key.hex().encode(),
        str(seed).encode(),
        seed.to_bytes(8, "big"),
        secret.encode(),
    ]
    source = tmp_path / "src"
    contents = _corpus(source, files=40)
    owner = Owner("folders", "keys", "keys")
    with BackupRun(repo) as run:
        pids = run.worker_pool(2).pids()
        # The keys did reach them: the backup through them is readable.
        result = backup_folder(run, source, owner=owner, processes=2)
        assert run.worker_pids() == pids
        # Read /proc only now: the workers have answered, so each is past its
        # exec (while the kernel is still setting one up, its cmdline and
        # environ read empty, and the checks below would pass vacuously).
        for pid in pids:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert b"store.pipeline.worker" in cmdline
            assert b"PATH=" in environ
            for needle in forbidden:
                assert needle not in environ, "a secret in a worker's environment"
                assert needle not in cmdline, "a secret on a worker's command line"
            assert b"COFFER_" not in environ
    assert read_all(repo, result.snapshot) == contents


@pytest.mark.usefixtures("workers_at_once")
def test_a_worker_killed_mid_run_fails_the_backup_without_a_snapshot(tmp_path: Path) -> None:
    source = tmp_path / "src"
    _corpus(source, files=500)
    repo = make_repo(tmp_path / "repo")
    owner = Owner("folders", "crash", "crash")
    killed: list[int] = []

    with BackupRun(repo) as run:

        def progress(_rel: str, _size: int) -> None:
            # The first file a worker answered: kill every worker while the
            # walk still has hundreds of files to hand them.
            if not killed and run.worker_pids():
                for pid in run.worker_pids():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

        with pytest.raises(WorkerFailed) as failure:
            backup_folder(run, source, owner=owner, processes=2, progress=progress)
    assert killed
    message = str(failure.value)
    assert "\n" not in message
    assert "killed by signal 9" in message
    assert [s for s in repo.list_snapshots() if s.owner.key == "crash"] == []
    for pid in killed:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


@pytest.mark.usefixtures("workers_at_once")
def test_default_workers_that_cannot_start_leave_the_run_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers nobody asked for that cannot start (here: no interpreter to
    start them with) leave the run to this process, with the same tree;
    workers asked for fail the run in one line."""
    source = tmp_path / "src"
    contents = _corpus(source, files=60)
    repo = make_repo(tmp_path / "repo")
    monkeypatch.setattr(folder_backup, "default_processes", lambda: 2)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    with BackupRun(repo) as run:
        result = backup_folder(run, source, owner=Owner("folders", "d", "d"))
        assert run.worker_pids() == []
    assert not result.skipped
    assert read_all(repo, result.snapshot) == contents
    with BackupRun(repo) as run, pytest.raises(WorkerFailed) as failure:
        backup_folder(run, source, owner=Owner("folders", "asked", "asked"), processes=2)
    assert "cannot start a backup worker process" in str(failure.value)
    assert "\n" not in str(failure.value)
    monkeypatch.undo()
    _run, tree_inline, _pids, _new = _backup(repo, source, "in-process", 0)
    assert tree_inline == bytes(result.snapshot.tree)


@pytest.mark.parametrize("level", [None, -1, -5, 3, 19])
def test_the_init_message_keeps_every_compression_setting(level: int | None) -> None:
    """zstd's fast levels are negative: none of them may read as "no compression"."""
    key = bytes(range(32))
    body = wire.init_body(key, (1 << 63) - 1, 1024, 4096, 16384, 1, level)
    assert wire.parse_init(body) == (key, (1 << 63) - 1, 1024, 4096, 16384, 1, level)


def test_a_worker_asks_the_kernel_for_a_whole_batch_first(tmp_path: Path) -> None:
    """Cold small files read one after the other each wait for their own
    seek; the worker asks for every file of a batch before cutting the first
    (store/pipeline/worker.py, ask_ahead: a first backup of the mail corpus
    went from 32-36 s to 21-23 s)."""
    paths = []
    for number in range(40):
        path = tmp_path / f"{number:02d}.eml"
        path.write_bytes(random.Random(number).randbytes(64 * 1024))
        paths.append(path)
    for path in paths:
        _evict(path)
    fds = [os.open(path, os.O_RDONLY) for path in paths]
    try:
        ask_ahead([(tag, 64 * 1024) for tag in range(len(fds))], fds)
        deadline = time.monotonic() + 10
        while min(map(_resident, paths)) < 0.9 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert min(map(_resident, paths)) >= 0.9
    finally:
        for fd in fds:
            os.close(fd)
