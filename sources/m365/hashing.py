"""A download sink that hashes what is written, to verify OneDrive content.

OneDrive for Business gives ``file.hashes.quickXorHash`` (base64); personal
drives and some libraries give ``sha1Hash`` / ``sha256Hash`` (hex). The sink
restarts its hashes whenever the client truncates it for a retried download.
"""

from __future__ import annotations

import base64
import hashlib
from typing import IO, Any

from quickxorhash import quickxorhash


class HashingSink:
    """Wraps a binary file: write/seek/truncate/flush, hashing every byte written."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self._reset()

    def _reset(self) -> None:
        self._qx = quickxorhash()
        self._sha1 = hashlib.sha1()  # noqa: S324 (OneDrive's own content hash)
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._qx.update(data)
        self._sha1.update(data)
        self._sha256.update(data)
        self.size += len(data)
        return self.inner.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.inner.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        if not size:
            self._reset()
        return self.inner.truncate(size)

    def flush(self) -> None:
        self.inner.flush()

    def mismatch(self, item: dict[str, Any]) -> str | None:
        """Why the content does not match ``item`` (size, hashes), or None."""
        expected_size = item.get("size")
        if isinstance(expected_size, int) and expected_size != self.size:
            return f"size {self.size} differs from the {expected_size} bytes Graph announced"
        hashes = (item.get("file") or {}).get("hashes") or {}
        qx = hashes.get("quickXorHash")
        if qx and base64.b64encode(self._qx.digest()).decode() != qx:
            return "content does not match its quickXorHash"
        sha256 = hashes.get("sha256Hash")
        if sha256 and self._sha256.hexdigest().lower() != str(sha256).lower():
            return "content does not match its sha256Hash"
        sha1 = hashes.get("sha1Hash")
        if sha1 and self._sha1.hexdigest().lower() != str(sha1).lower():
            return "content does not match its sha1Hash"
        return None
