"""The S3 backend against moto in server mode on loopback."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import botocore.exceptions
import pytest

from store.backend import Backend, RetryingBackend, open_backend
from store.backend.ratelimit import KIB
from store.backend.s3 import S3Backend, parse_url, translate_error
from store.errors import BackendError, ObjectNotFound, TransientBackendError
from tests.store.support.backend_conformance import BackendConformance
from tests.store.support.faulty_backend import FaultProxy, write_and_verify_through_faults
from tests.store.support.servers import S3Server, free_port, moto_server
from tests.store.test_backend_extra import ExtraConformance

__all__ = ["moto_server"]

pytestmark = pytest.mark.server


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials moto accepts, and no trace of the machine's own AWS setup."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "coffer-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "coffer-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


def raw_client(server: S3Server):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")


def new_bucket() -> str:
    return f"coffer-{uuid.uuid4().hex[:16]}"


class TestS3Backend(BackendConformance, ExtraConformance):
    @pytest.fixture
    def backend(self, moto_server: S3Server) -> Iterator[Backend]:
        backend = open_backend(f"s3:{moto_server.endpoint}/{new_bucket()}/repo/one")
        yield backend
        backend.close()


class TestS3BackendNoPrefix(BackendConformance, ExtraConformance):
    @pytest.fixture
    def backend(self, moto_server: S3Server) -> Iterator[Backend]:
        backend = S3Backend(new_bucket(), endpoint_url=moto_server.endpoint)
        yield backend
        backend.close()


def test_prefix_isolates_repositories(moto_server: S3Server) -> None:
    bucket = new_bucket()
    one = S3Backend(bucket, "a", endpoint_url=moto_server.endpoint)
    two = S3Backend(bucket, "ab", endpoint_url=moto_server.endpoint)
    one.put("config", b"one")
    two.put("config", b"two")
    assert [info.key for info in one.list("")] == ["config"]
    assert one.get("config") == b"one"
    keys = {
        item["Key"] for item in raw_client(moto_server).list_objects_v2(Bucket=bucket)["Contents"]
    }
    assert keys == {"a/config", "ab/config"}


def test_large_objects_use_multipart(moto_server: S3Server) -> None:
    bucket = new_bucket()
    backend = S3Backend(
        bucket,
        "p",
        endpoint_url=moto_server.endpoint,
        multipart_threshold=6 * 1024 * 1024,
        part_size=5 * 1024 * 1024,
    )
    data = os.urandom(11 * 1024 * 1024 + 7)
    backend.put("data/11/big", data)
    head = raw_client(moto_server).head_object(Bucket=bucket, Key="p/data/11/big")
    # S3 marks multipart objects with an ETag of "<md5 of part md5s>-<parts>".
    assert head["ETag"].strip('"').endswith("-3")
    assert backend.get("data/11/big") == data
    assert backend.get("data/11/big", 5 * 1024 * 1024 - 3, 10) == data[5242877:5242887]
    uploads = raw_client(moto_server).list_multipart_uploads(Bucket=bucket)
    assert not uploads.get("Uploads")


def test_object_lock_retention(moto_server: S3Server) -> None:
    bucket = new_bucket()
    backend = open_backend(
        f"s3:{moto_server.endpoint}/{bucket}/locked?object-lock-days=2&object-lock-mode=governance"
    )
    backend.put("snapshots/s1", b"precious")
    client = raw_client(moto_server)
    assert (
        client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"][
            "ObjectLockEnabled"
        ]
        == "Enabled"
    )
    # (moto answers GetObjectRetention with a body botocore cannot parse; HEAD
    # reports the same retention.)
    head = client.head_object(Bucket=bucket, Key="locked/snapshots/s1")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert datetime.now(UTC) + timedelta(days=1) < until < datetime.now(UTC) + timedelta(days=3)
    # The backend's delete hides the object (a delete marker) ...
    backend.delete("snapshots/s1")
    assert not backend.exists("snapshots/s1")
    # ... but the locked version itself cannot be destroyed before its date:
    # that is what protects a repository from a compromised machine.
    versions = client.list_object_versions(Bucket=bucket, Prefix="locked/")["Versions"]
    assert len(versions) == 1
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        client.delete_object(
            Bucket=bucket, Key="locked/snapshots/s1", VersionId=versions[0]["VersionId"]
        )
    body = client.get_object(
        Bucket=bucket, Key="locked/snapshots/s1", VersionId=versions[0]["VersionId"]
    )["Body"].read()
    assert body == b"precious"


def test_object_lock_on_a_bucket_without_it_is_refused(moto_server: S3Server) -> None:
    bucket = new_bucket()
    raw_client(moto_server).create_bucket(Bucket=bucket)
    backend = open_backend(f"s3:{moto_server.endpoint}/{bucket}?object-lock-days=7")
    with pytest.raises(BackendError) as info:
        backend.put("config", b"unprotected?")
    assert not isinstance(info.value, TransientBackendError | ObjectNotFound)
    assert "lock" in str(info.value).lower()
    assert not S3Backend(bucket, endpoint_url=moto_server.endpoint).exists("config")


def test_missing_bucket_reads_as_empty(moto_server: S3Server) -> None:
    backend = S3Backend(new_bucket(), "x", endpoint_url=moto_server.endpoint)
    assert list(backend.list("")) == []
    with pytest.raises(ObjectNotFound):
        backend.get("config")
    with pytest.raises(ObjectNotFound):
        backend.stat("config")
    backend.delete("config")


def test_unreachable_endpoint_is_transient() -> None:
    port = free_port()  # nothing listens there
    backend = S3Backend("bucket", endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(TransientBackendError):
        backend.get("config")
    with pytest.raises(TransientBackendError):
        backend.put("config", b"x")
    with pytest.raises(TransientBackendError):
        list(backend.list(""))


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("NoSuchKey", 404, ObjectNotFound),
        ("404", 404, ObjectNotFound),
        ("SlowDown", 503, TransientBackendError),
        ("ThrottlingException", 400, TransientBackendError),
        ("InternalError", 500, TransientBackendError),
        ("Whatever", 502, TransientBackendError),
        ("TooManyRequests", 429, TransientBackendError),
        ("AccessDenied", 403, BackendError),
        ("InvalidAccessKeyId", 403, BackendError),
    ],
)
def test_error_translation(code: str, status: int, expected: type[BackendError]) -> None:
    error = translate_error(_client_error(code, status), "object x")
    assert type(error) is expected


def test_url_forms() -> None:
    assert parse_url("bucket") == (None, "bucket", "", {})
    assert parse_url("bucket/a/b/") == (None, "bucket", "a/b", {})
    assert parse_url("https://s3.example.net:9000/bkt/pre?region=eu-west-1") == (
        "https://s3.example.net:9000",
        "bkt",
        "pre",
        {"region": "eu-west-1"},
    )
    for bad in ("", "http://host:1/", "b?object-lock-dayz=3", "b/../x", "http://u:p@h/b"):
        with pytest.raises(ValueError):
            parse_url(bad)
    with pytest.raises(ValueError):
        open_backend("s3:b?object-lock-days=-1")
    assert open_backend("s3:https://h:9/b/p").location == "s3:https://h:9/b/p"


# -- network faults between the backend and moto -------------------------------------

PROXY_FAULTS = {
    "exchange_cut_rate": 0.08,
    "cut_within": 2 << 20,
    "http_503_rate": 0.08,
    "slow_rate": 0.1,
}


def retrying(backend: Backend) -> RetryingBackend:
    return RetryingBackend(backend, attempts=20, base_delay=0.01, max_delay=0.2)


class TestS3ThroughNetworkFaults(BackendConformance, ExtraConformance):
    """Connections reset mid-transfer, 503 SlowDown answers and delays, seeded."""

    @pytest.fixture
    def backend(self, moto_server: S3Server, request: pytest.FixtureRequest) -> Iterator[Backend]:
        seed = sum(request.node.name.encode())
        with FaultProxy(moto_server.port, seed=seed, **PROXY_FAULTS) as proxy:
            backend = retrying(
                S3Backend(new_bucket(), "r", endpoint_url=f"http://127.0.0.1:{proxy.port}")
            )
            yield backend
            backend.close()


def test_complete_and_verified_through_network_faults(moto_server: S3Server) -> None:
    bucket = new_bucket()
    with FaultProxy(moto_server.port, seed=3, **PROXY_FAULTS) as proxy:
        faulted = retrying(S3Backend(bucket, "v", endpoint_url=f"http://127.0.0.1:{proxy.port}"))
        direct = S3Backend(bucket, "v", endpoint_url=moto_server.endpoint)
        write_and_verify_through_faults(faulted, direct, seed=3)
        assert proxy.faults > 5, proxy.counts
        assert faulted.retries > 0


# -- bandwidth limits measured against a real server --------------------------------------


@pytest.mark.parametrize("upload", [True, False], ids=["upload", "download"])
def test_bandwidth_limit_measured_through_s3(moto_server: S3Server, upload: bool) -> None:
    limit = 1024  # KiB/s
    bucket = new_bucket()
    raw = S3Backend(bucket, "bw", endpoint_url=moto_server.endpoint)
    payload = os.urandom(40 * KIB)
    for n in range(4):
        raw.put(f"data/{n:02x}/seed", payload)
    backend = open_backend(
        f"s3:{moto_server.endpoint}/{bucket}/bw",
        limit_upload=limit if upload else None,
        limit_download=None if upload else limit,
    )

    def work(n: int) -> None:
        for i in range(8):
            if upload:
                backend.put(f"data/{n:02x}/{i}", payload)
            else:
                assert backend.get(f"data/{n:02x}/seed") == payload

    workers = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    start = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - start
    moved = 4 * 8 * len(payload)
    # The first quarter second of the rate is free (the bucket starts full).
    rate = (moved - limit * KIB * 0.25) / elapsed / KIB
    print(
        f"S3 {'upload' if upload else 'download'}: limit {limit} KiB/s, measured {rate:.0f} KiB/s"
    )
    # Never faster than the limit; slower only by what the (shared) machine
    # costs, so the floor is loose (tests/store/test_backend_ratelimit.py
    # checks the waits exactly with a fake clock).
    assert rate < limit * 1.05
    assert rate > limit * 0.3
    backend.close()
