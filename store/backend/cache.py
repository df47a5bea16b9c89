"""A local on-disk cache of metadata objects, as a backend wrapper (like restic's cache).

Cached: everything under ``index/``, ``snapshots/`` and ``tree/`` (tree
packs), and ``config``. Those are what listing snapshots, opening the
repository and browsing trees read again and again; data packs are not cached.
Key slots (``keys/``) are never cached: the key set is rewritten in place by
every key operation (a new password keeps its size), and a host must see the
change at once. They are small and read once per open.

Why this is safe: the engine names the cached objects by content or at random
and never rewrites one in place (and authenticates each against its name when
it reads it), so a cached copy is right as long as the object exists.
Staleness comes only from deletes:

- deletes through this wrapper remove the cached copy (also when the delete
  fails, since the object's state is then unknown);
- deletes by another process are noticed by ``list``: after a complete listing
  of a cached prefix, cached copies the listing did not show, or showed with
  another size, are dropped (the engine lists snapshots and indexes before it
  reads them).

``config`` is the one object that may be replaced under the same name, so its
cached copy is used only after this process has read or written it once.
``stat`` always asks the backend (it is cheap and answers "does it still
exist" correctly).

Check and repair must not take a cached copy's word for the storage:
:meth:`CachingBackend.direct` is a view that reads the storage itself and
drops any cached copy that differs from what the storage returned.

Ranged reads of a cached object download the whole object once and serve
every later range from disk. Cache files are written atomically (temporary
file, rename), so concurrent threads and processes sharing the directory see
whole objects or none. A damaged cache is harmless to correctness (the engine
authenticates every object) but can be removed at any time.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

from store.backend.base import Backend, ObjectInfo, validate_key
from store.errors import ObjectNotFound
from store.names import CONFIG, INDEX, SNAPSHOTS, TREE_PACKS

CACHED_PREFIXES = (INDEX, SNAPSHOTS, TREE_PACKS)
CACHED_KEYS = (CONFIG,)
MUTABLE_KEYS = frozenset({CONFIG})
_TEMP_PREFIX = ".tmp-"


def is_cached(key: str) -> bool:
    """True for the keys this wrapper keeps on disk."""
    return key in CACHED_KEYS or key.startswith(CACHED_PREFIXES)


class CachingBackend(Backend):
    """Caches metadata objects of ``inner`` under ``directory``. Thread-safe.

    ``hits`` and ``misses`` count reads served from disk and from the backend;
    ``repaired`` the cached copies found to differ from the storage.
    """

    def __init__(self, inner: Backend, directory: str | os.PathLike[str]) -> None:
        self.inner = inner
        self._root = Path(directory)
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._fresh: set[str] = set()  # mutable keys this process has read or written
        self.hits = 0
        self.misses = 0
        self.repaired = 0  # cached copies dropped by revalidate()

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def directory(self) -> Path:
        return self._root

    def _path(self, key: str) -> Path:
        validate_key(key)
        return self._root / key

    def _load(self, key: str) -> bytes | None:
        if key in MUTABLE_KEYS:
            with self._lock:
                if key not in self._fresh:
                    return None
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def _store(self, key: str, data: bytes | bytearray) -> None:
        path = self._path(key)
        temp = path.parent / f"{_TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temp.write_bytes(data)
            os.replace(temp, path)
        except OSError:
            # A cache that cannot be written only costs speed.
            try:
                temp.unlink()
            except OSError:
                pass
            return
        if key in MUTABLE_KEYS:
            with self._lock:
                self._fresh.add(key)

    def _evict(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass
        with self._lock:
            self._fresh.discard(key)

    def put(self, key: str, data: bytes) -> None:
        if not is_cached(key):
            self.inner.put(key, data)
            return
        # Drop the old copy first: if the put fails, the object's state is unknown.
        self._evict(key)
        self.inner.put(key, data)
        self._store(key, data)

    def put_buffer(self, key: str, data: bytearray) -> None:
        if not is_cached(key):
            self.inner.put_buffer(key, data)
            return
        self._evict(key)  # as put() does
        self.inner.put_buffer(key, data)
        self._store(key, data)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if not is_cached(key):
            return self.inner.get(key, offset, length)
        data = self._load(key)
        if data is None:
            data = self.inner.get(key)
            with self._lock:
                self.misses += 1
            self._store(key, data)
        else:
            with self._lock:
                self.hits += 1
        end = len(data) if length is None else offset + length
        return data[offset:end]

    def stat(self, key: str) -> ObjectInfo:
        try:
            return self.inner.stat(key)
        except ObjectNotFound:
            if is_cached(key):
                self._evict(key)
            raise

    def delete(self, key: str) -> None:
        try:
            self.inner.delete(key)
        finally:
            if is_cached(key):
                self._evict(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """List through the backend; a complete listing also drops stale cached copies."""
        listed: dict[str, int] = {}
        for info in self.inner.list(prefix):
            listed[info.key] = info.size
            yield info
        # Reached only when the caller consumed the whole listing.
        for key, size in self._cached_under(prefix):
            if listed.get(key) != size:
                self._evict(key)

    def _cached_under(self, prefix: str) -> Iterator[tuple[str, int]]:
        base, _, _ = prefix.rpartition("/")
        start = self._root / base if base else self._root
        if not start.is_dir():
            return
        for dirpath, _dirnames, filenames in os.walk(start):
            for name in filenames:
                if name.startswith(_TEMP_PREFIX):
                    continue
                full = os.path.join(dirpath, name)
                key = os.path.relpath(full, self._root).replace(os.sep, "/")
                if not key.startswith(prefix) or not is_cached(key):
                    continue
                try:
                    yield key, os.stat(full).st_size
                except FileNotFoundError:
                    continue

    def close(self) -> None:
        self.inner.close()

    def direct(self) -> Backend:
        """A view of this backend that reads the storage, never the cache (check, repair)."""
        return DirectView(self)

    def revalidate(self, key: str, data: bytes) -> bool:
        """Drop the cached copy of ``key`` if it differs from ``data`` (the storage's bytes).

        Returns True when a copy was dropped. ``repaired`` counts them.
        """
        if not is_cached(key):
            return False
        try:
            cached = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        except OSError:
            cached = None
        if cached == data:
            return False
        self._evict(key)
        with self._lock:
            self.repaired += 1
        return True


class DirectView(Backend):
    """Reads go to the storage; writes, deletes and listings go through the cache.

    A whole-object read of a cached key also checks the cached copy against
    the storage's bytes and drops it when they differ, so a check repairs
    the cache of the host it runs on. Thread-safe.
    """

    def __init__(self, cache: CachingBackend) -> None:
        self.cache = cache

    @property
    def location(self) -> str:
        return self.cache.location

    def put(self, key: str, data: bytes) -> None:
        self.cache.put(key, data)

    def put_buffer(self, key: str, data: bytearray) -> None:
        self.cache.put_buffer(key, data)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.cache.inner.get(key, offset, length)
        if offset == 0 and length is None:
            self.cache.revalidate(key, data)
        return data

    def stat(self, key: str) -> ObjectInfo:
        return self.cache.stat(key)

    def delete(self, key: str) -> None:
        self.cache.delete(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.cache.list(prefix)

    def close(self) -> None:
        self.cache.close()
