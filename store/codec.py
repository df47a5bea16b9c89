"""MessagePack encoding used by every structured object of the format.

``pack`` is deterministic for the values we give it (maps are written in
insertion order; callers build them in a fixed order), which content addressing
needs: the same tree page always hashes to the same ID.
"""

from __future__ import annotations

from typing import Any

import msgpack

from store.errors import IntegrityError


def pack(value: object) -> bytes:
    """Encode ``value`` (bytes as bin, str as UTF-8 str)."""
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def unpack(raw: bytes, what: str) -> Any:
    """Decode; raises IntegrityError naming ``what`` if ``raw`` is not msgpack."""
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (msgpack.UnpackException, ValueError, TypeError) as exc:
        raise IntegrityError(f"{what}: malformed ({exc})") from exc
