"""The rclone backend, through a real `rclone rcd`, on an rclone local remote."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from store.backend import Backend, RetryingBackend, open_backend
from store.backend.rclone import RcloneBackend, from_url
from store.errors import BackendError, ObjectNotFound, TransientBackendError
from tests.store.support.backend_conformance import BackendConformance
from tests.store.support.faulty_backend import FaultyBackend, write_and_verify_through_faults
from tests.store.test_backend_extra import ExtraConformance

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def rclone_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("rclone")
    config = directory / "rclone.conf"
    config.write_text("[testlocal]\ntype = local\n", encoding="ascii")
    return config


@pytest.fixture
def rclone_env(monkeypatch: pytest.MonkeyPatch, rclone_config: Path) -> None:
    monkeypatch.setenv("RCLONE_CONFIG", str(rclone_config))
    monkeypatch.delenv("COFFER_RCLONE", raising=False)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class TestRcloneBackend(BackendConformance, ExtraConformance):
    # rclone has no create-if-absent: the lock uses its lease here.
    CREATES = False

    @pytest.fixture
    def backend(self, rclone_env: None, tmp_path: Path) -> Iterator[Backend]:
        backend = open_backend(f"rclone:testlocal:{tmp_path}/repo")
        yield backend
        backend.close()


def test_daemon_lifecycle_and_secrets(rclone_env: None, tmp_path: Path) -> None:
    backend = RcloneBackend(f"testlocal:{tmp_path}")
    assert backend.daemon_pid is None  # nothing starts before the first call
    backend.put("config", b"x")
    pid = backend.daemon_pid
    assert pid is not None
    assert alive(pid)
    # The rc credentials are in the daemon's environment, not its command line ...
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert not any(b"pass" in arg.lower() or b"user" in arg.lower() for arg in cmdline)
    # ... and the port refuses anyone without them.
    url = backend._daemon.endpoint()[0]
    assert requests.post(f"{url}/operations/list", json={"fs": "/"}, timeout=10).status_code == 401
    backend.close()
    assert not alive(pid)
    with pytest.raises(BackendError, match="closed"):
        backend.get("config")


def test_daemon_is_restarted_after_it_died(rclone_env: None, tmp_path: Path) -> None:
    backend = RcloneBackend(f"testlocal:{tmp_path}")
    backend.put("config", b"x")
    first = backend.daemon_pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    backend._daemon._process.wait()  # type: ignore[union-attr]
    # The call in flight may fail as transient; then a new daemon takes over.
    assert backend.get("config") == b"x"
    assert backend.daemon_pid not in (None, first)
    backend.close()


def test_objects_are_plain_files_and_temporaries_are_hidden(
    rclone_env: None, tmp_path: Path
) -> None:
    backend = open_backend(f"rclone:testlocal:{tmp_path}/r/")
    backend.put("data/ab/abcdef", b"content")
    assert (tmp_path / "r/data/ab/abcdef").read_bytes() == b"content"
    assert sorted(p.name for p in (tmp_path / "r/data/ab").iterdir()) == ["abcdef"]
    (tmp_path / "r/data/ab/.tmp-0123456789abcdef").write_bytes(b"half")
    assert [info.key for info in backend.list("data/")] == ["data/ab/abcdef"]
    with pytest.raises(ObjectNotFound):
        backend.get("data/ab")  # a directory is not an object
    with pytest.raises(ObjectNotFound):
        backend.stat("data")
    backend.close()


def test_unknown_remote_is_a_permanent_error(rclone_env: None) -> None:
    backend = RcloneBackend(f"nosuchremote{uuid.uuid4().hex[:6]}:x")
    with pytest.raises(BackendError) as info:
        backend.put("config", b"x")
    assert not isinstance(info.value, TransientBackendError | ObjectNotFound)
    backend.close()


def test_missing_binary_is_reported(rclone_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COFFER_RCLONE", "/nonexistent/rclone")
    with pytest.raises(BackendError, match="cannot run rclone"):
        open_backend("rclone:testlocal:/tmp/x").get("config")


def test_url_forms() -> None:
    assert from_url("onedrive:backups/coffer").location == "rclone:onedrive:backups/coffer"
    assert from_url(":local:/srv/x/").location == "rclone::local:/srv/x"
    secret = ":s3,access_key_id=AKIA,secret_access_key=SECRET:bucket/p"
    assert from_url(secret).location == "rclone::s3,...:bucket/p"
    assert from_url("drive,scope=drive:x").location == "rclone:drive,...:x"
    for bad in ("nocolon", ":local"):
        with pytest.raises(ValueError):
            from_url(bad)


# -- faults: between the engine and the rclone backend, and rclone itself dying ----------


class TestRcloneThroughFaults(BackendConformance, ExtraConformance):
    """Dropped answers, 503s and slow calls injected at the backend interface.

    The network between this backend and its storage belongs to rclone (which
    retries on its own); what can fail on our side is the call to the rcd and
    the rcd itself, which the next test kills mid-run.
    """

    # rclone has no create-if-absent: the lock uses its lease here.
    CREATES = False

    @pytest.fixture
    def backend(self, rclone_env: None, tmp_path: Path) -> Iterator[Backend]:
        faulty = FaultyBackend(
            RcloneBackend(f"testlocal:{tmp_path}/repo"),
            seed=8,
            drop_rate=0.2,
            error_rate=0.15,
            slow_rate=0.05,
        )
        backend = RetryingBackend(faulty, attempts=30, base_delay=0.001, max_delay=0.01)
        yield backend
        backend.close()
        # Every injected failure was retried, and nothing else needed a retry.
        failures = sum(faulty.injected[kind] for kind in ("503", "drop-before", "drop-after"))
        assert failures > 0
        assert backend.retries == failures


def test_complete_and_verified_while_the_daemon_is_killed(rclone_env: None, tmp_path: Path) -> None:
    inner = RcloneBackend(f"testlocal:{tmp_path}/repo")
    faulty = FaultyBackend(inner, seed=12, drop_rate=0.1, error_rate=0.1)

    class KillingBackend(RetryingBackend):
        """Kills the rcd every 25th put, as an OOM killer or a crash would."""

        puts = 0

        def put(self, key: str, data: bytes) -> None:
            type(self).puts += 1
            pid = inner.daemon_pid
            if self.puts % 25 == 0 and pid is not None:
                os.kill(pid, signal.SIGKILL)
            super().put(key, data)

    faulted = KillingBackend(faulty, attempts=30, base_delay=0.01, max_delay=0.05)
    direct = RcloneBackend(f"testlocal:{tmp_path}/repo")
    write_and_verify_through_faults(faulted, direct, seed=12, count=60, large=1 << 20)
    assert faulted.retries > 0
    assert KillingBackend.puts >= 25
    faulted.close()
    direct.close()
