"""Real storage servers on loopback, started and stopped by the tests themselves.

Session-scoped fixtures, one per server: moto (S3), Azurite (Azure Blob),
gcp-storage-emulator (Google Cloud Storage) and a private OpenSSH sshd (SFTP).
Each picks a free port, starts the process with its own working directory and
log, waits until the server answers, and stops it at the end of the session.
Nothing is skipped: a server that cannot start fails the test with its log.

Test modules import the fixtures they use (``from tests.store.support.servers import
moto_server``). pytest builds one fixture definition per importing module, so
the processes are shared through a reference-counted registry: a server used by
several modules still starts once per session.
"""

from __future__ import annotations

import atexit
import getpass
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
AZURITE = REPO_ROOT / ".venv/node/node_modules/.bin/azurite-blob"
SSHD = Path("/usr/sbin/sshd")
START_TIMEOUT = 60.0

# Azurite's fixed development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_running: set[ManagedProcess] = set()


@atexit.register
def _stop_leftovers() -> None:
    """Stop servers whose fixture never got to tear down (pytest interrupted)."""
    for process in list(_running):
        process.stop()


class ManagedProcess:
    """A server process with its log file; ``stop`` is idempotent."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        try:
            # A new session, so a Ctrl-C in the terminal reaches pytest first
            # and the fixture's teardown stops the server in order.
            self.process = subprocess.Popen(
                argv,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            pytest.fail(f"cannot start {name} ({argv[0]}): {exc}", pytrace=False)
        _running.add(self)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, ready: Callable[[], bool], what: str) -> None:
        """Poll ``ready`` until it is true; fail with the log if the process dies or hangs."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                pytest.fail(
                    f"{self.name} exited with status {self.process.returncode} before "
                    f"answering on {what}; its log:\n{self.log_tail()}",
                    pytrace=False,
                )
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail(
            f"{self.name} did not answer on {what} within {START_TIMEOUT:.0f}s; its log:\n"
            f"{self.log_tail()}",
            pytrace=False,
        )

    def stop(self) -> None:
        _running.discard(self)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def http_answers(port: int, path: str = "/") -> bool:
    """True once an HTTP server on the port answers a GET (with any status)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        connection.getresponse().read()
    except OSError:
        return False
    finally:
        connection.close()
    return True


def banner_starts_with(port: int, prefix: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return sock.recv(64).startswith(prefix)
    except OSError:
        return False


# -- sharing between modules -----------------------------------------------------

_shared_lock = threading.Lock()
_shared: dict[str, list[Any]] = {}  # name -> [value, users, stop]


def _shared_server(name: str, start: Callable[[], tuple[Any, Callable[[], None]]]) -> Iterator[Any]:
    """Yield the running server called ``name``, starting it for its first user."""
    with _shared_lock:
        if name not in _shared:
            value, stop = start()
            _shared[name] = [value, 0, stop]
        entry = _shared[name]
        entry[1] += 1
    try:
        yield entry[0]
    finally:
        with _shared_lock:
            entry[1] -= 1
            if entry[1] == 0:
                del _shared[name]
                entry[2]()


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    return env


# -- S3: moto ------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    port: int


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    def start() -> tuple[S3Server, Callable[[], None]]:
        workdir = tmp_path_factory.mktemp("moto")
        port = free_port()
        binary = VENV_BIN / "moto_server"
        process = ManagedProcess(
            "moto_server", [str(binary), "-H", "127.0.0.1", "-p", str(port)], workdir, _server_env()
        )
        process.wait_ready(lambda: http_answers(port), f"127.0.0.1:{port}")
        return S3Server(f"http://127.0.0.1:{port}", port), process.stop

    yield from _shared_server("moto", start)


# -- Azure Blob: Azurite ---------------------------------------------------------------


@dataclass(frozen=True)
class AzuriteServer:
    port: int
    account: str
    key: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};"
            f"AccountKey={self.key};BlobEndpoint={self.endpoint};"
        )


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    def start() -> tuple[AzuriteServer, Callable[[], None]]:
        if not AZURITE.exists():
            pytest.fail(f"Azurite is not installed at {AZURITE}: run `make testdeps`", False)
        workdir = tmp_path_factory.mktemp("azurite")
        port = free_port()
        argv = [
            str(AZURITE),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(workdir / "data"),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ]
        process = ManagedProcess("azurite-blob", argv, workdir, _server_env())
        process.wait_ready(lambda: http_answers(port), f"127.0.0.1:{port}")
        return AzuriteServer(port, AZURITE_ACCOUNT, AZURITE_KEY), process.stop

    yield from _shared_server("azurite", start)


# -- Google Cloud Storage: gcp-storage-emulator ------------------------------------------


@dataclass(frozen=True)
class GcsServer:
    port: int

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    def start() -> tuple[GcsServer, Callable[[], None]]:
        workdir = tmp_path_factory.mktemp("gcs")
        port = free_port()
        argv = [
            str(VENV_BIN / "gcp-storage-emulator"),
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
            "--quiet",
        ]
        process = ManagedProcess("gcp-storage-emulator", argv, workdir, _server_env())
        process.wait_ready(lambda: http_answers(port, "/storage/v1/b"), f"127.0.0.1:{port}")
        return GcsServer(port), process.stop

    yield from _shared_server("gcs", start)


# -- SFTP: a private OpenSSH sshd ----------------------------------------------------------


@dataclass(frozen=True)
class SshServer:
    port: int
    user: str
    client_key: Path  # private key the server accepts (ed25519, no passphrase)
    known_hosts: Path  # a known_hosts file naming the server's host key
    root: Path  # a directory the tests may use for repositories
    host_key_line: str

    @property
    def url_base(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "coffer-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    def start() -> tuple[SshServer, Callable[[], None]]:
        if not SSHD.exists() or shutil.which("ssh-keygen") is None:
            pytest.fail("OpenSSH server is not installed: run `make testdeps`", False)
        workdir = tmp_path_factory.mktemp("sshd")
        os.chmod(workdir, 0o700)
        # sshd refuses to start without its privilege-separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        host_key = workdir / "host_ed25519"
        client_key = workdir / "client_ed25519"
        _keygen(host_key)
        _keygen(client_key)
        (workdir / "authorized_keys").write_text(
            client_key.with_suffix(".pub").read_text(), encoding="ascii"
        )
        port = free_port()
        host_pub = host_key.with_suffix(".pub").read_text().split()
        host_key_line = f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n"
        known_hosts = workdir / "known_hosts"
        known_hosts.write_text(host_key_line, encoding="ascii")
        root = workdir / "storage"
        root.mkdir()
        config = workdir / "sshd_config"
        config.write_text(
            f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {workdir}/sshd.pid
AuthorizedKeysFile {workdir}/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
MaxStartups 64:30:128
MaxSessions 16
Subsystem sftp internal-sftp
LogLevel VERBOSE
""",
            encoding="ascii",
        )
        argv = [str(SSHD), "-D", "-e", "-f", str(config)]
        process = ManagedProcess("sshd", argv, workdir, _server_env())
        process.wait_ready(lambda: banner_starts_with(port, b"SSH-"), f"127.0.0.1:{port}")
        server = SshServer(
            port, getpass.getuser(), client_key, known_hosts, root, host_key_line.strip()
        )
        return server, process.stop

    yield from _shared_server("sshd", start)
