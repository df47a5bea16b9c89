"""Temporary objects left by killed writes: check reports them, prune reclaims them.

Local directories, SFTP (a real OpenSSH server) and rclone (a real rcd on a
local remote) write ``.tmp-<random>`` beside an object and rename it; a write
killed in between leaves the temporary, which no listing shows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from store import PruneOptions, RepoConfig, Repository, check_repository, prune
from store.backend import LocalBackend, open_backend
from store.cache.checkstate import CheckState
from tests.cli.support.helpers import init, new_env
from tests.store.support.helpers import FAST_KDF, PASSWORD
from tests.store.support.servers import SshServer, sshd_server

__all__ = ["sshd_server"]

DAY = 24 * 3600


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture(params=["local", "sftp", "rclone"])
def repo_and_dir(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Repository, Path]]:
    """A repository on the backend and the directory its objects live in."""
    if request.param == "local":
        where = tmp_path / "repo"
        url = str(where)
    elif request.param == "sftp":
        ssh: SshServer = request.getfixturevalue("sshd_server")
        monkeypatch.setenv("COFFER_SFTP_KEY", str(ssh.client_key))
        monkeypatch.setenv("COFFER_SFTP_KNOWN_HOSTS", str(ssh.known_hosts))
        where = ssh.root / f"temps-{os.urandom(4).hex()}"
        url = f"sftp:{ssh.url_base}{where}"
    else:
        config = tmp_path / "rclone.conf"
        config.write_text("[testlocal]\ntype = local\n")
        monkeypatch.setenv("RCLONE_CONFIG", str(config))
        where = tmp_path / "rclone-repo"
        url = f"rclone:testlocal:{where}"
    repo = Repository.init(
        open_backend(url),
        PASSWORD,
        kdf=FAST_KDF,
        config=RepoConfig.new(),
        cache_root=tmp_path / "cache",
    )
    try:
        yield repo, where
    finally:
        repo.close()


def _stale_warnings(repo: Repository) -> list[str]:
    result = check_repository(repo, state=CheckState(repo.cache_dir))
    assert not result.errors, [p.message for p in result.errors]
    return sorted(p.key or "" for p in result.problems if p.code == "stale-temporary")


def test_prune_reclaims_stale_temporaries_and_check_reports_them(
    repo_and_dir: tuple[Repository, Path],
) -> None:
    repo, where = repo_and_dir
    (where / "data" / "ab").mkdir(parents=True)
    old = where / "data" / "ab" / ".tmp-0123456789abcdef"
    old.write_bytes(b"half a pack" * 1000)
    _age(old, 2 * DAY)
    recent = where / "keys" / ".tmp-fedcba9876543210"
    recent.write_bytes(b"a write in progress")
    _age(recent, 600)  # younger than an hour: never touched, whatever the grace
    assert all(".tmp-" not in info.key for info in repo.backend.list(""))

    assert _stale_warnings(repo) == ["data/ab/.tmp-0123456789abcdef"]
    dry = prune(repo, PruneOptions(dry_run=True))
    assert dry.temporaries_removed == ["data/ab/.tmp-0123456789abcdef"]
    assert old.exists()
    result = prune(repo, PruneOptions(grace_ns=0))
    assert result.temporaries_removed == ["data/ab/.tmp-0123456789abcdef"]
    assert result.temporaries_bytes == len(b"half a pack" * 1000)
    assert not old.exists()
    assert recent.exists()
    assert _stale_warnings(repo) == []


_KILLED_WRITER = """
import os, sys
from store.backend import LocalBackend
backend = LocalBackend(sys.argv[1])
data = os.urandom(1 << 20) * 96
while True:
    backend.put("data/aa/" + os.urandom(8).hex(), data)
"""


def test_a_write_killed_midway_leaves_a_temporary_that_prune_reclaims(tmp_path: Path) -> None:
    repo = Repository.init(
        LocalBackend(tmp_path / "repo"),
        PASSWORD,
        kdf=FAST_KDF,
        config=RepoConfig.new(),
        cache_root=tmp_path / "cache",
    )
    root = Path(__file__).resolve().parents[2]
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path / "repo")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    directory = tmp_path / "repo" / "data" / "aa"
    temps: Callable[[], list[Path]] = lambda: (  # noqa: E731
        list(directory.glob(".tmp-*")) if directory.is_dir() else []
    )
    deadline = time.monotonic() + 60
    while not temps() and time.monotonic() < deadline:
        time.sleep(0.001)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    left = temps()
    assert left, "the writer was never caught mid-write"
    for path in left:
        _age(path, 2 * DAY)
    assert sorted(_stale_warnings(repo)) == sorted(f"data/aa/{p.name}" for p in left)
    result = prune(repo, PruneOptions())
    assert sorted(result.temporaries_removed) == sorted(f"data/aa/{p.name}" for p in left)
    assert temps() == []
    repo.close()


def test_the_commands_report_and_reclaim_them(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    init(env)
    leftover = env.repo / "data" / "ab" / ".tmp-00112233aabbccdd"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"x" * 5000)
    _age(leftover, 2 * DAY)
    checked = env.run("check", "--json").json()
    assert [p["key"] for p in checked["problems"] if p["code"] == "stale-temporary"] == [
        "data/ab/.tmp-00112233aabbccdd"
    ]
    pruned = env.run("prune")
    assert "remove 1 temporary object(s) left by interrupted writes" in pruned.err + pruned.out
    assert not leftover.exists()
