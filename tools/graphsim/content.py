"""Content bytes: derived lazily and deterministically from a spec, or stored as blobs.

A content spec is a small JSON object stored with an item:

    {"t": "rand", "seed": S, "size": N, "head": "%PDF-1.7\\n"}   incompressible bytes (head in Latin-1)
    {"t": "text", "seed": S, "size": N}                          compressible ASCII text
    {"t": "blob", "sha256": H, "size": N}                        uploaded bytes, DIR/blobs/H
    {"t": "empty"}                                               zero bytes

"rand" is the AES-128-CTR keystream for a key derived from S, so any byte range is
produced directly (Range requests, resumed downloads) at GB/s without storing anything;
"head" overlays a file-type signature. "text" is built per 64 KiB block from a word list
with a seeded PRNG. Equal specs give equal bytes, which is how attachments and files are
shared across mailboxes and drives (deduplication is then visible to a backup tool).

Hashes (quickXorHash as OneDrive reports it, SHA-1, SHA-256) are computed on first use and
cached in the store. Thread-safe.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import quickxorhash
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .store import Store

ContentSpec = dict[str, Any]

CHUNK = 256 * 1024
_TEXT_BLOCK = 64 * 1024

_WORDS = (
    "the of and to in is that for it as with was on be by at this from are or an have not "
    "which but all were when we there can been has more if will one would so about out up "
    "their what into them than some could only other time new report budget quarter team "
    "project review meeting plan customer contract invoice draft final summary agenda notes "
    "sales forecast design release backup restore archive policy security network server "
    "storage license renewal schedule deadline approval feedback proposal analysis figures"
).split()


def _aes_key(seed: int) -> bytes:
    return hashlib.sha256(b"graphsim-content:" + str(seed).encode()).digest()[:16]


@functools.lru_cache(maxsize=512)
def _text_block(seed: int, index: int) -> bytes:
    rng = random.Random(seed * 1_000_003 + index)
    out: list[str] = []
    size = 0
    line = 0
    while size < _TEXT_BLOCK:
        word = rng.choice(_WORDS)
        line += len(word) + 1
        if line > 72:
            out.append("\n")
            size += 1
            line = len(word) + 1
        out.append(word + " ")
        size += len(word) + 1
    return "".join(out).encode()[:_TEXT_BLOCK]


@dataclass(frozen=True)
class ContentSource:
    """A readable, seekable byte source of known size. Immutable, thread-safe."""

    spec: ContentSpec
    size: int
    blob_path: Path | None = None

    @property
    def key(self) -> str:
        """A stable identity of the bytes, for caching hashes."""
        return json.dumps(self.spec, sort_keys=True, separators=(",", ":"))

    def iter_range(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield bytes [start, end) in chunks of at most CHUNK bytes."""
        stop = self.size if end is None else min(end, self.size)
        if start >= stop:
            return
        kind = self.spec.get("t")
        if kind == "rand":
            yield from self._iter_rand(start, stop)
        elif kind == "text":
            yield from self._iter_text(start, stop)
        elif kind == "blob":
            assert self.blob_path is not None
            with self.blob_path.open("rb") as fh:
                fh.seek(start)
                left = stop - start
                while left > 0:
                    data = fh.read(min(CHUNK, left))
                    if not data:
                        raise OSError(f"blob {self.blob_path} is shorter than recorded")
                    left -= len(data)
                    yield data

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        return b"".join(self.iter_range(start, end))

    def _iter_rand(self, start: int, stop: int) -> Iterator[bytes]:
        key = _aes_key(int(self.spec["seed"]))
        head = str(self.spec.get("head", "")).encode("latin-1")
        pos = start
        while pos < stop:
            block_start = pos - pos % 16
            n = min(CHUNK, stop - block_start)
            n += (-n) % 16
            counter = (block_start // 16).to_bytes(16, "big")
            enc = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
            data = enc.update(bytes(n))
            data = data[pos - block_start : min(n, stop - block_start)]
            if head and pos < len(head):
                overlay = head[pos : pos + len(data)]
                data = overlay + data[len(overlay) :]
            yield data
            pos += len(data)

    def _iter_text(self, start: int, stop: int) -> Iterator[bytes]:
        seed = int(self.spec["seed"])
        pos = start
        while pos < stop:
            index, offset = divmod(pos, _TEXT_BLOCK)
            block = _text_block(seed, index)
            data = block[offset : offset + (stop - pos)]
            yield data
            pos += len(data)


class ContentStore:
    """Opens content specs, stores uploaded blobs and caches content hashes."""

    def __init__(self, blob_dir: Path, store: Store) -> None:
        self.blob_dir = blob_dir
        self.tmp_dir = blob_dir / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._store = store

    def open(self, spec: ContentSpec | None) -> ContentSource:
        if not spec or spec.get("t") == "empty":
            return ContentSource({"t": "empty"}, 0)
        if spec.get("t") == "blob":
            return ContentSource(spec, int(spec["size"]), self._blob_path(str(spec["sha256"])))
        return ContentSource(spec, int(spec["size"]))

    def _blob_path(self, sha256: str) -> Path:
        return self.blob_dir / sha256[:2] / sha256

    def new_temp(self) -> Path:
        """A new empty temporary file for an upload in progress."""
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, prefix="up-")
        os.close(fd)
        return Path(name)

    def commit_file(self, path: Path) -> ContentSpec:
        """Move a finished temporary file into the blob store; returns its spec."""
        digest = hashlib.sha256()
        qx = quickxorhash.quickxorhash()
        sha1 = hashlib.sha1()
        size = 0
        with path.open("rb") as fh:
            while data := fh.read(1 << 20):
                digest.update(data)
                qx.update(data)
                sha1.update(data)
                size += len(data)
        sha256 = digest.hexdigest()
        target = self._blob_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            path.unlink()
        else:
            os.replace(path, target)
        spec: ContentSpec = {"t": "blob", "sha256": sha256, "size": size}
        src = self.open(spec)
        self._store.put_hashes(
            src.key,
            base64.b64encode(qx.digest()).decode(),
            sha1.hexdigest().upper(),
            sha256.upper(),
        )
        return spec

    def put_bytes(self, data: bytes) -> ContentSpec:
        """Store small uploaded bytes (attachments, simple uploads) as a blob."""
        if not data:
            return {"t": "empty"}
        tmp = self.new_temp()
        tmp.write_bytes(data)
        return self.commit_file(tmp)

    def hashes(self, spec: ContentSpec | None) -> tuple[str, str, str]:
        """(quickXorHash base64, SHA-1 hex, SHA-256 hex), computed once and cached."""
        src = self.open(spec)
        cached = self._store.get_hashes(src.key)
        if cached:
            return cached
        qx = quickxorhash.quickxorhash()
        sha1 = hashlib.sha1()
        sha256 = hashlib.sha256()
        for chunk in src.iter_range():
            qx.update(chunk)
            sha1.update(chunk)
            sha256.update(chunk)
        result = (
            base64.b64encode(qx.digest()).decode(),
            sha1.hexdigest().upper(),
            sha256.hexdigest().upper(),
        )
        self._store.put_hashes(src.key, *result)
        return result
