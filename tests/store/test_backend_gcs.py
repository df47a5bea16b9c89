"""The Google Cloud Storage backend against gcp-storage-emulator on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from store.backend import Backend, RetryingBackend, open_backend
from store.backend.gcs import GcsBackend
from store.errors import ObjectNotFound, TransientBackendError
from tests.store.support.backend_conformance import BackendConformance
from tests.store.support.faulty_backend import FaultProxy, write_and_verify_through_faults
from tests.store.support.servers import GcsServer, free_port, gcs_server
from tests.store.test_backend_extra import ExtraConformance

__all__ = ["gcs_server"]

pytestmark = pytest.mark.server


@pytest.fixture
def emulator_env(monkeypatch: pytest.MonkeyPatch, gcs_server: GcsServer) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "coffer-test")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)


def new_bucket() -> str:
    return f"coffer-{uuid.uuid4().hex[:16]}"


class TestGcsBackend(BackendConformance, ExtraConformance):
    # gcp-storage-emulator ignores ifGenerationMatch: the probe must notice.
    CREATES = False

    @pytest.fixture
    def backend(self, emulator_env: None) -> Iterator[Backend]:
        backend = open_backend(f"gs:{new_bucket()}/repo/one")
        yield backend
        backend.close()


def test_prefixes_and_missing_bucket(emulator_env: None) -> None:
    bucket = new_bucket()
    backend = GcsBackend(bucket, "a")
    assert list(backend.list("")) == []
    with pytest.raises(ObjectNotFound):
        backend.get("config")
    with pytest.raises(ObjectNotFound):
        backend.stat("config")
    backend.delete("config")
    backend.put("config", b"a")
    GcsBackend(bucket, "ab").put("config", b"ab")
    assert [(info.key, info.size) for info in backend.list("")] == [("config", 1)]


def test_resumable_upload_of_a_large_object(emulator_env: None) -> None:
    backend = GcsBackend(new_bucket(), "p")
    data = os.urandom(20 * 1024 * 1024 + 5)
    backend.put("data/20/big", data)
    assert backend.stat("data/20/big").size == len(data)
    assert backend.get("data/20/big", 8 * 1024 * 1024 - 1, 2) == data[8388607:8388609]
    assert backend.get("data/20/big") == data


def test_unreachable_endpoint_is_transient(
    monkeypatch: pytest.MonkeyPatch, emulator_env: None
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    backend = GcsBackend(new_bucket())
    with pytest.raises(TransientBackendError):
        backend.get("config")
    with pytest.raises(TransientBackendError):
        backend.put("config", b"x")
    with pytest.raises(TransientBackendError):
        list(backend.list(""))


def test_url_forms(emulator_env: None) -> None:
    assert open_backend("gs:bucket/a/b/?project=p").location == "gs:bucket/a/b"
    for bad in ("gs:", "gs:b/./x", "gs:b?region=x"):
        with pytest.raises(ValueError):
            open_backend(bad)


# -- network faults between the backend and the emulator --------------------------------

PROXY_FAULTS = {
    "exchange_cut_rate": 0.08,
    "cut_within": 2 << 20,
    "http_503_rate": 0.08,
    "slow_rate": 0.1,
}


def retrying(backend: Backend) -> RetryingBackend:
    return RetryingBackend(backend, attempts=20, base_delay=0.01, max_delay=0.2)


class TestGcsThroughNetworkFaults(BackendConformance, ExtraConformance):
    # gcp-storage-emulator ignores ifGenerationMatch: the probe must notice.
    CREATES = False

    @pytest.fixture
    def backend(
        self,
        emulator_env: None,
        gcs_server: GcsServer,
        monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest,
    ) -> Iterator[Backend]:
        seed = sum(request.node.name.encode())
        with FaultProxy(gcs_server.port, seed=seed, **PROXY_FAULTS) as proxy:
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{proxy.port}")
            backend = retrying(GcsBackend(new_bucket(), "r"))
            yield backend
            backend.close()


def test_complete_and_verified_through_network_faults(
    emulator_env: None, gcs_server: GcsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = new_bucket()
    direct = GcsBackend(bucket, "v")
    with FaultProxy(gcs_server.port, seed=5, **PROXY_FAULTS) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{proxy.port}")
        faulted = retrying(GcsBackend(bucket, "v"))
        write_and_verify_through_faults(faulted, direct, seed=5)
        assert proxy.faults > 5, proxy.counts
        assert faulted.retries > 0
