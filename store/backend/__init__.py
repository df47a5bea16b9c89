"""Storage backends and the registry that opens one from a repository URL.

URL forms (docs/backends.md describes each with its credentials and options):

- ``/path/to/repo`` or ``local:/path/to/repo``: a local directory.
- ``s3:BUCKET/PREFIX``, ``s3:http(s)://HOST:PORT/BUCKET/PREFIX``: S3 and S3-compatible.
- ``azure:CONTAINER/PREFIX``: Azure Blob Storage.
- ``gs:BUCKET/PREFIX``: Google Cloud Storage.
- ``sftp:USER@HOST:PORT/PATH`` (or ``sftp:USER@HOST:PATH``): SFTP over SSH.
- ``rclone:REMOTE:PATH``: any remote of the rclone binary.

Remote schemes are registered in ``_SCHEMES`` and imported only when used, so
a machine without a cloud SDK still runs local repositories. Each SDK is an extra
of the ``coffer`` distribution (``_EXTRAS``): opening a backend whose SDK is not
installed raises :class:`~store.errors.BackendNotInstalled`, naming the extra.

Wrappers (retry, bandwidth limits, metadata cache) are backends around any
backend; :func:`open_backend` composes them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType

from store.backend.base import (
    Backend,
    ConditionalWriteUnsupported,
    ObjectInfo,
    TempObject,
    validate_key,
)
from store.backend.cache import CachingBackend, DirectView
from store.backend.local import LocalBackend
from store.backend.ratelimit import RateLimitedBackend
from store.backend.redact import redact_text, redact_url
from store.backend.retry import RetryingBackend
from store.errors import BackendNotInstalled

# scheme -> "module:function" returning a Backend for the rest of the URL.
_SCHEMES: dict[str, str] = {
    "s3": "store.backend.s3:from_url",
    "azure": "store.backend.azure_blob:from_url",
    "gs": "store.backend.gcs:from_url",
    "sftp": "store.backend.sftp:from_url",
    "rclone": "store.backend.rclone:from_url",
}
# scheme -> (the extra of pyproject.toml that installs its SDK, the SDK's
# distribution, its top-level import names). rclone needs the rclone program, not a
# Python package.
_EXTRAS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "s3": ("s3", "boto3", ("boto3", "botocore")),
    "azure": ("azure", "azure-storage-blob", ("azure",)),
    "gs": ("gcs", "google-cloud-storage", ("google",)),
    "sftp": ("sftp", "paramiko", ("paramiko",)),
}


def _import_scheme(scheme: str, module_name: str) -> ModuleType:
    """Import a backend module; a missing SDK becomes BackendNotInstalled (any other
    missing module is a broken installation and propagates as it is)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        extra, distribution, roots = _EXTRAS.get(scheme, ("", "", ()))
        if (exc.name or "").partition(".")[0] not in roots:
            raise
        raise BackendNotInstalled(
            f"the {scheme}: backend needs {distribution}, which is not installed: "
            f"pip install 'coffer[{extra}]'"
        ) from None


def _open_raw(url: str) -> tuple[Backend, bool]:
    """The bare backend a URL names, and whether it is remote."""
    scheme, sep, rest = url.partition(":")
    if sep and scheme in _SCHEMES:
        module_name, _, function_name = _SCHEMES[scheme].partition(":")
        factory: Callable[[str], Backend] = getattr(
            _import_scheme(scheme, module_name), function_name
        )
        return factory(rest), True
    if sep and scheme == "local":
        return LocalBackend(rest), False
    if sep and len(scheme) > 1 and "/" not in scheme and scheme.isalnum():
        raise ValueError(f"unknown repository scheme {scheme!r} in {redact_url(url)!r}")
    return LocalBackend(url), False


def reads_locally(backend: Backend) -> bool:
    """True when ``backend`` reads a local directory (a LocalBackend, through any
    of the wrappers above): a read costs a system call, not a request, so
    small ranged reads cost nothing more than large ones. Raises nothing."""
    return local_backend(backend) is not None


def local_backend(backend: Backend) -> LocalBackend | None:
    """The LocalBackend ``backend`` reads through (past the wrappers above), or
    None when it reads something else. Raises nothing."""
    while True:
        if isinstance(backend, LocalBackend):
            return backend
        if isinstance(backend, CachingBackend | RateLimitedBackend | RetryingBackend):
            backend = backend.inner
        elif isinstance(backend, DirectView):
            backend = backend.cache
        else:
            return None


def is_remote(url: str) -> bool:
    """True when the URL names a remote backend (one of the registered schemes).

    Raises nothing: a malformed URL is reported by :func:`open_backend`.
    """
    scheme, sep, _ = url.partition(":")
    return bool(sep) and scheme in _SCHEMES


def open_backend(
    url: str,
    *,
    limit_upload: float | None = None,
    limit_download: float | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    retry: bool | None = None,
) -> Backend:
    """Return the backend a repository URL names, wrapped as the options ask.

    - ``limit_upload`` / ``limit_download``: bandwidth limits in KiB/s
      (``--limit-upload`` / ``--limit-download``); None or 0 is unlimited.
    - ``cache_dir``: keep metadata objects (index, snapshots, keys, config,
      tree packs) in this local directory; give each repository its own.
    - ``retry``: retry transient errors with backoff; by default on for remote
      backends and off for local directories.

    The layers, outermost first: cache, retry, bandwidth limit, backend (so
    cache hits cost no bandwidth, and every retried transfer is counted).
    Constructing a backend does no network I/O; errors show on first use.
    Raises ValueError for an unknown scheme or a malformed URL, and
    BackendNotInstalled when the scheme's SDK is not installed.
    """
    backend, remote = _open_raw(url)
    if limit_upload or limit_download:
        backend = RateLimitedBackend(
            backend, upload_kib=limit_upload or None, download_kib=limit_download or None
        )
    if retry if retry is not None else remote:
        backend = RetryingBackend(backend)
    if cache_dir is not None:
        backend = CachingBackend(backend, cache_dir)
    return backend


__all__ = [
    "Backend",
    "CachingBackend",
    "ConditionalWriteUnsupported",
    "LocalBackend",
    "ObjectInfo",
    "RateLimitedBackend",
    "RetryingBackend",
    "TempObject",
    "is_remote",
    "open_backend",
    "reads_locally",
    "redact_text",
    "redact_url",
    "validate_key",
]
