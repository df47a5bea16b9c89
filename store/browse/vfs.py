"""The virtual filesystem shared by ``coffer mount``, ``coffer ls`` and restore.

Pure logic, no FUSE. :class:`VirtualFS` turns the repository into one tree
(the layout is in :mod:`store.browse.layout`): every path resolves to a node,

- :class:`VirtualDir`: a directory of the layout (``snapshots/``, a run, an owner ...),
- :class:`VirtualLink`: a ``latest`` symbolic link,
- :class:`SnapshotItem`: a snapshot and a path inside it, with its tree entry,

and everything inside a snapshot is delegated to the engine's tree and chunk
readers: directories are listed page by page (``after=`` a name), never loaded
whole, and file content streams through one bounded chunk cache.

The snapshot list is re-read at most every ``refresh_seconds`` (lazily, when a
virtual directory is used), so new snapshots appear without remounting.

Thread-safety: every method may be called from any thread. For callers with an
event loop, :meth:`VirtualFS.cache_only` makes the calling thread's operations
raise :class:`NotCached` instead of doing I/O, so a cached answer can be given
inline and only misses go to a worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from stat import S_IFDIR, S_IFLNK

from store.browse.layout import LATEST, Layout, OwnerHistory, Run
from store.errors import PathNotFound, StoreError
from store.format.paths import split_path
from store.format.snapshot import OWNER_KINDS, Snapshot
from store.format.tree import Entry, TreeReader
from store.ids import DATA, TREE, BlobId
from store.repository.reader import ChunkCache, ItemReader, SnapshotReader
from store.repository.repository import Repository

log = logging.getLogger(__name__)

DEFAULT_REFRESH_SECONDS = 60.0
# Decoded tree pages kept, in bytes (store.tree.Page.weight): bounds the mount's memory.
DEFAULT_TREE_CACHE_BYTES = 16 * 1024 * 1024
DEFAULT_CHUNK_CACHE_BYTES = 64 * 1024 * 1024

_VIRTUAL_MODE = S_IFDIR | 0o555


class NotCached(StoreError):
    """Raised in :meth:`VirtualFS.cache_only` mode when an answer needs I/O."""


@dataclass(frozen=True, slots=True)
class VirtualDir:
    """A directory of the layout. ``key`` names it independently of display names:
    ``()`` the root, ``("snapshots",)``, ``("run", run_id)``, ``("run-kind", run_id,
    kind)``, ``("owners",)``, ``("owner-kind", kind)``, ``("owner", identity)``, ``("ids",)``.
    """

    key: tuple[str, ...]
    mtime_ns: int

    @property
    def st_mode(self) -> int:
        return _VIRTUAL_MODE

    @property
    def size(self) -> int:
        return 0

    @property
    def is_dir(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class VirtualLink:
    """A ``latest`` link; ``target`` is relative to the link's directory."""

    target: str
    mtime_ns: int

    @property
    def st_mode(self) -> int:
        return S_IFLNK | 0o777

    @property
    def size(self) -> int:
        return len(self.target.encode())

    @property
    def is_dir(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class SnapshotItem:
    """``path`` ("" for the root) inside ``snapshot``, and its entry."""

    snapshot: Snapshot
    path: str
    entry: Entry

    @property
    def st_mode(self) -> int:
        return self.entry.st_mode

    @property
    def size(self) -> int:
        if self.entry.is_symlink:
            return len(self.entry.target or b"")
        return self.entry.size if self.entry.is_file else 0

    @property
    def mtime_ns(self) -> int:
        # Directories the backup created implicitly have no time of their own:
        # show the snapshot's rather than 1970.
        return self.entry.mtime_ns or self.snapshot.time_ns

    @property
    def is_dir(self) -> bool:
        return self.entry.is_dir

    @property
    def is_root(self) -> bool:
        return not self.path

    def describe(self) -> str:
        """``snapshot <short id>:/<path>``, for log lines and messages; bytes of
        names that are not UTF-8 are shown as ``\\xNN`` (printable anywhere)."""
        path = self.path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return f"snapshot {self.snapshot.short_id}:/{path}"


VNode = VirtualDir | VirtualLink | SnapshotItem


class VirtualFS:
    """The repository as one read-only tree (see the module docstring)."""

    def __init__(
        self,
        repo: Repository,
        *,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        tree_cache_bytes: int = DEFAULT_TREE_CACHE_BYTES,
        chunk_cache_bytes: int = DEFAULT_CHUNK_CACHE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repo = repo
        self.refresh_seconds = refresh_seconds
        self.chunk_cache_bytes = chunk_cache_bytes
        self._clock = clock
        self._local = threading.local()
        self.trees = TreeReader(self._load_tree, cache_bytes=tree_cache_bytes)
        self.chunks = ChunkCache(self._load_chunk, capacity=chunk_cache_bytes)
        self._layout: Layout | None = None
        self._loaded_at = 0.0
        self._refresh_lock = threading.Lock()

    # -- I/O gates ------------------------------------------------------

    def _no_io(self) -> bool:
        return bool(getattr(self._local, "cache_only", False))

    def _load_tree(self, blob_id: BlobId) -> bytes:
        if self._no_io():
            raise NotCached(f"tree page {blob_id.hex()[:8]}")
        return self.repo.load_blob(blob_id, TREE)

    def _load_chunk(self, blob_id: BlobId) -> bytes:
        if self._no_io():
            raise NotCached(f"chunk {blob_id.hex()[:8]}")
        return self.repo.load_blob(blob_id, DATA)

    @contextmanager
    def cache_only(self) -> Iterator[None]:
        """Within this block, this thread's calls raise NotCached instead of doing I/O."""
        previous = self._no_io()
        self._local.cache_only = True
        try:
            yield
        finally:
            self._local.cache_only = previous

    # -- the snapshot list ----------------------------------------------

    @property
    def layout(self) -> Layout:
        """The current layout, re-read when older than ``refresh_seconds``.

        While one thread re-reads it, the others keep the previous one. The
        first load's errors propagate; later failures are logged and the
        previous layout stays (a flaky backend does not empty the mount).
        """
        layout = self._layout
        expired = self._clock() - self._loaded_at >= self.refresh_seconds
        if layout is not None and not expired:
            return layout
        if self._no_io():
            if layout is None:
                raise NotCached("the snapshot list")
            return layout  # the caller will refresh from a worker thread soon enough
        if layout is not None and not self._refresh_lock.acquire(blocking=False):
            return layout
        if layout is None:
            self._refresh_lock.acquire()
        try:
            if self._layout is not None and self._layout is not layout:
                return self._layout  # another thread refreshed while we waited
            return self._reload(layout)
        finally:
            self._refresh_lock.release()

    def _reload(self, previous: Layout | None) -> Layout:
        try:
            fresh = Layout.build(self.repo.list_snapshots())
        except StoreError as exc:
            if previous is None:
                raise
            log.warning("could not refresh the snapshot list (keeping the old one): %s", exc)
            self._loaded_at = self._clock()
            return previous
        self._layout = fresh
        self._loaded_at = self._clock()
        return fresh

    def refresh(self) -> Layout:
        """Re-read the snapshot list now."""
        with self._refresh_lock:
            return self._reload(self._layout)

    def expired(self) -> bool:
        """True when the next use of a virtual directory will re-read the list."""
        return self._layout is None or self._clock() - self._loaded_at >= self.refresh_seconds

    # -- navigation -----------------------------------------------------

    def root(self) -> VirtualDir:
        return VirtualDir((), self._current().newest_ns)

    def _current(self) -> Layout:
        return self.layout

    def reader(self, snapshot: Snapshot) -> SnapshotReader:
        """The engine's reader of ``snapshot``, sharing this VFS's caches."""
        return SnapshotReader(snapshot, self.trees, self.chunks)

    def snapshot_root(self, snapshot: Snapshot) -> SnapshotItem:
        return SnapshotItem(snapshot, "", self.reader(snapshot).root_entry)

    def lookup(self, parent: VNode, name: bytes) -> VNode:
        """The child ``name`` of ``parent``. Raises PathNotFound (also for non-directories)."""
        if isinstance(parent, SnapshotItem):
            entry = parent.entry
            if not entry.is_dir or entry.subtree is None:
                raise PathNotFound(f"{parent.describe()}: not a directory")
            found = self.trees.lookup(entry.subtree, name)
            if found is None:
                raise PathNotFound(f"{parent.describe()}: no item {name!r}")
            return SnapshotItem(parent.snapshot, _join(parent.path, found.name), found)
        if isinstance(parent, VirtualLink):
            raise PathNotFound("a link is not a directory")
        child = self._virtual_lookup(parent, name)
        if child is not None:
            return child
        raise PathNotFound(f"/{'/'.join(parent.key)}: no entry {name!r}")

    def children(self, node: VNode, after: bytes | None = None) -> Iterator[tuple[bytes, VNode]]:
        """(name, node) of a directory's children in name order, after ``after``.

        Snapshot directories stream page by page. Raises PathNotFound for
        non-directories.
        """
        if isinstance(node, SnapshotItem):
            entry = node.entry
            if not entry.is_dir or entry.subtree is None:
                raise PathNotFound(f"{node.describe()}: not a directory")
            for found in self.trees.entries(entry.subtree, after):
                yield found.name, SnapshotItem(node.snapshot, _join(node.path, found.name), found)
            return
        if isinstance(node, VirtualLink):
            raise PathNotFound("a link is not a directory")
        for name, child in self._virtual_children(node):
            if after is None or name > after:
                yield name, child

    def count(self, node: VNode) -> int:
        """Number of children of a directory (cheap: no full listing)."""
        if isinstance(node, SnapshotItem):
            if node.entry.subtree is None:
                return 0
            return self.trees.count(node.entry.subtree)
        if isinstance(node, VirtualLink):
            return 0
        return len(self._virtual_children(node))

    def current(self, node: VNode) -> VNode:
        """``node`` as of the current layout (a virtual directory's time may have
        moved on). Snapshot items never change. Raises PathNotFound when the
        run or owner is gone."""
        if not isinstance(node, VirtualDir):
            return node
        layout = self._current()
        return VirtualDir(node.key, _virtual_mtime(layout, node.key))

    def resolve(self, path: str, *, follow: bool = False) -> VNode:
        """The node at a ``/``-separated path from the root ("" is the root).

        ``latest`` links are followed when they are not the last component, and
        also when they are if ``follow`` (as ``ls`` does). Raises PathNotFound.
        """
        if not path.strip("/"):
            return self.root()
        try:
            names = split_path(path)
        except ValueError:
            raise PathNotFound(f"{path}: not a valid path") from None
        node: VNode = self.root()
        parent: VNode = node
        for name in names:
            if isinstance(node, VirtualLink):
                node = self.lookup(parent, node.target.encode())
            parent = node
            node = self.lookup(node, name)
        if follow and isinstance(node, VirtualLink):
            node = self.lookup(parent, node.target.encode())
        return node

    def open(
        self, item: SnapshotItem, prefetch: Callable[[BlobId], None] | None = None
    ) -> ItemReader:
        """A seekable reader of a file. Raises PathNotFound for other items."""
        return self.reader(item.snapshot).open(item.entry, prefetch)

    # -- the virtual directories ----------------------------------------

    def _virtual_lookup(self, node: VirtualDir, name: bytes) -> VNode | None:
        layout = self._current()
        key, text = node.key, name.decode("utf-8", "surrogateescape")
        if key == ():
            return VirtualDir((text,), _virtual_mtime(layout, (text,))) if text in _TOP else None
        if key == ("snapshots",):
            if text == LATEST and layout.latest_run is not None:
                return VirtualLink(layout.latest_run, layout.newest_ns)
            run = layout.runs.get(text)
            return VirtualDir(("run", run.run_id), run.mtime_ns) if run else None
        if key == ("owners",):
            if text not in OWNER_KINDS:
                return None
            return VirtualDir(("owner-kind", text), _virtual_mtime(layout, ("owner-kind", text)))
        if key == ("ids",):
            snap = layout.ids.get(text)
            return self.snapshot_root(snap) if snap else None
        if key[0] == "run":
            run = _run(layout, key[1])
            return (
                VirtualDir(("run-kind", run.run_id, text), run.mtime_ns)
                if text in run.members
                else None
            )
        if key[0] == "run-kind":
            snap = _run(layout, key[1]).members.get(key[2], {}).get(text)
            return self.snapshot_root(snap) if snap else None
        if key[0] == "owner-kind":
            history = layout.owners.get(key[1], {}).get(text)
            return VirtualDir(("owner", history.identity), history.mtime_ns) if history else None
        if key[0] == "owner":
            history = _owner(layout, key[1])
            if text == LATEST:
                return VirtualLink(history.latest, history.mtime_ns)
            snap = history.snapshots.get(text)
            return self.snapshot_root(snap) if snap else None
        return None

    def _virtual_children(self, node: VirtualDir) -> list[tuple[bytes, VNode]]:
        layout = self._current()
        key = node.key
        names: list[str]
        if key == ():
            names = list(_TOP)
        elif key == ("snapshots",):
            names = list(layout.runs) + ([LATEST] if layout.latest_run is not None else [])
        elif key == ("owners",):
            names = list(OWNER_KINDS)
        elif key == ("ids",):
            names = list(layout.ids)
        elif key[0] == "run":
            names = list(_run(layout, key[1]).members)
        elif key[0] == "run-kind":
            names = list(_run(layout, key[1]).members.get(key[2], {}))
        elif key[0] == "owner-kind":
            names = list(layout.owners.get(key[1], {}))
        elif key[0] == "owner":
            names = [*_owner(layout, key[1]).snapshots, LATEST]
        else:
            names = []
        out: list[tuple[bytes, VNode]] = []
        for text in names:
            name = text.encode()
            child = self._virtual_lookup(node, name)
            if child is not None:
                out.append((name, child))
        out.sort(key=lambda pair: pair[0])
        return out


_TOP = ("ids", "owners", "snapshots")


def _join(path: str, name: bytes) -> str:
    display = name.decode("utf-8", "surrogateescape")
    return f"{path}/{display}" if path else display


def _run(layout: Layout, run_id: str) -> Run:
    name = layout.run_names.get(run_id)
    if name is None:
        raise PathNotFound(f"run {run_id[:8]} has no completed snapshot any more")
    return layout.runs[name]


def _owner(layout: Layout, identity: str) -> OwnerHistory:
    name = layout.owner_names.get(identity)
    kind = identity.partition("/")[0]
    history = layout.owners.get(kind, {}).get(name or "")
    if history is None:
        raise PathNotFound("that owner has no completed snapshot any more")
    return history


def _virtual_mtime(layout: Layout, key: tuple[str, ...]) -> int:
    if key and key[0] in ("run", "run-kind"):
        return _run(layout, key[1]).mtime_ns
    if key and key[0] == "owner":
        return _owner(layout, key[1]).mtime_ns
    if key and key[0] == "owner-kind":
        histories = layout.owners.get(key[1], {})
        return max((h.mtime_ns for h in histories.values()), default=layout.newest_ns)
    return layout.newest_ns
