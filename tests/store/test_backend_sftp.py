"""The SFTP backend against a private OpenSSH sshd on loopback."""

from __future__ import annotations

import os
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.backend import Backend, RetryingBackend, open_backend, sftp_pipeline
from store.backend.sftp import HostKeyError, SftpBackend, parse_url
from store.errors import BackendError, TransientBackendError
from tests.store.support.backend_conformance import BackendConformance
from tests.store.support.faulty_backend import FaultProxy, write_and_verify_through_faults
from tests.store.support.servers import SshServer, free_port, sshd_server
from tests.store.test_backend_extra import ExtraConformance

__all__ = ["sshd_server"]

pytestmark = pytest.mark.server

SFTP_VARIABLES = (
    "COFFER_SFTP_KEY",
    "COFFER_SFTP_KEY_PASSPHRASE",
    "COFFER_SFTP_KNOWN_HOSTS",
    "COFFER_SFTP_INSECURE_NO_HOST_KEY_CHECK",
)


@pytest.fixture
def sftp_env(monkeypatch: pytest.MonkeyPatch, sshd_server: SshServer, tmp_path: Path) -> None:
    """The test's key and known_hosts; no agent and no ~/.ssh of the machine."""
    for name in (*SFTP_VARIABLES, "SSH_AUTH_SOCK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COFFER_SFTP_KEY", str(sshd_server.client_key))
    monkeypatch.setenv("COFFER_SFTP_KNOWN_HOSTS", str(sshd_server.known_hosts))


def new_root(server: SshServer) -> Path:
    return server.root / uuid.uuid4().hex


class TestSftpBackend(BackendConformance, ExtraConformance):
    @pytest.fixture
    def backend(self, sftp_env: None, sshd_server: SshServer) -> Iterator[Backend]:
        backend = open_backend(f"sftp:{sshd_server.url_base}{new_root(sshd_server)}/repo")
        yield backend
        backend.close()


def test_objects_are_files_written_atomically(sftp_env: None, sshd_server: SshServer) -> None:
    root = new_root(sshd_server)
    backend = open_backend(f"sftp:{sshd_server.url_base}{root}")
    backend.put("data/ab/abcdef", b"content")
    backend.put("data/ab/abcdef", b"replaced")
    files = [Path(d, n) for d, _, names in os.walk(root) for n in names]
    assert files == [root / "data/ab/abcdef"]
    assert (root / "data/ab/abcdef").read_bytes() == b"replaced"
    assert stat.S_IMODE((root / "data/ab/abcdef").stat().st_mode) == 0o600
    # A writer that died half-way leaves a temporary file nobody lists.
    (root / "data/ab/.tmp-0123456789abcdef").write_bytes(b"half")
    assert [info.key for info in backend.list("")] == ["data/ab/abcdef"]
    backend.close()


def test_short_read_answers_are_completed(
    sftp_env: None, sshd_server: SshServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ask for more per request than OpenSSH answers (255 KiB): every answer
    # is short, and the reader must ask for the rest.
    monkeypatch.setattr(sftp_pipeline, "REQUEST_SIZE", 1024 * 1024)
    backend = open_backend(f"sftp:{sshd_server.url_base}{new_root(sshd_server)}")
    data = os.urandom(3 * 1024 * 1024 + 17)
    backend.put("data/03/big", data)
    assert backend.get("data/03/big") == data
    assert backend.get("data/03/big", 1000, 2 * 1024 * 1024) == data[1000 : 1000 + 2 * 1024 * 1024]
    assert backend.get("data/03/big", len(data) - 10, 1 << 20) == data[-10:]
    backend.close()


def test_key_from_ssh_agent(
    sftp_env: None, sshd_server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(socket_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if socket_path.exists():
                break
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        subprocess.run(["ssh-add", "-q", str(sshd_server.client_key)], check=True)
        monkeypatch.delenv("COFFER_SFTP_KEY")  # nothing but the agent (HOME has no keys)
        backend = open_backend(f"sftp:{sshd_server.url_base}{new_root(sshd_server)}")
        backend.put("config", b"via the agent")
        assert backend.get("config") == b"via the agent"
        backend.close()
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_key_from_home_ssh_directory(
    sftp_env: None, sshd_server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssh_dir = tmp_path / "home" / ".ssh"
    ssh_dir.mkdir(parents=True)
    (ssh_dir / "id_ed25519").write_bytes(sshd_server.client_key.read_bytes())
    (ssh_dir / "id_ed25519").chmod(0o600)
    monkeypatch.delenv("COFFER_SFTP_KEY")
    backend = open_backend(f"sftp:{sshd_server.url_base}{new_root(sshd_server)}")
    backend.put("config", b"via ~/.ssh")
    assert backend.get("config") == b"via ~/.ssh"
    backend.close()


def test_unknown_host_key_is_refused(
    sftp_env: None, sshd_server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    monkeypatch.setenv("COFFER_SFTP_KNOWN_HOSTS", str(empty))
    backend = open_backend(f"sftp:{sshd_server.url_base}{new_root(sshd_server)}")
    with pytest.raises(HostKeyError, match="not in known_hosts"):
        backend.put("config", b"x")
    # The explicit opt-out for throwaway test servers.
    monkeypatch.setenv("COFFER_SFTP_INSECURE_NO_HOST_KEY_CHECK", "1")
    insecure = open_backend(f"sftp:{sshd_server.url_base}{new_root(sshd_server)}")
    insecure.put("config", b"x")
    insecure.close()


def test_changed_host_key_is_refused(
    sftp_env: None, sshd_server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    impostor = tmp_path / "known_hosts"
    other_key = "AAAAC3NzaC1lZDI1NTE5AAAAIHBm0rX3tKKhvy4Wq3o0m2nDj1XzwsN0Vz8M2g6G8yqB"
    impostor.write_text(f"[127.0.0.1]:{sshd_server.port} ssh-ed25519 {other_key}\n")
    monkeypatch.setenv("COFFER_SFTP_KNOWN_HOSTS", str(impostor))
    backend = open_backend(f"sftp:{sshd_server.url_base}{new_root(sshd_server)}")
    with pytest.raises(HostKeyError, match="changed"):
        backend.get("config")


def test_wrong_key_is_a_permanent_error(
    sftp_env: None, sshd_server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    monkeypatch.setenv("COFFER_SFTP_KEY", str(stranger))
    backend = open_backend(f"sftp:{sshd_server.url_base}{new_root(sshd_server)}")
    with pytest.raises(BackendError, match="authentication failed") as info:
        backend.get("config")
    assert not isinstance(info.value, TransientBackendError)
    monkeypatch.setenv("COFFER_SFTP_KEY", str(tmp_path / "missing-key"))
    with pytest.raises(BackendError, match="does not exist"):
        open_backend(f"sftp:{sshd_server.url_base}/x").get("config")


def test_unreachable_server_is_transient(sftp_env: None) -> None:
    backend = SftpBackend("127.0.0.1", "/tmp/x", port=free_port(), insecure_no_host_key_check=True)
    with pytest.raises(TransientBackendError):
        backend.put("config", b"x")


def test_reconnects_after_the_connection_dropped(sftp_env: None, sshd_server: SshServer) -> None:
    root = new_root(sshd_server)
    backend = open_backend(f"sftp:{sshd_server.url_base}{root}", retry=False)
    assert isinstance(backend, SftpBackend)
    backend.put("config", b"before")
    # Cut the connection under the backend's feet, as a network failure would.
    client = backend._client
    assert client is not None
    transport = client.get_transport()
    assert transport is not None
    transport.sock.close()  # type: ignore[union-attr]
    transport.join(5)
    with pytest.raises(TransientBackendError):
        backend.get("config")
    assert backend.get("config") == b"before"
    backend.close()


def test_url_forms() -> None:
    assert parse_url("backup@nas:2222/srv/coffer") == ("backup", "nas", 2222, "/srv/coffer", {})
    assert parse_url("nas:coffer/repo") == (None, "nas", 22, "coffer/repo", {})
    assert parse_url("u@nas:/abs") == ("u", "nas", 22, "/abs", {})
    assert parse_url("u@[::1]:22/abs?key=/k") == ("u", "::1", 22, "/abs", {"key": "/k"})
    for bad in ("nas", "u@:22/x", "//u@h/x", "u@h:", "u@h:70000/x", "u@h:/x?port=3"):
        with pytest.raises(ValueError):
            parse_url(bad)
    assert open_backend("sftp:u@h:2222/srv/c/").location == "sftp:u@h:2222/srv/c"
    assert open_backend("sftp:u@h:rel").location == "sftp:u@h:rel"


# -- network faults between the backend and sshd ----------------------------------------

# Per connection only for the suite: its 17 MiB object must fit through one
# connection; the verification run also cuts inside connections.
PROXY_FAULTS = {"cut_rate": 0.4, "cut_within": 4 << 20, "slow_rate": 0.1}
VERIFY_FAULTS = {"cut_rate": 0.3, "exchange_cut_rate": 0.02, "cut_within": 1 << 20}


def _through(proxy: FaultProxy, server: SshServer, directory: Path) -> SftpBackend:
    # The proxy's port must be known too: host keys are looked up per host and port.
    known_hosts = directory / "known_hosts_proxy"
    known_hosts.write_text(
        server.host_key_line.replace(f":{server.port} ", f":{proxy.port} ", 1) + "\n"
    )
    return SftpBackend(
        "127.0.0.1",
        str(directory / "repo"),
        port=proxy.port,
        key_file=str(server.client_key),
        known_hosts=str(known_hosts),
    )


class TestSftpThroughNetworkFaults(BackendConformance, ExtraConformance):
    @pytest.fixture
    def backend(
        self, sftp_env: None, sshd_server: SshServer, request: pytest.FixtureRequest
    ) -> Iterator[Backend]:
        seed = sum(request.node.name.encode())
        directory = new_root(sshd_server)
        directory.mkdir()
        with FaultProxy(sshd_server.port, seed=seed, **PROXY_FAULTS) as proxy:
            backend = RetryingBackend(
                _through(proxy, sshd_server, directory), attempts=20, base_delay=0.01, max_delay=0.2
            )
            yield backend
            backend.close()


def test_complete_and_verified_through_network_faults(
    sftp_env: None, sshd_server: SshServer
) -> None:
    directory = new_root(sshd_server)
    directory.mkdir()
    direct = open_backend(f"sftp:{sshd_server.url_base}{directory}/repo")
    with FaultProxy(sshd_server.port, seed=6, **VERIFY_FAULTS) as proxy:
        faulted = RetryingBackend(
            _through(proxy, sshd_server, directory), attempts=20, base_delay=0.01, max_delay=0.2
        )
        write_and_verify_through_faults(faulted, direct, seed=6)
        assert proxy.faults >= 3, proxy.counts
        assert faulted.retries > 0
    # No temporary file survived the interrupted uploads' clean-up or was listed.
    direct.close()
