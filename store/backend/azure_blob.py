"""Azure Blob Storage, through azure-storage-blob.

URL form (see docs/backends.md)::

    azure:CONTAINER[/PREFIX]

The account comes from the environment, in this order:

- ``AZURE_STORAGE_CONNECTION_STRING``: a full connection string;
- ``AZURE_STORAGE_ACCOUNT`` with ``AZURE_STORAGE_KEY`` (shared key) or
  ``AZURE_STORAGE_SAS_TOKEN`` (a SAS token for the container or account).

``AZURE_STORAGE_ENDPOINT`` overrides the blob endpoint
(``https://ACCOUNT.blob.core.windows.net`` by default), for Azurite, sovereign
clouds or private endpoints; a connection string carries its own endpoint.

Objects are block blobs. Up to 16 MiB they go up in one Put Blob; bigger ones
as blocks committed by one Put Block List, which is atomic. Every upload
carries a transactional MD5. ``create`` uploads with ``overwrite=False``, which
the SDK sends as ``If-None-Match: *`` (409 BlobAlreadyExists when the name is
taken). The SDK's own retries are off: retrying belongs
to :class:`store.backend.retry.RetryingBackend`.
"""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Iterator
from typing import Any

import urllib3.exceptions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobServiceClient, ContainerClient

from store.backend.base import Backend, CreateProbe, ObjectInfo, validate_key
from store.backend.options import join_key, split_container, split_options
from store.errors import BackendError, ObjectNotFound, TransientBackendError

MiB = 1024 * 1024
SINGLE_PUT_LIMIT = 16 * MiB
BLOCK_SIZE = 8 * MiB
_TRANSIENT_CODES = frozenset({"ServerBusy", "OperationTimedOut", "InternalError"})
_TRANSIENT_STATUS = frozenset({408, 429})


def translate_error(exc: Exception, what: str) -> BackendError:
    """Map an azure-core exception to the engine's error classes."""
    if isinstance(exc, ResourceNotFoundError):
        return ObjectNotFound(f"{what} not found")
    if isinstance(exc, ClientAuthenticationError):
        return BackendError(f"Azure refused the credentials for {what}: {exc.reason}")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        code = str(getattr(exc, "error_code", None) or "")
        if status in _TRANSIENT_STATUS or status >= 500 or code in _TRANSIENT_CODES:
            return TransientBackendError(f"Azure error on {what}: {code or status}")
        if status == 0:  # no status: the answer was cut off or garbled
            return TransientBackendError(f"Azure answer for {what} was incomplete: {exc}")
        return BackendError(f"Azure refused {what}: {code or status} {exc.reason or ''}".rstrip())
    if isinstance(
        exc,
        ServiceRequestError
        | ServiceResponseError
        | AzureError
        | urllib3.exceptions.HTTPError
        | http.client.HTTPException
        | OSError,
    ):
        return TransientBackendError(f"Azure connection problem on {what}: {exc}")
    return BackendError(f"Azure failure on {what}: {exc}")


def _service_client(environ: dict[str, str] | os._Environ[str]) -> BlobServiceClient:
    """Build the service client from the environment; BackendError when nothing is set."""
    settings: dict[str, Any] = {
        # One retry policy for all backends: RetryingBackend's.
        "retry_total": 0,
        "connection_timeout": 10,
        "read_timeout": 120,
        "max_single_put_size": SINGLE_PUT_LIMIT,
        "max_block_size": BLOCK_SIZE,
    }
    connection_string = environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection_string:
        return BlobServiceClient.from_connection_string(connection_string, **settings)
    account = environ.get("AZURE_STORAGE_ACCOUNT")
    key = environ.get("AZURE_STORAGE_KEY")
    sas = environ.get("AZURE_STORAGE_SAS_TOKEN")
    if not account or not (key or sas):
        raise BackendError(
            "no Azure credentials: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT "
            "with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN"
        )
    endpoint = environ.get("AZURE_STORAGE_ENDPOINT") or f"https://{account}.blob.core.windows.net"
    credential: Any = {"account_name": account, "account_key": key} if key else sas
    return BlobServiceClient(endpoint.rstrip("/"), credential=credential, **settings)


class AzureBlobBackend(Backend):
    """Block blobs in one container under a name prefix. Thread-safe (Azure clients are).

    ``put`` creates the container when Azure says it does not exist; reads of
    a missing container raise ObjectNotFound and lists are empty.
    """

    def __init__(
        self, container: str, prefix: str = "", *, service: BlobServiceClient | None = None
    ) -> None:
        self._service = service if service is not None else _service_client(os.environ)
        self._container_name = container
        self._prefix = prefix.strip("/")
        self._container: ContainerClient = self._service.get_container_client(container)
        self._create_lock = threading.Lock()
        self._probe = CreateProbe()

    @property
    def location(self) -> str:
        account = self._service.account_name or "?"
        suffix = f"/{self._prefix}" if self._prefix else ""
        return f"azure:{self._container_name}{suffix} (account {account})"

    def _name(self, key: str) -> str:
        validate_key(key)
        return join_key(self._prefix, key)

    def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        try:
            try:
                self._upload(name, data)
            except ResourceNotFoundError as exc:
                if getattr(exc, "error_code", None) != "ContainerNotFound":
                    raise
                self._create_container()
                self._upload(name, data)
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc

    def _upload(self, name: str, data: bytes, *, overwrite: bool = True) -> None:
        self._container.upload_blob(
            name,
            data,
            length=len(data),
            overwrite=overwrite,
            validate_content=True,
            max_concurrency=4,
        )

    def create(self, key: str, data: bytes) -> bool:
        self._probe.require(self._create_once, self.delete, self.location)
        return self._create_once(key, data)

    def _create_once(self, key: str, data: bytes) -> bool:
        name = self._name(key)
        try:
            try:
                self._upload(name, data, overwrite=False)
            except ResourceNotFoundError as exc:
                if getattr(exc, "error_code", None) != "ContainerNotFound":
                    raise
                self._create_container()
                self._upload(name, data, overwrite=False)
        except ResourceExistsError:
            return False
        except HttpResponseError as exc:
            if exc.status_code in (409, 412):
                return False
            raise translate_error(exc, f"object {key}") from exc
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc
        return True

    def _create_container(self) -> None:
        with self._create_lock:
            try:
                self._container.create_container()
            except ResourceExistsError:
                pass

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        name = self._name(key)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if length == 0:
            self.stat(key)
            return b""
        blob = self._container.get_blob_client(name)
        try:
            stream = blob.download_blob(
                offset=offset if offset or length is not None else None,
                length=length,
                max_concurrency=4,
            )
            data = stream.readall()
        except HttpResponseError as exc:
            if exc.status_code == 416:
                # The range starts at or past the end: empty, if the blob exists.
                self.stat(key)
                return b""
            raise translate_error(exc, f"object {key}") from exc
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc
        return bytes(data)

    def stat(self, key: str) -> ObjectInfo:
        name = self._name(key)
        try:
            properties = self._container.get_blob_client(name).get_blob_properties()
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc
        return ObjectInfo(key, int(properties.size))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        full = join_key(self._prefix, prefix)
        strip = len(self._prefix) + 1 if self._prefix else 0
        try:
            for item in self._container.list_blobs(name_starts_with=full or None):
                yield ObjectInfo(str(item.name)[strip:], int(item.size))
        except ResourceNotFoundError:
            return  # no container: no objects
        except Exception as exc:
            raise translate_error(exc, f"listing {prefix or '/'}") from exc

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            self._container.delete_blob(name)
        except ResourceNotFoundError:
            return
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc

    def close(self) -> None:
        self._service.close()


OPTIONS: tuple[str, ...] = ()


def from_url(rest: str) -> AzureBlobBackend:
    """Open an ``azure:`` repository URL (the part after the scheme)."""
    location, _ = split_options(rest, OPTIONS, "azure")
    container, prefix = split_container(location, "azure", "container")
    return AzureBlobBackend(container, prefix)
