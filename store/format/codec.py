"""MessagePack encoding used by every structured object of the format.

``encode`` is deterministic for the values we give it (maps are written in
insertion order; callers build them in a fixed order), which content addressing
needs: the same tree page always hashes to the same ID.

Decoding is the first thing that touches bytes an attacker may have chosen (a
former administrator holds a key and can seal any plaintext), so the field
accessors below check every type and range explicitly: never with ``assert``
(``python -O`` removes those), never with ``int()``/``bytes()`` conversions
(``bytes(2**40)`` allocates a terabyte). Each raises :class:`IntegrityError`
naming the object, and :func:`check_version` is the one place a too-new
version is told apart from damage (:class:`FormatTooNew`, exit code 14).
msgpack itself refuses lengths larger than the input before allocating (its
``max_*_len`` limits default to the buffer's size) and nesting deeper than
its stack (``StackError``, a ``ValueError``).
"""

from __future__ import annotations

from typing import Any

import msgpack

from store.errors import FormatTooNew, IntegrityError

# The largest value of a msgpack uint 64 / int 64 (the format's integers).
U64_MAX = (1 << 64) - 1
I64_MAX = (1 << 63) - 1
U32_MAX = (1 << 32) - 1


def encode(value: object) -> bytes:
    """Encode ``value`` (bytes as bin, str as UTF-8 str)."""
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def decode(raw: bytes, what: str) -> Any:
    """Decode; raises IntegrityError naming ``what`` if ``raw`` is not msgpack."""
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (msgpack.UnpackException, ValueError, TypeError) as exc:
        raise IntegrityError(f"{what}: malformed ({exc})") from exc


def decode_map(raw: bytes, what: str, supported: int) -> dict[Any, Any]:
    """Decode a versioned object (a map with ``"v"``) and check its version.

    Raises FormatTooNew when ``v`` is above ``supported``, IntegrityError when
    ``raw`` is not such a map.
    """
    data = decode(raw, what)
    if not isinstance(data, dict):
        raise IntegrityError(f"{what}: malformed (not a map)")
    check_version(data.get("v"), what, supported)
    return data


def check_version(version: object, what: str, supported: int) -> int:
    """The format's one version check for decoded objects (FORMAT.md §8).

    A positive integer up to ``supported`` is returned; a larger one means a
    newer Coffer wrote the object: FormatTooNew (exit code 14). Anything else
    (missing, zero, not an integer) is damage: IntegrityError (exit code 13).
    Called only on authenticated plaintext, so a too-new version is never a
    bit flip.
    """
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise IntegrityError(f"{what}: malformed (bad version {version!r})")
    if version > supported:
        raise FormatTooNew(
            f"{what}: written by a newer Coffer (version {version}; this Coffer reads up to "
            f"{supported}): upgrade Coffer"
        )
    return version


def field_int(value: object, what: str, name: str, low: int = 0, high: int = U64_MAX) -> int:
    """``value`` as an int in [low, high]; bools and other types are damage."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise IntegrityError(f"{what}: malformed {name} ({_show(value)})")
    return value


def field_bytes(value: object, what: str, name: str, size: int | None = None) -> bytes:
    """``value`` as bytes (msgpack bin), of exactly ``size`` bytes when given."""
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        raise IntegrityError(f"{what}: malformed {name} ({_show(value)})")
    return value


def field_str(value: object, what: str, name: str) -> str:
    """``value`` as a str (msgpack str)."""
    if not isinstance(value, str):
        raise IntegrityError(f"{what}: malformed {name} ({_show(value)})")
    return value


def field_list(value: object, what: str, name: str, length: int | None = None) -> list[Any]:
    """``value`` as a list (msgpack array), of exactly ``length`` items when given."""
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise IntegrityError(f"{what}: malformed {name} ({_show(value)})")
    return value


def field_map(value: object, what: str, name: str) -> dict[Any, Any]:
    """``value`` as a dict (msgpack map)."""
    if not isinstance(value, dict):
        raise IntegrityError(f"{what}: malformed {name} ({_show(value)})")
    return value


def field_str_map(value: object, what: str, name: str) -> dict[str, str]:
    """``value`` as a map of str to str."""
    data = field_map(value, what, name)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise IntegrityError(f"{what}: malformed {name} (not str to str)")
    return data


def _show(value: object) -> str:
    """A short description of a bad value for a message (never the whole value)."""
    if isinstance(value, int | float | bool) or value is None:
        return repr(value)[:40]
    return type(value).__name__
