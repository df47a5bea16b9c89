"""The repository's ``config`` object (FORMAT.md §4)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from store.errors import FormatTooNew, IntegrityError
from store.format.codec import decode, encode
from store.format.crypto import seal, sealed_epoch, unseal
from store.format.keys import Keyring
from store.names import CONFIG

FORMAT_NAME = "coffer-repository"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC sizes.

    ``normal_size`` is pyfastcdc's ``avg_size`` (FastCDC's normal size: it sets
    the bits of the cut masks and where normalized chunking loosens the mask).
    It is not the mean chunk size: cutting starts only past ``min``, so the mean
    is ``min + normal_size`` (:attr:`mean_size`). The config object stores it
    under the name ``avg`` (FORMAT.md §4), which existing repositories keep.

    128 KiB / 512 KiB mean / 2 MiB, chosen by ``python -m tools.bench chunking``
    (docs/performance.md): against 256 KiB / 1 MiB / 4 MiB it halves what an
    edited large file stores again (16% instead of 27% in that measurement)
    for twice the chunks (about 2,000 per GiB, each an LMDB entry, not RAM).
    Mail items are smaller than the minimum and stay one chunk.
    """

    min: int = 128 * 1024
    normal_size: int = 384 * 1024
    max: int = 2 * 1024 * 1024
    nc: int = 1

    @property
    def mean_size(self) -> int:
        """The mean chunk size of random input (pyfastcdc: ``avg_size + min_size``)."""
        return self.min + self.normal_size

    def to_map(self) -> dict[str, int]:
        """The ``chunker`` map of the config object, fields in their stored order."""
        return {"min": self.min, "avg": self.normal_size, "max": self.max, "nc": self.nc}

    @classmethod
    def from_map(cls, fields: object) -> ChunkerParams:
        """Read the ``chunker`` map of a config object (missing fields take the
        defaults). Raises TypeError on a field it does not know or a non-map."""
        if not isinstance(fields, dict):
            raise TypeError(f"chunker parameters are a {type(fields).__name__}, not a map")
        if "normal_size" in fields:
            raise TypeError("unexpected chunker field 'normal_size'")
        named = {("normal_size" if k == "avg" else k): v for k, v in fields.items()}
        return cls(**named)


@dataclass(frozen=True)
class TreeSplitParams:
    """Content-defined page boundaries of directory trees (FORMAT.md §8)."""

    mask_bits: int = 7
    min: int = 16
    max_entries: int = 2048
    max_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class RepoConfig:
    """Parameters fixed when the repository is created."""

    repo_id: str
    created: str
    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    pack_size: int = 16 * 1024 * 1024
    zstd_level: int = 3
    tree_split: TreeSplitParams = field(default_factory=TreeSplitParams)

    @classmethod
    def new(cls, **overrides: Any) -> RepoConfig:
        return cls(
            repo_id=os.urandom(16).hex(),
            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **overrides,
        )

    def header_line(self) -> bytes:
        header = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "id": self.repo_id,
            "created": self.created,
        }
        return json.dumps(header, sort_keys=True).encode()

    def encode(self, keyring: Keyring) -> bytes:
        """The bytes of the ``config`` object."""
        header = self.header_line()
        body = encode(
            {
                "v": FORMAT_VERSION,
                "id": self.repo_id,
                "chunker": self.chunker.to_map(),
                "pack_size": self.pack_size,
                "zstd_level": self.zstd_level,
                "tree_split": asdict(self.tree_split),
            }
        )
        sealed = seal(keyring.current, keyring.current_key, "config", CONFIG, body, None, header)
        return header + b"\n" + sealed


@dataclass(frozen=True)
class ConfigHeader:
    """The part of ``config`` readable without keys."""

    repo_id: str
    version: int
    created: str
    line: bytes
    sealed_body: bytes


def read_header(raw: bytes) -> ConfigHeader:
    """Parse the header line. Raises FormatTooNew or IntegrityError."""
    line, sep, body = raw.partition(b"\n")
    try:
        header = json.loads(line)
        if header.get("format") != FORMAT_NAME or not sep:
            raise IntegrityError("config is not a Coffer repository configuration")
        version = int(header["version"])
        repo_id = str(header["id"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"config is damaged: {exc}") from exc
    if version > FORMAT_VERSION:
        raise FormatTooNew(
            f"the repository uses format version {version}; this Coffer reads up to "
            f"{FORMAT_VERSION}: upgrade Coffer"
        )
    return ConfigHeader(repo_id, version, str(header.get("created", "")), line, body)


def decode_config(header: ConfigHeader, keyring: Keyring) -> RepoConfig:
    """Open and check the sealed body. Raises IntegrityError."""
    epoch = sealed_epoch(header.sealed_body, CONFIG)
    plain = unseal(
        header.sealed_body, keyring.epoch_key(epoch, CONFIG), "config", CONFIG, header.line
    )
    data = decode(plain, CONFIG)
    try:
        if data["id"] != header.repo_id:
            raise IntegrityError("config body and header disagree on the repository ID")
        return RepoConfig(
            repo_id=header.repo_id,
            created=header.created,
            chunker=ChunkerParams.from_map(data["chunker"]),
            pack_size=int(data["pack_size"]),
            zstd_level=int(data["zstd_level"]),
            tree_split=TreeSplitParams(**data["tree_split"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"config is damaged: {exc}") from exc
