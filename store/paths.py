"""Item paths inside an owner's tree, and their LMDB keys.

An item path is a sequence of names (bytes). API callers give ``str`` paths
with ``/`` separators; names that are not valid UTF-8 on the local disk travel
as surrogate escapes (``os.fsencode``). The key of a path is its names joined
by NUL, so key order is the depth-first order of the tree (FORMAT.md §10).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from store.tree import validate_name

SEPARATOR = b"\x00"


def split_path(path: str | bytes | Sequence[bytes]) -> tuple[bytes, ...]:
    """Names of ``path``. Raises ValueError on empty, ``.``/``..`` or NUL names."""
    if isinstance(path, str):
        parts = tuple(os.fsencode(part) for part in path.strip("/").split("/"))
    elif isinstance(path, bytes):
        parts = tuple(path.strip(b"/").split(b"/"))
    else:
        parts = tuple(path)
    if parts == (b"",):
        raise ValueError("the root has no path key")
    for part in parts:
        validate_name(part)
    return parts


def path_key(path: str | bytes | Sequence[bytes]) -> bytes:
    return SEPARATOR.join(split_path(path))


def key_names(key: bytes) -> list[bytes]:
    return key.split(SEPARATOR)


def key_to_path(key: bytes) -> str:
    return "/".join(os.fsdecode(name) for name in key.split(SEPARATOR))


def parent_key(key: bytes) -> bytes:
    """Key of the parent directory; b"" for a top-level item."""
    head, sep, _ = key.rpartition(SEPARATOR)
    return head if sep else b""


def is_under(key: bytes, prefix: bytes) -> bool:
    """True when ``key`` is ``prefix`` itself or inside it (b"" contains all)."""
    return not prefix or key == prefix or key.startswith(prefix + SEPARATOR)
