"""Google Cloud Storage, through google-cloud-storage.

URL form (see docs/backends.md)::

    gs:BUCKET[/PREFIX][?project=PROJECT]

Credentials come from Google's Application Default Credentials
(``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's login, the metadata server).
With ``STORAGE_EMULATOR_HOST`` set (read when the backend is opened), the
client talks to that emulator with anonymous credentials. ``project`` (or
``GOOGLE_CLOUD_PROJECT``) is only needed when the backend has to create the
bucket.

Writes are plain uploads without generation preconditions: the engine's
object names are content-addressed or random, so two writers of one name
write the same bytes. Only ``create`` (the maintenance lock) is conditional:
``ifGenerationMatch=0``, which GCS refuses with 412 when the name exists. The
emulator the tests use ignores it; the probe notices and the lock falls back
to its lease. Objects above 8 MiB go
up as resumable uploads in 8 MiB chunks; the object appears only when the last
chunk is in, so readers never see a prefix. The library's own retries are
off: retrying belongs to :class:`store.backend.retry.RetryingBackend`.
"""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Iterator
from typing import Any

import google.api_core.exceptions as api_errors
import google.auth.exceptions as auth_errors
import requests
import urllib3.exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse

from store.backend.base import Backend, CreateProbe, ObjectInfo, validate_key
from store.backend.options import join_key, split_container, split_options
from store.errors import BackendError, ObjectNotFound, TransientBackendError

MiB = 1024 * 1024
CHUNK_SIZE = 8 * MiB  # a multiple of 256 KiB, as resumable uploads require
TIMEOUT = (10, 120)  # connect, read (seconds)
_TRANSIENT = (
    api_errors.TooManyRequests,
    api_errors.InternalServerError,
    api_errors.BadGateway,
    api_errors.ServiceUnavailable,
    api_errors.GatewayTimeout,
)

OPTIONS = ("project",)


def translate_error(exc: Exception, what: str) -> BackendError:
    """Map google-cloud-storage (and underlying requests) exceptions to ours."""
    if isinstance(exc, api_errors.NotFound):
        return ObjectNotFound(f"{what} not found")
    if isinstance(exc, _TRANSIENT):
        return TransientBackendError(f"GCS error on {what}: {exc.code} {exc.message}")
    if isinstance(exc, api_errors.GoogleAPICallError):
        code = exc.code or 0
        if isinstance(code, int) and (code >= 500 or code == 408):
            return TransientBackendError(f"GCS error on {what}: {code}")
        return BackendError(f"GCS refused {what}: {code} {exc.message}")
    if isinstance(exc, auth_errors.TransportError):
        return TransientBackendError(f"GCS credentials could not be refreshed for {what}: {exc}")
    if isinstance(exc, auth_errors.GoogleAuthError):
        return BackendError(f"GCS credentials problem for {what}: {exc}")
    if isinstance(
        exc,
        DataCorruption
        | InvalidResponse
        | requests.RequestException
        | urllib3.exceptions.HTTPError
        | http.client.HTTPException
        | OSError,
    ):
        return TransientBackendError(f"GCS connection problem on {what}: {exc}")
    return BackendError(f"GCS failure on {what}: {exc}")


class GcsBackend(Backend):
    """Objects in one bucket under a name prefix.

    Thread-safe: each thread gets its own client (and HTTP session), since
    google-cloud-storage does not promise that one client may be shared.
    ``put`` creates the bucket when GCS says it does not exist; reads of a
    missing bucket raise ObjectNotFound and lists are empty.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        project: str | None = None,
        emulator: str | None = None,
    ) -> None:
        self._bucket_name = bucket
        self._prefix = prefix.strip("/")
        self._project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or None
        # Read once here, so clients made later by other threads agree.
        self._emulator = emulator or os.environ.get("STORAGE_EMULATOR_HOST") or None
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        self._probe = CreateProbe()

    @property
    def location(self) -> str:
        return f"gs:{self._bucket_name}" + (f"/{self._prefix}" if self._prefix else "")

    def _bucket(self) -> Any:
        bucket = getattr(self._local, "bucket", None)
        if bucket is None:
            try:
                if self._emulator:
                    client = storage.Client(
                        project=self._project or "<none>",
                        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                        client_options={"api_endpoint": self._emulator},
                    )
                else:
                    client = storage.Client(project=self._project)
            except Exception as exc:
                raise translate_error(exc, self.location) from exc
            with self._lock:
                self._clients.append(client)
            bucket = client.bucket(self._bucket_name)
            self._local.bucket = bucket
        return bucket

    def _name(self, key: str) -> str:
        validate_key(key)
        return join_key(self._prefix, key)

    def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        try:
            try:
                self._upload(name, data)
            except api_errors.NotFound:
                self._create_bucket()
                self._upload(name, data)
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc

    def _upload(self, name: str, data: bytes, *, if_generation_match: int | None = None) -> None:
        blob = self._bucket().blob(name, chunk_size=CHUNK_SIZE if len(data) > CHUNK_SIZE else None)
        blob.upload_from_string(
            data,
            content_type="application/octet-stream",
            timeout=TIMEOUT,
            retry=None,
            if_generation_match=if_generation_match,
        )

    def create(self, key: str, data: bytes) -> bool:
        self._probe.require(self._create_once, self.delete, self.location)
        return self._create_once(key, data)

    def _create_once(self, key: str, data: bytes) -> bool:
        name = self._name(key)
        try:
            try:
                self._upload(name, data, if_generation_match=0)
            except api_errors.PreconditionFailed:
                return False
            except api_errors.NotFound:
                self._create_bucket()
                self._upload(name, data, if_generation_match=0)
        except api_errors.PreconditionFailed:
            return False
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc
        return True

    def _create_bucket(self) -> None:
        with self._lock:
            try:
                self._bucket().create(project=self._project, timeout=TIMEOUT, retry=None)
            except api_errors.Conflict:
                pass  # created meanwhile

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        name = self._name(key)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if length == 0:
            self.stat(key)
            return b""
        end = None if length is None else offset + length - 1  # inclusive
        try:
            data = (
                self._bucket()
                .blob(name)
                .download_as_bytes(start=offset or None, end=end, timeout=TIMEOUT, retry=None)
            )
        except api_errors.RequestRangeNotSatisfiable:
            # The range starts at or past the end: empty, if the object exists.
            self.stat(key)
            return b""
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc
        return bytes(data)

    def stat(self, key: str) -> ObjectInfo:
        name = self._name(key)
        try:
            blob = self._bucket().get_blob(name, timeout=TIMEOUT, retry=None)
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc
        if blob is None:
            raise ObjectNotFound(f"object {key} not found")
        return ObjectInfo(key, int(blob.size))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        full = join_key(self._prefix, prefix)
        strip = len(self._prefix) + 1 if self._prefix else 0
        try:
            for blob in self._bucket().list_blobs(prefix=full or None, timeout=TIMEOUT, retry=None):
                yield ObjectInfo(str(blob.name)[strip:], int(blob.size))
        except api_errors.NotFound:
            return  # no bucket: no objects
        except Exception as exc:
            raise translate_error(exc, f"listing {prefix or '/'}") from exc

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            self._bucket().delete_blob(name, timeout=TIMEOUT, retry=None)
        except api_errors.NotFound:
            return
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()


def from_url(rest: str) -> GcsBackend:
    """Open a ``gs:`` repository URL (the part after the scheme)."""
    location, options = split_options(rest, OPTIONS, "gs")
    bucket, prefix = split_container(location, "gs", "bucket")
    return GcsBackend(bucket, prefix, project=options.get("project") or None)
