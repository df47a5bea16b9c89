"""A repository in a local directory (or any mounted filesystem).

Writes are atomic and durable: the object goes to a temporary file in the same
directory, is fsynced, renamed over its final name, and the directory is
fsynced, so a crash leaves either the old state or the new one. ``create``
hard-links the finished temporary file to the final name instead of renaming:
``link`` fails when the name exists, so of two creators exactly one wins, on
one machine or several sharing the filesystem (NFS makes link atomic too).
"""

from __future__ import annotations

import errno
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from store.backend.base import (
    TEMP_PREFIX,
    Backend,
    ConditionalWriteUnsupported,
    ObjectInfo,
    TempObject,
    validate_key,
)
from store.errors import BackendError, BackendFull, ObjectNotFound, TransientBackendError
from store.names import DATA_PACKS, TREE_PACKS

# Temporary files start with TEMP_PREFIX; list() never shows them, and prune
# removes those older than its grace period (temporaries()).


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _translate(exc: OSError, key: str) -> BackendError:
    if exc.errno == errno.ENOENT:
        return ObjectNotFound(f"object {key} not found")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BackendFull(f"no space left on the repository's disk while writing {key}")
    if exc.errno in (errno.EIO, errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT):
        return TransientBackendError(f"I/O error on {key}: {exc.strerror}")
    return BackendError(f"cannot access {key}: {exc.strerror}")


# Pack files never change once written, so reads keep them open (pread on a
# cached descriptor) instead of opening the file for every blob.
_IMMUTABLE_PREFIXES = (DATA_PACKS, TREE_PACKS)
_OPEN_PACKS = 64


class LocalBackend(Backend):
    """Objects as files under ``root``. Thread-safe."""

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = True) -> None:
        self._root = Path(root)
        # durable=False skips fsync: only for throwaway repositories in tests
        # and benchmarks that say so.
        self._durable = durable
        # key -> [fd, users]; evicted descriptors still in use wait in _retired.
        self._fds: OrderedDict[str, list[int]] = OrderedDict()
        self._retired: dict[int, list[int]] = {}
        self._fd_lock = threading.Lock()

    @property
    def location(self) -> str:
        return str(self._root)

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, key: str) -> Path:
        validate_key(key)
        return self._root / key

    def put(self, key: str, data: bytes | bytearray) -> None:
        final = self._path(key)
        temp = self._write_temp(final, data, key)
        try:
            os.replace(temp, final)
            if self._durable:
                _fsync_dir(final.parent)
        except OSError as exc:
            _unlink_quietly(temp)
            raise _translate(exc, key) from exc

    def put_buffer(self, key: str, data: bytearray) -> None:
        # Written as it is; through put(), which a subclass may watch.
        self.put(key, data)

    def create(self, key: str, data: bytes) -> bool:
        final = self._path(key)
        temp = self._write_temp(final, data, key)
        try:
            os.link(temp, final)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV):
                raise ConditionalWriteUnsupported(
                    f"the filesystem of {self._root} has no hard links ({exc.strerror})"
                ) from exc
            raise _translate(exc, key) from exc
        finally:
            _unlink_quietly(temp)
        if self._durable:
            _fsync_dir(final.parent)
        return True

    def _write_temp(self, final: Path, data: bytes | bytearray, key: str) -> Path:
        """Write ``data`` to a fresh, fsynced temporary file beside ``final``."""
        directory = final.parent
        if not directory.is_dir():
            self._make_dirs(directory)
        temp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if self._durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            _unlink_quietly(temp)
            raise _translate(exc, key) from exc
        return temp

    def temporaries(self) -> Iterator[TempObject]:
        if not self._root.is_dir():
            return
        for dirpath, _dirnames, filenames in os.walk(self._root):
            for name in filenames:
                if not name.startswith(TEMP_PREFIX):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # finished (renamed) while we looked
                key = os.path.relpath(full, self._root).replace(os.sep, "/")
                yield TempObject(key, st.st_size, st.st_mtime_ns)

    def _make_dirs(self, directory: Path) -> None:
        # Create missing parents one by one so each new entry is fsynced in
        # its own parent: a crash cannot leave an object whose directory vanished.
        missing: list[Path] = []
        probe = directory
        while not probe.is_dir():
            missing.append(probe)
            if probe.parent == probe:
                break
            probe = probe.parent
        for path in reversed(missing):
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                continue
            except OSError as exc:
                raise _translate(exc, str(path)) from exc
            if self._durable:
                _fsync_dir(path.parent)

    def _acquire_fd(self, key: str, path: Path) -> int:
        """An open descriptor of an immutable object, with a use count taken."""
        with self._fd_lock:
            entry = self._fds.get(key)
            if entry is not None:
                self._fds.move_to_end(key)
                entry[1] += 1
                return entry[0]
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        with self._fd_lock:
            entry = self._fds.get(key)
            if entry is not None:
                os.close(fd)
                entry[1] += 1
                return entry[0]
            self._fds[key] = [fd, 1]
            while len(self._fds) > _OPEN_PACKS:
                _, evicted = self._fds.popitem(last=False)
                self._retire(evicted)
        return fd

    def _release_fd(self, key: str, fd: int) -> None:
        with self._fd_lock:
            entry = self._fds.get(key)
            if entry is not None and entry[0] == fd:
                entry[1] -= 1
                return
            retired = self._retired.get(fd)
            if retired is not None:
                retired[1] -= 1
                if retired[1] == 0:
                    del self._retired[fd]
                    os.close(fd)

    def _retire(self, entry: list[int]) -> None:
        # Called with the lock held: close now if unused, else when released.
        if entry[1] == 0:
            os.close(entry[0])
        else:
            self._retired[entry[0]] = entry

    def _forget_fd(self, key: str) -> None:
        with self._fd_lock:
            entry = self._fds.pop(key, None)
            if entry is not None:
                self._retire(entry)

    def will_need(self, key: str, offset: int, length: int) -> None:
        """Ask the kernel to start reading this range of a pack (a hint:
        ``POSIX_FADV_WILLNEED``), so reads made one after the other in one
        thread find it in the page cache. Raises nothing; other objects,
        missing ones and refusals are ignored."""
        if not key.startswith(_IMMUTABLE_PREFIXES):
            return
        try:
            fd = self._acquire_fd(key, self._path(key))
        except (OSError, ValueError):  # missing, or a key validate_key refuses
            return
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            self._release_fd(key, fd)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(key)
        if length is not None and key.startswith(_IMMUTABLE_PREFIXES):
            try:
                fd = self._acquire_fd(key, path)
            except OSError as exc:
                raise _translate(exc, key) from exc
            try:
                return os.pread(fd, length, offset)
            except OSError as exc:
                raise _translate(exc, key) from exc
            finally:
                self._release_fd(key, fd)
        try:
            with open(path, "rb") as handle:
                if offset:
                    handle.seek(offset)
                return handle.read() if length is None else handle.read(length)
        except IsADirectoryError as exc:
            raise ObjectNotFound(f"object {key} not found") from exc
        except OSError as exc:
            raise _translate(exc, key) from exc

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # Walk the deepest directory the prefix names, then filter by the rest.
        base, _, _ = prefix.rpartition("/")
        start = self._root / base if base else self._root
        if not start.is_dir():
            return
        for dirpath, _dirnames, filenames in os.walk(start):
            for name in filenames:
                if name.startswith(TEMP_PREFIX):
                    continue
                full = os.path.join(dirpath, name)
                key = os.path.relpath(full, self._root).replace(os.sep, "/")
                if not key.startswith(prefix):
                    continue
                try:
                    size = os.stat(full).st_size
                except FileNotFoundError:
                    continue  # deleted while we listed
                yield ObjectInfo(key, size)

    def delete(self, key: str) -> None:
        path = self._path(key)
        self._forget_fd(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _translate(exc, key) from exc
        if self._durable:
            _fsync_dir(path.parent)

    def close(self) -> None:
        with self._fd_lock:
            entries, self._fds = list(self._fds.values()), OrderedDict()
            for entry in entries:
                self._retire(entry)

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            result = path.stat()
        except OSError as exc:
            raise _translate(exc, key) from exc
        if not path.is_file():
            raise ObjectNotFound(f"object {key} not found")
        return ObjectInfo(key, result.st_size)
