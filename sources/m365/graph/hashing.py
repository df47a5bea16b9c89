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
    """Wraps a binary file: write/seek/truncate/flush, hashing every byte written
    with the hashes ``item`` announces (only those: hashing costs CPU)."""

    def __init__(self, inner: IO[bytes], item: dict[str, Any]) -> None:
        self.inner = inner
        hashes = (item.get("file") or {}).get("hashes") or {}
        self._want_qx = bool(hashes.get("quickXorHash"))
        self._want_sha1 = bool(hashes.get("sha1Hash")) and not self._want_qx
        self._want_sha256 = bool(hashes.get("sha256Hash")) and not self._want_qx
        self._reset()

    def _reset(self) -> None:
        self._qx = quickxorhash()
        self._sha1 = hashlib.sha1()  # noqa: S324 (OneDrive's own content hash)
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        if self._want_qx:
            self._qx.update(data)
        if self._want_sha1:
            self._sha1.update(data)
        if self._want_sha256:
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

    def actual(self) -> dict[str, str]:
        """The hashes of what was written, in Graph's spelling (those announced)."""
        out: dict[str, str] = {}
        if self._want_qx:
            out["quickXorHash"] = base64.b64encode(self._qx.digest()).decode()
        if self._want_sha1:
            out["sha1Hash"] = self._sha1.hexdigest().upper()
        if self._want_sha256:
            out["sha256Hash"] = self._sha256.hexdigest().upper()
        return out

    def mismatch(self, item: dict[str, Any]) -> str | None:
        """Why the content does not match ``item`` (size, hashes), or None."""
        expected_size = item.get("size")
        if isinstance(expected_size, int) and expected_size != self.size:
            return f"size {self.size} differs from the {expected_size} bytes Graph announced"
        hashes = (item.get("file") or {}).get("hashes") or {}
        if self._want_qx and base64.b64encode(self._qx.digest()).decode() != hashes.get(
            "quickXorHash"
        ):
            return "content does not match its quickXorHash"
        if (
            self._want_sha256
            and self._sha256.hexdigest().lower() != str(hashes.get("sha256Hash")).lower()
        ):
            return "content does not match its sha256Hash"
        if (
            self._want_sha1
            and self._sha1.hexdigest().lower() != str(hashes.get("sha1Hash")).lower()
        ):
            return "content does not match its sha1Hash"
        return None
