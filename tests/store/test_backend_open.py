"""open_backend: URL schemes, lazy imports, and how the wrappers are composed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from store.backend import (
    CachingBackend,
    LocalBackend,
    RateLimitedBackend,
    RetryingBackend,
    open_backend,
)
from store.backend.azure_blob import AzureBlobBackend
from store.backend.gcs import GcsBackend
from store.backend.rclone import RcloneBackend
from store.backend.s3 import S3Backend
from store.backend.sftp import SftpBackend


@pytest.fixture(autouse=True)
def azure_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Opening does no I/O, but the Azure backend wants credentials up front.
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "account")
    monkeypatch.setenv("AZURE_STORAGE_KEY", "a2V5")
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)


@pytest.mark.parametrize(
    ("url", "kind", "location"),
    [
        ("s3:bucket/prefix", S3Backend, "s3:bucket/prefix"),
        ("s3:http://127.0.0.1:9000/bucket", S3Backend, "s3:http://127.0.0.1:9000/bucket"),
        ("azure:container/p", AzureBlobBackend, "azure:container/p (account account)"),
        ("gs:bucket/p/q", GcsBackend, "gs:bucket/p/q"),
        ("sftp:u@host:2222/srv/repo", SftpBackend, "sftp:u@host:2222/srv/repo"),
        ("rclone:remote:path", RcloneBackend, "rclone:remote:path"),
    ],
)
def test_remote_urls_are_retried_by_default(url: str, kind: type, location: str) -> None:
    backend = open_backend(url)
    assert isinstance(backend, RetryingBackend)
    assert isinstance(backend.inner, kind)
    assert backend.location == location
    assert isinstance(open_backend(url, retry=False), kind)
    backend.close()


def test_local_paths_stay_bare_unless_asked(tmp_path: Path) -> None:
    assert isinstance(open_backend(str(tmp_path)), LocalBackend)
    assert isinstance(open_backend(f"local:{tmp_path}"), LocalBackend)
    retried = open_backend(str(tmp_path), retry=True)
    assert isinstance(retried, RetryingBackend)
    assert isinstance(retried.inner, LocalBackend)


def test_wrappers_compose_cache_then_retry_then_limits(tmp_path: Path) -> None:
    backend = open_backend(
        "s3:bucket/prefix", limit_upload=512, limit_download=1024, cache_dir=tmp_path / "cache"
    )
    assert isinstance(backend, CachingBackend)
    retry = backend.inner
    assert isinstance(retry, RetryingBackend)
    limits = retry.inner
    assert isinstance(limits, RateLimitedBackend)
    assert limits.upload is not None
    assert limits.upload.rate == 512 * 1024
    assert limits.download is not None
    assert limits.download.rate == 1024 * 1024
    assert isinstance(limits.inner, S3Backend)
    assert backend.location == "s3:bucket/prefix"


def test_unknown_schemes_and_bad_urls() -> None:
    with pytest.raises(ValueError, match="unknown repository scheme"):
        open_backend("ftp:host/path")
    for url in ("s3:", "gs:/", "azure:", "sftp:host", "rclone:nocolon", "s3:b?nope=1"):
        with pytest.raises(ValueError):
            open_backend(url)


def test_cloud_sdks_are_imported_only_when_used() -> None:
    code = (
        "import sys\n"
        "from store.backend import open_backend\n"
        "open_backend('/tmp')\n"
        "heavy = [m for m in ('boto3', 'azure.storage.blob', 'google.cloud.storage', 'paramiko')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
