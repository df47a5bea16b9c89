"""The engine on every remote backend: init, back up, reopen elsewhere, restore.

The conformance suite checks the contract; this checks that the engine's real
use of it works end to end over each real server, with and without faults.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from store import Repository, open_backend
from store.backend import CachingBackend, RetryingBackend
from tests.store.support.faulty_backend import FaultProxy
from tests.store.support.helpers import FAST_KDF, PASSWORD, read_all, snapshot_of
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

pytestmark = pytest.mark.server

BACKENDS = ["s3", "azure", "gs", "sftp", "rclone"]


def files(seed: int) -> dict[str, bytes]:
    rng = __import__("random").Random(seed)
    content = {f"docs/{i:03d}.txt": rng.randbytes(rng.randrange(0, 30_000)) for i in range(40)}
    content["media/large.bin"] = rng.randbytes(3 * 1024 * 1024)
    content["media/copy.bin"] = content["media/large.bin"]  # deduplicated
    return content


@pytest.fixture
def repository_url(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    """A URL for a fresh, empty repository on the backend named by the parameter."""
    kind: str = request.param
    name = f"coffer-{uuid.uuid4().hex[:12]}"
    if kind == "s3":
        s3: S3Server = request.getfixturevalue("moto_server")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "coffer-test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "coffer-test-secret")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        return f"s3:{s3.endpoint}/{name}/repo"
    if kind == "azure":
        azure: AzuriteServer = request.getfixturevalue("azurite_server")
        monkeypatch.delenv("AZURE_STORAGE_ACCOUNT", raising=False)
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure.connection_string)
        return f"azure:{name}/repo"
    if kind == "gs":
        gcs: GcsServer = request.getfixturevalue("gcs_server")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.host)
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "coffer-test")
        return f"gs:{name}/repo"
    if kind == "sftp":
        ssh: SshServer = request.getfixturevalue("sshd_server")
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
        monkeypatch.setenv("COFFER_SFTP_KEY", str(ssh.client_key))
        monkeypatch.setenv("COFFER_SFTP_KNOWN_HOSTS", str(ssh.known_hosts))
        return f"sftp:{ssh.url_base}{ssh.root}/{name}"
    config = tmp_path / "rclone.conf"
    config.write_text("[testlocal]\ntype = local\n")
    monkeypatch.setenv("RCLONE_CONFIG", str(config))
    return f"rclone:testlocal:{tmp_path}/{name}"


@pytest.fixture
def caches(tmp_path: Path) -> Path:
    return tmp_path / "caches"


@pytest.mark.parametrize("repository_url", BACKENDS, indirect=True)
def test_backup_and_restore_on_a_second_machine(repository_url: str, caches: Path) -> None:
    content = files(1)
    backend = open_backend(repository_url)
    assert isinstance(backend, RetryingBackend)
    with Repository.init(backend, PASSWORD, kdf=FAST_KDF, cache_root=caches / "one") as repo:
        first = snapshot_of(repo, content)
        changed = dict(content, **{"docs/000.txt": b"edited"})
        second = snapshot_of(repo, changed)
    # Another machine: nothing local but the URL and the password.
    with Repository.open(
        open_backend(repository_url), PASSWORD, cache_root=caches / "two"
    ) as again:
        snapshots = {s.snapshot_id: s for s in again.list_snapshots()}
        assert set(snapshots) == {first.snapshot_id, second.snapshot_id}
        assert read_all(again, snapshots[first.snapshot_id]) == content
        assert read_all(again, snapshots[second.snapshot_id]) == changed


@pytest.mark.parametrize("repository_url", ["s3"], indirect=True)
def test_metadata_cache_under_the_engine(repository_url: str, caches: Path) -> None:
    with Repository.init(
        open_backend(repository_url), PASSWORD, kdf=FAST_KDF, cache_root=caches / "a"
    ) as repo:
        snapshot_of(repo, files(2))
    objects = caches / "objects"
    for attempt in range(2):
        backend = open_backend(repository_url, cache_dir=objects)
        assert isinstance(backend, CachingBackend)
        with Repository.open(backend, PASSWORD, cache_root=caches / f"b{attempt}") as repo:
            (snapshot,) = repo.list_snapshots()
            assert read_all(repo, snapshot) == files(2)
        if attempt == 1:
            # The second run found every metadata object on disk, except
            # `config`, which is read fresh once per run by design.
            assert backend.misses == 1
            assert backend.hits > 0


@pytest.mark.parametrize("repository_url", ["s3", "sftp"], indirect=True)
def test_backup_and_restore_through_network_faults(
    repository_url: str, caches: Path, request: pytest.FixtureRequest
) -> None:
    kind = repository_url.partition(":")[0]
    if kind == "s3":
        server = request.getfixturevalue("moto_server")
        faults = {"exchange_cut_rate": 0.05, "http_503_rate": 0.05, "cut_within": 1 << 20}
    else:
        server = request.getfixturevalue("sshd_server")
        faults = {"cut_rate": 0.3, "exchange_cut_rate": 0.02, "cut_within": 1 << 20}
    content = files(3)
    with FaultProxy(server.port, seed=9, **faults) as proxy:
        url = repository_url.replace(f":{server.port}", f":{proxy.port}", 1)
        if kind == "sftp":
            known = caches.parent / "known_hosts_proxy"
            known.write_text(
                server.host_key_line
                + "\n"
                + server.host_key_line.replace(f":{server.port} ", f":{proxy.port} ", 1)
                + "\n"
            )
            os.environ["COFFER_SFTP_KNOWN_HOSTS"] = str(known)  # restored by monkeypatch
        backend = open_backend(url)
        assert isinstance(backend, RetryingBackend)
        with Repository.init(backend, PASSWORD, kdf=FAST_KDF, cache_root=caches / "f") as repo:
            snapshot = snapshot_of(repo, content)
        assert proxy.faults > 0, proxy.counts
    # Verified without the proxy, from another machine.
    with Repository.open(open_backend(repository_url), PASSWORD, cache_root=caches / "g") as repo:
        (listed,) = repo.list_snapshots()
        assert listed.snapshot_id == snapshot.snapshot_id
        assert read_all(repo, listed) == content
