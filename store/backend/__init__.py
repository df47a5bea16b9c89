"""Storage backends and the registry that opens one from a repository URL.

URL forms (written in the README):

- ``/path/to/repo`` or ``local:/path/to/repo``: a local directory.
- Further schemes (``s3:``, ``azure:``, ``gs:``, ``sftp:``, ``rclone:``) are
  registered in ``_SCHEMES`` and imported only when used, so a machine without
  a cloud SDK still runs local repositories.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from store.backend.base import Backend, ObjectInfo, validate_key
from store.backend.local import LocalBackend

# scheme -> "module:function" returning a Backend for the rest of the URL.
_SCHEMES: dict[str, str] = {}


def open_backend(url: str) -> Backend:
    """Return the backend a repository URL names.

    Raises ValueError for an unknown scheme.
    """
    scheme, sep, rest = url.partition(":")
    if sep and scheme in _SCHEMES:
        module_name, _, function_name = _SCHEMES[scheme].partition(":")
        factory: Callable[[str], Backend] = getattr(
            importlib.import_module(module_name), function_name
        )
        return factory(rest)
    if sep and scheme == "local":
        return LocalBackend(rest)
    if sep and len(scheme) > 1 and "/" not in scheme and scheme.isalnum():
        raise ValueError(f"unknown repository scheme {scheme!r} in {url!r}")
    return LocalBackend(url)


__all__ = ["Backend", "LocalBackend", "ObjectInfo", "open_backend", "validate_key"]
