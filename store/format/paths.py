"""Item paths inside an owner's tree, and their LMDB keys.

An item path is a sequence of names (bytes). API callers give ``str`` paths
with ``/`` separators; names that are not valid UTF-8 on the local disk travel
as surrogate escapes (``os.fsencode``). The key of a path is its names joined
by NUL, so key order is the depth-first order of the tree (FORMAT.md §10).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from store.format.tree import validate_name

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


_UNSAFE = {"/", "%", "\x00"}
_MAX_NAME_BYTES = 255


def _escape(ch: str) -> str:
    if ch in _UNSAFE or ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"%{ord(ch):02X}"
    if 0xD800 <= ord(ch) <= 0xDFFF:
        # A lone surrogate (JSON allows "\ud800"): not encodable as a file
        # name, so it is percent-encoded like a control character.
        return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return ch


def safe_component(text: str) -> str:
    """``text`` as one safe, reversible path component.

    ``%``, ``/``, NUL, control characters and lone surrogates are
    percent-encoded, ``.`` and ``..`` become ``%2E`` and ``%2E%2E``, so
    distinct inputs stay distinct, every result is a valid file name, and no
    name can climb out of its directory. Names longer than 255 bytes are cut
    and given a hash suffix (still unique, no longer reversible).
    """
    if text in (".", ".."):
        return "%2E" * len(text)
    out = "".join(_escape(ch) for ch in text)
    if not out:
        return "%00"
    raw = out.encode("utf-8")
    if len(raw) <= _MAX_NAME_BYTES:
        return out
    from blake3 import blake3

    suffix = "~" + blake3(raw).hexdigest(length=8)
    cut = raw[: _MAX_NAME_BYTES - len(suffix)].decode("utf-8", "ignore")
    return cut + suffix
