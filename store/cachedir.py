"""Where the local cache lives and how it is protected (FORMAT.md §10)."""

from __future__ import annotations

import os
from pathlib import Path

import lmdb


def default_cache_root() -> Path:
    """``$COFFER_CACHE_DIR``, else ``$XDG_CACHE_HOME/coffer``, else ``~/.cache/coffer``."""
    explicit = os.environ.get("COFFER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "coffer"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 and make sure it stays 0700.

    Item names and subjects are in the cache, so no other user may read it.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o777 != 0o700:
        path.chmod(0o700)
    return path


def open_lmdb(path: Path, *, map_size: int, max_dbs: int) -> lmdb.Environment:
    """Open (creating) an LMDB environment in a private directory, files 0600.

    ``map_size`` is address space, not disk: LMDB grows the file as needed.
    """
    private_dir(path)
    old_umask = os.umask(0o077)
    try:
        env = lmdb.open(
            str(path),
            map_size=map_size,
            max_dbs=max_dbs,
            subdir=True,
            lock=True,
            readahead=False,
            # Durability of the cache is not needed (it is rebuilt from the
            # repository), but a torn write must not corrupt it: LMDB's
            # copy-on-write keeps it consistent even with sync off (metasync
            # stays on).
            sync=False,
            max_readers=256,
        )
    finally:
        os.umask(old_umask)
    for name in os.listdir(path):
        file = path / name
        if file.stat().st_mode & 0o777 != 0o600:
            file.chmod(0o600)
    return env
