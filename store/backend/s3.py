"""Amazon S3 and S3-compatible object stores, through boto3.

URL forms (see docs/backends.md)::

    s3:BUCKET[/PREFIX][?OPTIONS]                         AWS
    s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX][?OPTIONS]   any S3-compatible endpoint

Credentials and region come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``~/.aws``, instance roles). Custom
endpoints use path-style addressing.

Objects above ``multipart_threshold`` go up as multipart uploads, which S3
assembles atomically on completion (a failed upload is aborted). Every request
carries Content-MD5, which works on every S3 dialect (and Object Lock requires
it), instead of botocore's newer default checksums that some S3-compatible
servers reject.

``create`` is a PUT with ``If-None-Match: *`` (S3 answers 412 when the key
exists; AWS has honoured it since August 2024, moto does too). Servers that
ignore the header are caught by a probe and reported as not supporting it.

botocore's own retries are off: retrying belongs to
:class:`store.backend.retry.RetryingBackend`, so a failure is retried in one
place with one policy. Errors are translated: missing key or bucket ->
ObjectNotFound; throttling, 5xx, timeouts and dropped connections ->
TransientBackendError; everything else -> BackendError.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions
import urllib3.exceptions

from store.backend.base import Backend, CreateProbe, ObjectInfo, validate_key
from store.backend.options import join_key, positive_int_option, split_container, split_options
from store.errors import BackendError, ObjectNotFound, TransientBackendError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MiB = 1024 * 1024
# Packs are about 16 MiB: one PUT each; anything bigger goes up in parts.
DEFAULT_MULTIPART_THRESHOLD = 16 * MiB
DEFAULT_PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB  # S3's floor for every part but the last
MAX_PARTS = 10_000

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchBucket"})
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequests",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
        "BadDigest",  # the body was damaged on the way: send it again
        "IncompleteBody",
    }
)
_TRANSIENT_STATUS = frozenset({408, 429})

OPTIONS = ("region", "object-lock-days", "object-lock-mode", "storage-class")


def _error_code(exc: botocore.exceptions.ClientError) -> tuple[str, int]:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), int(status)


def translate_error(exc: Exception, what: str) -> BackendError:
    """Map a boto3/botocore exception to the engine's error classes."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code, status = _error_code(exc)
        if code in _NOT_FOUND_CODES or status == 404:
            return ObjectNotFound(f"{what} not found")
        if code in _TRANSIENT_CODES or status in _TRANSIENT_STATUS or status >= 500:
            return TransientBackendError(f"S3 error on {what}: {code or status}")
        message = exc.response.get("Error", {}).get("Message", "")
        return BackendError(f"S3 refused {what}: {code or status} {message}".rstrip())
    if isinstance(
        exc,
        botocore.exceptions.NoCredentialsError
        | botocore.exceptions.PartialCredentialsError
        | botocore.exceptions.CredentialRetrievalError
        | botocore.exceptions.NoRegionError,
    ):
        return BackendError(f"S3 configuration problem for {what}: {exc}")
    if isinstance(exc, botocore.exceptions.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return BackendError(f"S3 endpoint's TLS certificate is not trusted ({what})")
    if isinstance(
        exc,
        botocore.exceptions.BotoCoreError
        | urllib3.exceptions.HTTPError
        | http.client.HTTPException
        | OSError,
    ):
        # Connection refused/reset, timeouts, truncated bodies, checksum
        # mismatches in transit: all worth another try.
        return TransientBackendError(f"S3 connection problem on {what}: {exc}")
    return BackendError(f"S3 failure on {what}: {exc}")


def _md5(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


class S3Backend(Backend):
    """Objects in one bucket under a key prefix. Thread-safe (one shared boto3 client).

    ``put`` creates the bucket when S3 says it does not exist (with Object Lock
    enabled when retention is asked for), so ``coffer init`` works on a new
    bucket; reads of a missing bucket raise ObjectNotFound and lists are empty.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        object_lock_days: int | None = None,
        object_lock_mode: str = "GOVERNANCE",
        storage_class: str | None = None,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int = DEFAULT_PART_SIZE,
        max_connections: int = 32,
    ) -> None:
        if object_lock_mode not in ("GOVERNANCE", "COMPLIANCE"):
            raise ValueError("object-lock-mode must be governance or compliance")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts must be at least {MIN_PART_SIZE} bytes")
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._endpoint_url = endpoint_url
        self._object_lock_days = object_lock_days
        self._object_lock_mode = object_lock_mode
        self._storage_class = storage_class
        self._multipart_threshold = max(multipart_threshold, MIN_PART_SIZE)
        self._part_size = part_size
        config = botocore.config.Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_connections,
            connect_timeout=10,
            read_timeout=120,
            s3={"addressing_style": "path"} if endpoint_url else {},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # Sessions are not thread-safe but clients are: build one client here.
        session = boto3.session.Session()
        self._client: S3Client = session.client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )
        self._bucket_lock = threading.Lock()
        self._probe = CreateProbe()

    @property
    def location(self) -> str:
        where = f"{self._endpoint_url.rstrip('/')}/" if self._endpoint_url else ""
        return f"s3:{where}{self._bucket}" + (f"/{self._prefix}" if self._prefix else "")

    @property
    def bucket(self) -> str:
        return self._bucket

    def _name(self, key: str) -> str:
        validate_key(key)
        return join_key(self._prefix, key)

    # -- writing ---------------------------------------------------------------

    def _write_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self._storage_class:
            args["StorageClass"] = self._storage_class
        if self._object_lock_days:
            args["ObjectLockMode"] = self._object_lock_mode
            args["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(
                days=self._object_lock_days
            )
        return args

    def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        try:
            self._put_once(name, data)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc)[0] != "NoSuchBucket":
                raise translate_error(exc, f"object {key}") from exc
            try:
                self._create_bucket()
                self._put_once(name, data)
            except Exception as again:
                raise translate_error(again, f"object {key}") from again
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc

    def create(self, key: str, data: bytes) -> bool:
        self._probe.require(self._create_once, self.delete, self.location)
        return self._create_once(key, data)

    def _create_once(self, key: str, data: bytes) -> bool:
        name = self._name(key)
        for attempt in (1, 2):
            try:
                self._client.put_object(
                    Bucket=self._bucket,
                    Key=name,
                    Body=data,
                    ContentMD5=_md5(data),
                    IfNoneMatch="*",
                    **self._write_args(),
                )
                return True
            except botocore.exceptions.ClientError as exc:
                code, status = _error_code(exc)
                if code == "PreconditionFailed" or status == 412:
                    return False
                if code == "NoSuchBucket" and attempt == 1:
                    try:
                        self._create_bucket()
                    except Exception as again:
                        raise translate_error(again, f"object {key}") from again
                    continue
                # 409 ConditionalRequestConflict: another conditional write to
                # the key is in flight; S3 says to retry.
                if code == "ConditionalRequestConflict" or status == 409:
                    raise TransientBackendError(f"S3 conflict creating {key}") from exc
                raise translate_error(exc, f"object {key}") from exc
            except Exception as exc:
                raise translate_error(exc, f"object {key}") from exc
        raise BackendError(f"S3 bucket {self._bucket} vanished while creating {key}")

    def _put_once(self, name: str, data: bytes) -> None:
        if len(data) > self._multipart_threshold:
            self._put_multipart(name, data)
            return
        self._client.put_object(
            Bucket=self._bucket, Key=name, Body=data, ContentMD5=_md5(data), **self._write_args()
        )

    def _put_multipart(self, name: str, data: bytes) -> None:
        part_size = max(self._part_size, -(-len(data) // MAX_PARTS))
        upload = self._client.create_multipart_upload(
            Bucket=self._bucket, Key=name, **self._write_args()
        )
        upload_id = upload["UploadId"]
        try:
            view = memoryview(data)
            parts: list[dict[str, Any]] = []
            for number, start in enumerate(range(0, len(data), part_size), start=1):
                chunk = bytes(view[start : start + part_size])
                answer = self._client.upload_part(
                    Bucket=self._bucket,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                    ContentMD5=_md5(chunk),
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            # Parts of an unfinished upload are billed until aborted.
            try:
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=name, UploadId=upload_id
                )
            except Exception:  # noqa: S110 - best effort; a lifecycle rule cleans up the rest
                pass
            raise

    def _create_bucket(self) -> None:
        with self._bucket_lock:
            args: dict[str, Any] = {"Bucket": self._bucket}
            region = self._client.meta.region_name
            if region and region != "us-east-1":
                args["CreateBucketConfiguration"] = {"LocationConstraint": region}
            if self._object_lock_days:
                args["ObjectLockEnabledForBucket"] = True
            try:
                self._client.create_bucket(**args)
            except botocore.exceptions.ClientError as exc:
                if _error_code(exc)[0] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    # -- reading ---------------------------------------------------------------

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        name = self._name(key)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if length == 0:
            self.stat(key)
            return b""
        args: dict[str, Any] = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=name, **args)
            return answer["Body"].read()
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc)[0] == "InvalidRange":
                # The range starts at or past the end: an empty answer, if
                # the object exists at all.
                self.stat(key)
                return b""
            raise translate_error(exc, f"object {key}") from exc
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc

    def stat(self, key: str) -> ObjectInfo:
        name = self._name(key)
        try:
            answer = self._client.head_object(Bucket=self._bucket, Key=name)
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc
        return ObjectInfo(key, answer["ContentLength"])

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        full = join_key(self._prefix, prefix)
        strip = len(self._prefix) + 1 if self._prefix else 0
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=full):
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"][strip:], item["Size"])
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc)[0] == "NoSuchBucket":
                return
            raise translate_error(exc, f"listing {prefix or '/'}") from exc
        except Exception as exc:
            raise translate_error(exc, f"listing {prefix or '/'}") from exc

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            # S3 answers 204 for a missing key too. Under Object Lock this
            # adds a delete marker; the locked version stays until it expires.
            self._client.delete_object(Bucket=self._bucket, Key=name)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc)[0] in _NOT_FOUND_CODES:
                return
            raise translate_error(exc, f"object {key}") from exc
        except Exception as exc:
            raise translate_error(exc, f"object {key}") from exc

    def close(self) -> None:
        self._client.close()


def parse_url(rest: str) -> tuple[str | None, str, str, dict[str, str]]:
    """Split the part after ``s3:`` into endpoint, bucket, prefix and options.

    Raises ValueError for a malformed URL.
    """
    location, options = split_options(rest, OPTIONS, "s3")
    endpoint: str | None = None
    path = location
    if location.startswith(("http://", "https://")):
        parts = urlsplit(location)
        if not parts.hostname:
            raise ValueError(f"s3: URL {location!r} names no host")
        if parts.username or parts.password:
            raise ValueError("put S3 credentials in the environment, not in the URL")
        endpoint = f"{parts.scheme}://{parts.netloc}"
        path = parts.path
    bucket, prefix = split_container(path, "s3", "bucket")
    return endpoint, bucket, prefix, options


def from_url(rest: str) -> S3Backend:
    """Open an ``s3:`` repository URL (the part after the scheme)."""
    endpoint, bucket, prefix, options = parse_url(rest)
    return S3Backend(
        bucket,
        prefix,
        endpoint_url=endpoint,
        region=options.get("region") or None,
        object_lock_days=positive_int_option(options, "object-lock-days"),
        object_lock_mode=options.get("object-lock-mode", "governance").upper(),
        storage_class=options.get("storage-class") or None,
    )
