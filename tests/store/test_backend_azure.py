"""The Azure Blob backend against Azurite on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from azure.storage.blob import BlobServiceClient

from store.backend import Backend, RetryingBackend, open_backend
from store.backend.azure_blob import AzureBlobBackend
from store.errors import BackendError, ObjectNotFound, TransientBackendError
from tests.store.support.backend_conformance import BackendConformance
from tests.store.support.faulty_backend import FaultProxy, write_and_verify_through_faults
from tests.store.support.servers import AzuriteServer, azurite_server, free_port
from tests.store.test_backend_extra import ExtraConformance

__all__ = ["azurite_server"]

pytestmark = pytest.mark.server

AZURE_VARIABLES = (
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_ENDPOINT",
)


@pytest.fixture
def account_key_env(monkeypatch: pytest.MonkeyPatch, azurite_server: AzuriteServer) -> None:
    for name in AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", azurite_server.account)
    monkeypatch.setenv("AZURE_STORAGE_KEY", azurite_server.key)
    monkeypatch.setenv("AZURE_STORAGE_ENDPOINT", azurite_server.endpoint)


@pytest.fixture
def connection_string_env(monkeypatch: pytest.MonkeyPatch, azurite_server: AzuriteServer) -> None:
    for name in AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_server.connection_string)


def new_container() -> str:
    return f"coffer-{uuid.uuid4().hex[:16]}"


class TestAzureBackend(BackendConformance, ExtraConformance):
    @pytest.fixture
    def backend(self, account_key_env: None) -> Iterator[Backend]:
        backend = open_backend(f"azure:{new_container()}/repo/one")
        yield backend
        backend.close()


class TestAzureBackendConnectionString(BackendConformance, ExtraConformance):
    @pytest.fixture
    def backend(self, connection_string_env: None) -> Iterator[Backend]:
        backend = AzureBlobBackend(new_container())
        yield backend
        backend.close()


def test_large_objects_are_committed_as_blocks(
    account_key_env: None, azurite_server: AzuriteServer
) -> None:
    container = new_container()
    backend = AzureBlobBackend(container, "p")
    data = os.urandom(17 * 1024 * 1024 + 1)
    backend.put("data/17/big", data)
    service = BlobServiceClient.from_connection_string(azurite_server.connection_string)
    blob = service.get_blob_client(container, "p/data/17/big")
    committed, uncommitted = blob.get_block_list("all")
    assert len(committed) == 3
    assert not uncommitted
    assert backend.get("data/17/big", 8 * 1024 * 1024 - 2, 4) == data[8388606:8388610]
    service.close()


def test_prefixes_and_missing_container(account_key_env: None) -> None:
    container = new_container()
    backend = AzureBlobBackend(container, "a")
    assert list(backend.list("")) == []
    with pytest.raises(ObjectNotFound):
        backend.get("config")
    backend.delete("config")
    backend.put("config", b"a")
    AzureBlobBackend(container, "ab").put("config", b"ab")
    assert [(info.key, info.size) for info in backend.list("")] == [("config", 1)]


def test_credentials_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(BackendError, match="AZURE_STORAGE_CONNECTION_STRING"):
        open_backend("azure:container/prefix")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "someaccount")
    with pytest.raises(BackendError, match="AZURE_STORAGE_KEY"):
        open_backend("azure:container/prefix")


def test_wrong_key_is_a_permanent_error(
    monkeypatch: pytest.MonkeyPatch, account_key_env: None
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_KEY", "d3Jvbmcga2V5" * 4)
    backend = AzureBlobBackend(new_container())
    with pytest.raises(BackendError) as info:
        backend.put("config", b"x")
    assert not isinstance(info.value, TransientBackendError | ObjectNotFound)


def test_unreachable_endpoint_is_transient(
    monkeypatch: pytest.MonkeyPatch, account_key_env: None
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ENDPOINT", f"http://127.0.0.1:{free_port()}/devstoreaccount1")
    backend = AzureBlobBackend(new_container())
    with pytest.raises(TransientBackendError):
        backend.get("config")
    with pytest.raises(TransientBackendError):
        backend.put("config", b"x")


def test_url_forms(account_key_env: None) -> None:
    assert "azure:container/a/b" in open_backend("azure:container/a/b/").location
    for bad in ("azure:", "azure:/", "azure:c/../x", "azure:c?tier=hot"):
        with pytest.raises(ValueError):
            open_backend(bad)


# -- network faults between the backend and Azurite -----------------------------------

PROXY_FAULTS = {
    "exchange_cut_rate": 0.08,
    "cut_within": 2 << 20,
    "http_503_rate": 0.08,
    "slow_rate": 0.1,
}


def retrying(backend: Backend) -> RetryingBackend:
    return RetryingBackend(backend, attempts=20, base_delay=0.01, max_delay=0.2)


def _through(proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, server: AzuriteServer) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ENDPOINT", f"http://127.0.0.1:{proxy.port}/{server.account}")


class TestAzureThroughNetworkFaults(BackendConformance, ExtraConformance):
    @pytest.fixture
    def backend(
        self,
        account_key_env: None,
        azurite_server: AzuriteServer,
        monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest,
    ) -> Iterator[Backend]:
        seed = sum(request.node.name.encode())
        with FaultProxy(azurite_server.port, seed=seed, **PROXY_FAULTS) as proxy:
            _through(proxy, monkeypatch, azurite_server)
            backend = retrying(AzureBlobBackend(new_container(), "r"))
            yield backend
            backend.close()


def test_complete_and_verified_through_network_faults(
    account_key_env: None, azurite_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = new_container()
    direct = AzureBlobBackend(container, "v")
    with FaultProxy(azurite_server.port, seed=4, **PROXY_FAULTS) as proxy:
        _through(proxy, monkeypatch, azurite_server)
        faulted = retrying(AzureBlobBackend(container, "v"))
        write_and_verify_through_faults(faulted, direct, seed=4)
        assert proxy.faults > 5, proxy.counts
        assert faulted.retries > 0
