"""Atomic file writes for the state directory, and the client-facing configuration files.

- `write_secret` / `write_public` write through a temporary file, fsync and rename, so a
  reader never sees a half-written file; secrets are created 0600 from the start.
- `write_connection_files` writes `connection.json` (0600: it holds the client secret),
  `client-secret.txt` (0600) and `coffer.toml` in the format of notes/conventions.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_secret(path: Path, data: bytes) -> None:
    """Atomically write a file readable by its owner only (0600)."""
    _atomic_write(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    """Atomically write a non-secret file (0644)."""
    _atomic_write(path, data, 0o644)


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def write_connection_files(state_dir: Path, info: dict[str, Any]) -> None:
    """Write connection.json, client-secret.txt and coffer.toml for `info`.

    `info` holds the keys of connection.json; path values are relative to `state_dir`.
    The files are written secret-first, and connection.json last, so its presence means
    every other file is in place.
    """
    write_secret(state_dir / "client-secret.txt", (info["client_secret"] + "\n").encode())
    toml = "\n".join(
        [
            "# Coffer configuration for the Microsoft 365 simulator (generated).",
            "# The repository is left to COFFER_REPO or -r.",
            "[tenant]",
            f"tenant_id = {_toml_str(info['tenant_id'])}",
            f"client_id = {_toml_str(info['client_id'])}",
            'client_secret_file = "client-secret.txt"',
            f"certificate = {_toml_str(info['certificate'])}",
            f"private_key = {_toml_str(info['private_key'])}",
            f"authority = {_toml_str(info['authority'])}",
            f"graph_url = {_toml_str(info['graph_url'])}",
            f"ca_file = {_toml_str(info['ca_file'])}",
            "",
        ]
    )
    write_public(state_dir / "coffer.toml", toml.encode())
    payload = json.dumps(info, indent=2, sort_keys=True).encode() + b"\n"
    write_secret(state_dir / "connection.json", payload)
