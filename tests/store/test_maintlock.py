"""The maintenance lock: hosts racing for it, stale and dead holders, takeovers.

Each contender is a separate Repository (its own cache, its own lock token), as
a second host would be; they race from a barrier over real backends: a local
directory, S3 (moto), Azure (Azurite) and SFTP (OpenSSH) use conditional
creation, rclone (and the GCS emulator, which ignores preconditions) the lease.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from store import RepoConfig, Repository, RepositoryLocked
from store.backend import Backend, open_backend
from store.format.codec import decode, encode
from store.maintenance.maintlock import MaintenanceLock, host_identity, process_start
from store.names import MAINTENANCE_LOCK
from tests.store.support.helpers import FAST_KDF, PASSWORD
from tests.store.support.servers import (
    AzuriteServer,
    GcsServer,
    S3Server,
    SshServer,
    azurite_server,
    gcs_server,
    moto_server,
    sshd_server,
)

__all__ = ["azurite_server", "gcs_server", "moto_server", "sshd_server"]

MINUTE_NS = 60 * 10**9


def _new_repo(url: str, cache: Path) -> Callable[[int], Repository]:
    """Create a repository at ``url``; return a function opening it as host N."""
    Repository.init(
        open_backend(url), PASSWORD, kdf=FAST_KDF, config=RepoConfig.new(), cache_root=cache / "0"
    ).close()
    return lambda n: Repository.open(open_backend(url), PASSWORD, cache_root=cache / str(n))


@pytest.fixture
def rclone_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "rclone.conf"
    config.write_text("[testlocal]\ntype = local\n")
    monkeypatch.setenv("RCLONE_CONFIG", str(config))


_BACKENDS = ["local", "s3", "azure", "sftp", "rclone", "gs"]


@pytest.fixture(params=_BACKENDS)
def hosts(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, Callable[[int], Repository]]:
    """(expected lock mode, open the same repository as host N)."""
    kind = request.param
    mode = "conditional"
    if kind == "local":
        url = str(tmp_path / "repo")
    elif kind == "s3":
        s3: S3Server = request.getfixturevalue("moto_server")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        url = f"s3:{s3.endpoint}/lock-{os.urandom(4).hex()}/repo"
    elif kind == "azure":
        azurite: AzuriteServer = request.getfixturevalue("azurite_server")
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
        url = f"azure:lock-{os.urandom(4).hex()}/repo"
    elif kind == "sftp":
        ssh: SshServer = request.getfixturevalue("sshd_server")
        monkeypatch.setenv("COFFER_SFTP_KEY", str(ssh.client_key))
        monkeypatch.setenv("COFFER_SFTP_KNOWN_HOSTS", str(ssh.known_hosts))
        url = f"sftp:{ssh.url_base}{ssh.root}/lock-{os.urandom(4).hex()}"
    elif kind == "gs":
        gcs: GcsServer = request.getfixturevalue("gcs_server")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.host)
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "coffer-test")
        url = f"gs:lock-{os.urandom(4).hex()}/repo"
        mode = "lease"  # the emulator ignores ifGenerationMatch
    else:
        request.getfixturevalue("rclone_env")
        url = f"rclone:testlocal:{tmp_path}/repo"
        mode = "lease"
    return mode, _new_repo(url, tmp_path / "caches")


def _race(
    open_host: Callable[[int], Repository],
    contenders: int,
    make_lock: Callable[..., MaintenanceLock],
) -> tuple[list[int], list[str], list[BaseException]]:
    """Contenders try the lock at once; winners hold it until all have tried."""
    repos = [open_host(n + 1) for n in range(contenders)]
    start, tried = threading.Barrier(contenders), threading.Barrier(contenders)
    winners: list[int] = []
    modes: list[str] = []
    errors: list[BaseException] = []

    def contend(n: int) -> None:
        lock = make_lock(repos[n])
        try:
            start.wait()
            try:
                lock.acquire()
            except RepositoryLocked:
                tried.wait()
                return
            winners.append(n)
            modes.append(lock.mode)
            tried.wait()
            lock.ensure_held()
            lock.release()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            tried.abort()

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for repo in repos:
        repo.close()
    return winners, modes, errors


def test_hosts_racing_for_the_lock_have_exactly_one_winner(
    hosts: tuple[str, Callable[[int], Repository]],
) -> None:
    mode, open_host = hosts
    for _ in range(3):
        winners, modes, errors = _race(
            open_host, 4, lambda repo: MaintenanceLock(repo, "prune", settle=1.5)
        )
        assert not errors
        assert len(winners) == 1
        assert modes == [mode]
    with open_host(9) as repo:
        assert not repo.backend.exists(MAINTENANCE_LOCK)  # released


def test_hosts_racing_to_take_over_a_stale_lock_have_one_winner(
    hosts: tuple[str, Callable[[int], Repository]],
) -> None:
    _mode, open_host = hosts
    with open_host(9) as repo:
        # A holder from another machine that stopped refreshing an hour ago.
        repo.save_object(
            "lock", MAINTENANCE_LOCK, _holder(refreshed=time.time_ns() - 60 * MINUTE_NS)
        )
    winners, _modes, errors = _race(
        open_host, 4, lambda repo: MaintenanceLock(repo, "prune", settle=1.5)
    )
    assert not errors
    assert len(winners) == 1


def _holder(
    *,
    refreshed: int,
    host: str = "another-host",
    hostid: str | None = "another-host-id",
    pid: int = 4242,
    pstart: int | None = 1,
) -> bytes:
    return encode(
        {
            "v": 1,
            "token": os.urandom(16).hex(),
            "what": "prune",
            "host": host,
            "hostid": hostid,
            "pid": pid,
            "pstart": pstart,
            "started": refreshed,
            "refreshed": refreshed,
        }
    )


def _free_pid() -> int:
    """A PID no process here has."""
    pid = 4_000_000
    while Path(f"/proc/{pid}").exists():
        pid -= 1
    return pid


@pytest.fixture
def local_repo(tmp_path: Path) -> Iterator[Repository]:
    open_host = _new_repo(str(tmp_path / "repo"), tmp_path / "caches")
    with open_host(1) as repo:
        yield repo


def test_a_holder_in_another_container_with_our_hostname_is_not_taken_as_dead(
    local_repo: Repository,
) -> None:
    # Containers sharing a hostname: its PID means nothing in our PID namespace.
    local_repo.save_object(
        "lock",
        MAINTENANCE_LOCK,
        _holder(refreshed=time.time_ns(), host=socket.gethostname(), pid=_free_pid()),
    )
    with pytest.raises(RepositoryLocked, match="prune is running"):
        MaintenanceLock(local_repo, "repair index").acquire()


def test_a_killed_holder_on_this_host_is_taken_over_at_once(local_repo: Repository) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = process_start(child.pid)
    fields = {"host": socket.gethostname(), "hostid": host_identity(), "pid": child.pid}
    local_repo.save_object(
        "lock", MAINTENANCE_LOCK, _holder(refreshed=time.time_ns(), pstart=started, **fields)
    )
    with pytest.raises(RepositoryLocked):
        MaintenanceLock(local_repo, "prune").acquire()  # alive: refused
    child.send_signal(signal.SIGKILL)
    child.wait()
    with MaintenanceLock(local_repo, "prune") as lock:
        assert lock.mode == "conditional"


def test_a_reused_pid_does_not_keep_a_dead_holder_alive(local_repo: Repository) -> None:
    # Our own PID, but the holder's process started at another time: not us.
    fields = {"host": socket.gethostname(), "hostid": host_identity(), "pid": os.getpid()}
    local_repo.save_object(
        "lock", MAINTENANCE_LOCK, _holder(refreshed=time.time_ns(), pstart=1, **fields)
    )
    with MaintenanceLock(local_repo, "prune"):
        pass


def test_a_holder_that_lost_the_lock_stops_before_deleting(local_repo: Repository) -> None:
    clock = [time.time_ns()]
    stalled = MaintenanceLock(local_repo, "prune", clock=lambda: clock[0], refresh_seconds=0.05)
    stalled.acquire()
    stalled._stop.set()  # the holder stalls: no more heartbeats
    time.sleep(0.2)
    clock[0] += 31 * MINUTE_NS
    # Another machine finds it stale and takes it over.
    other = MaintenanceLock(local_repo, "prune", clock=lambda: clock[0])
    other.acquire()
    with pytest.raises(RepositoryLocked, match="taken over"):
        stalled.ensure_held()
    stalled.release()  # does not delete the new holder's lock
    other.ensure_held()
    other.release()
    assert not local_repo.backend.exists(MAINTENANCE_LOCK)


def test_the_heartbeat_notices_a_takeover_and_never_writes_over_it(
    local_repo: Repository,
) -> None:
    first = MaintenanceLock(local_repo, "prune", refresh_seconds=0.05)
    first.acquire()
    # A takeover the first holder did not see coming (a slow lease contender).
    intruder = MaintenanceLock(local_repo, "repair index")
    local_repo.save_object("lock", MAINTENANCE_LOCK, intruder._content())
    time.sleep(0.5)
    with pytest.raises(RepositoryLocked):
        first.ensure_held()
    intruder.ensure_held()  # still the intruder's after many heartbeat periods
    first.release()
    assert local_repo.backend.exists(MAINTENANCE_LOCK)


def test_backend_without_conditional_writes_uses_the_lease(
    tmp_path: Path, rclone_env: None
) -> None:
    open_host = _new_repo(f"rclone:testlocal:{tmp_path}/repo", tmp_path / "caches")
    with open_host(1) as repo:
        backend: Backend = repo.backend
        with MaintenanceLock(repo, "prune", settle=0.2) as lock:
            assert lock.mode == "lease"
            with open_host(2) as other, pytest.raises(RepositoryLocked, match="prune"):
                MaintenanceLock(other, "prune", settle=0.2).acquire()
        assert not backend.exists(MAINTENANCE_LOCK)


@pytest.mark.parametrize("started", ["yesterday", float("inf"), -1, (1 << 64) - 1, None])
def test_a_lock_with_a_hostile_start_time_is_refused_in_one_line(
    local_repo: Repository, started: object
) -> None:
    # Whoever holds a key can seal any lock; its fields are checked before use.
    fields = decode(_holder(refreshed=time.time_ns()), "lock")
    fields["started"] = started
    local_repo.save_object("lock", MAINTENANCE_LOCK, encode(fields))
    with pytest.raises(RepositoryLocked, match="since an unknown time"):
        MaintenanceLock(local_repo, "repair index").acquire()
