"""The FUSE operations: kernel requests in, VFS calls out, errno for every failure.

Kept thin over :class:`store.VirtualFS`. Each handler first tries to answer
from the caches on the trio thread (``VirtualFS.cache_only``): a cached lookup
or read costs microseconds, while a hop to a worker thread costs about 200 µs
on a busy 2-core machine. Only a miss goes to a thread, through one of three
limiters (metadata, reads, read-ahead), so a slow read never holds up a
listing or another reader. Handlers raise only ``pyfuse3.FUSEError``
(:func:`mount.errors.errno_for` maps the rest); ``forget`` never raises.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import TypeVar

import pyfuse3
import trio

from mount.attributes import (
    BLOCK_SIZE,
    FileStat,
    describe,
    entry_attributes,
    extended_attributes,
    negative_entry,
)
from mount.errors import errno_for
from mount.inodes import DEFAULT_MAX_INODES, InodeTable, Node, Record
from mount.openfile import DEFAULT_READAHEAD_BYTES, OpenFile
from store import (
    BlobId,
    NotCached,
    PathNotFound,
    SnapshotItem,
    VirtualDir,
    VirtualFS,
    VirtualLink,
    VNode,
)

log = logging.getLogger("mount")

T = TypeVar("T")
# pyfuse3.readdir_reply's shape; tests pass a function that plays the kernel's buffer.
ReaddirReply = Callable[[pyfuse3.ReaddirToken, bytes, pyfuse3.EntryAttributes, int], bool]

READDIR_BATCH = 512
_RECENT_OFFSETS = 4096


class DirCursor:
    """An open directory: where the listing stands and what was fetched ahead."""

    __slots__ = ("after", "buffer", "inode", "node", "offsets", "position")

    def __init__(self, inode: int, node: VNode) -> None:
        self.inode = inode
        self.node = node
        self.position = 0  # the offset of the next entry to hand out
        self.after: bytes | None = None  # the name of the entry before it
        self.buffer: deque[tuple[bytes, VNode]] = deque()
        # offset -> name of the entry just before it, to resume after a seek.
        self.offsets: OrderedDict[int, bytes] = OrderedDict()

    def advance(self, name: bytes) -> None:
        self.buffer.popleft()
        self.position += 1
        self.after = name

    def mark(self) -> None:
        """Remember where this call ended: the kernel (or a seekdir to a
        telldir of it) resumes there. Other offsets are found by counting."""
        if self.after is not None:
            self.offsets[self.position] = self.after
            if len(self.offsets) > _RECENT_OFFSETS:
                self.offsets.popitem(last=False)

    def seek(self, position: int, after: bytes | None) -> None:
        self.position = position
        self.after = after
        self.buffer.clear()


class Operations(pyfuse3.Operations):
    """A read-only view of a :class:`store.VirtualFS` (see the module docstring).

    ``readdir_reply`` is pyfuse3's (tests give one that plays the kernel's
    buffer). ``invalidate(parent_inode, name)`` asks the kernel to drop an entry; the
    mount passes ``pyfuse3.invalidate_entry_async`` so the inode table stays
    under ``max_inodes``. ``nursery`` (set by the mount) runs read-ahead;
    without one there is none.
    """

    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(
        self,
        vfs: VirtualFS,
        *,
        uid: int | None = None,
        gid: int | None = None,
        max_inodes: int = DEFAULT_MAX_INODES,
        readahead_bytes: int = DEFAULT_READAHEAD_BYTES,
        metadata_threads: int = 4,
        read_threads: int = 4,
        prefetch_threads: int = 2,
        invalidate: Callable[[int, bytes], None] | None = None,
        readdir_reply: ReaddirReply = pyfuse3.readdir_reply,
    ) -> None:
        super().__init__()
        self.vfs = vfs
        self.inodes = InodeTable(vfs.root(), max_inodes)
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        # Half the chunk cache: the window ahead of a reader plus the chunks it
        # is reading must fit, or chunks loaded ahead are evicted unread.
        self.readahead_bytes = min(readahead_bytes, vfs.chunk_cache_bytes // 2)
        self.nursery: trio.Nursery | None = None
        self._invalidate = invalidate
        self._reply = readdir_reply
        self._metadata = trio.CapacityLimiter(metadata_threads)
        self._reads = trio.CapacityLimiter(read_threads)
        self._prefetch = trio.CapacityLimiter(prefetch_threads)
        self._files: dict[int, OpenFile] = {}
        self._dirs: dict[int, DirCursor] = {}
        self._next_handle = 1
        self._prefetching: set[BlobId] = set()

    # -- helpers --------------------------------------------------------

    async def _call(
        self,
        function: Callable[[], T],
        what: Callable[[], str],
        limiter: trio.CapacityLimiter,
        *,
        inline: bool = True,
    ) -> T:
        """``function()`` from the caches if it can be, else in a worker thread.

        ``function`` must have no side effects before it raises NotCached.
        """
        try:
            if inline:
                try:
                    with self.vfs.cache_only():
                        return function()
                except NotCached:
                    pass
            return await trio.to_thread.run_sync(function, limiter=limiter)
        except pyfuse3.FUSEError:
            raise
        except Exception as exc:
            raise pyfuse3.FUSEError(errno_for(exc, what())) from None

    def _record(self, inode: int) -> Record:
        try:
            return self.inodes.get(inode)
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    async def _node(self, inode: int) -> VNode:
        """The full node of ``inode``: a file kept as its stat is looked up
        again in its parent directory (from the tree cache when it can be)."""
        record = self._record(inode)
        node = record.node
        if not isinstance(node, FileStat):
            return node
        parent = self._record(record.parent).node
        if isinstance(parent, FileStat):
            raise pyfuse3.FUSEError(errno.ESTALE)
        name = record.name
        return await self._call(
            lambda: self.vfs.lookup(parent, name),
            lambda: describe(parent, name),
            self._metadata,
        )

    def _handle(self) -> int:
        handle = self._next_handle
        self._next_handle += 1
        return handle

    def _inline(self, node: VNode) -> bool:
        # A layout directory whose snapshot list is due for a refresh goes to a
        # thread, where the refresh may do I/O.
        return isinstance(node, SnapshotItem) or not self.vfs.expired()

    def attributes(self, inode: int, node: Node) -> pyfuse3.EntryAttributes:
        return entry_attributes(inode, node, self.uid, self.gid)

    def _trim(self) -> None:
        """Ask the kernel to forget the oldest entries once the table is full."""
        if self._invalidate is None or len(self.inodes) <= self.inodes.max_inodes:
            return
        for stale in self.inodes.over_limit():
            self._invalidate(stale.parent, stale.name)

    # -- names and attributes -------------------------------------------

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext | None = None
    ) -> pyfuse3.EntryAttributes:
        parent = self._record(parent_inode)
        if name in (b".", b".."):
            inode = parent_inode if name == b"." else parent.parent
            record = self._record(inode)
            self.inodes.add_lookup(inode)
            return self.attributes(inode, record.node)
        node = parent.node
        if isinstance(node, FileStat):
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        try:
            child = await self._call(
                lambda: self.vfs.lookup(node, name),
                lambda: describe(node, name),
                self._metadata,
                inline=self._inline(node),
            )
        except pyfuse3.FUSEError as exc:
            if exc.errno == errno.ENOENT and isinstance(node, SnapshotItem):
                # A snapshot never changes: the kernel may keep the miss.
                return negative_entry()
            raise
        inode = self.inodes.remember(parent_inode, name, child)
        self._trim()
        return self.attributes(inode, child)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for inode, count in inode_list:
            try:
                self.inodes.forget(inode, count)
            except Exception:
                log.exception("forget(%d, %d) failed", inode, count)

    async def getattr(
        self, inode: int, ctx: pyfuse3.RequestContext | None = None
    ) -> pyfuse3.EntryAttributes:
        record = self._record(inode)
        node = record.node
        if isinstance(node, VirtualDir):
            try:
                with self.vfs.cache_only():
                    node = record.node = self.vfs.current(node)
            except (NotCached, PathNotFound):
                pass  # keep the last known time; a run that is gone still stats
        return self.attributes(inode, node)

    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext | None = None) -> bytes:
        node = self._record(inode).node
        if isinstance(node, VirtualLink):
            return node.target.encode()
        if isinstance(node, SnapshotItem) and node.entry.is_symlink:
            return node.entry.target or b""
        raise pyfuse3.FUSEError(errno.EINVAL)

    async def statfs(self, ctx: pyfuse3.RequestContext | None = None) -> pyfuse3.StatvfsData:
        stats = pyfuse3.StatvfsData()
        stats.f_bsize = BLOCK_SIZE
        stats.f_frsize = 512
        stats.f_blocks = stats.f_bfree = stats.f_bavail = 0
        stats.f_files = len(self.inodes)
        stats.f_ffree = stats.f_favail = 0
        stats.f_namemax = 255
        return stats

    # -- directories ----------------------------------------------------

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext | None = None) -> int:
        node = self._record(inode).node
        if isinstance(node, FileStat) or not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        handle = self._handle()
        self._dirs[handle] = DirCursor(inode, node)
        return handle

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        cursor = self._dirs.get(fh)
        if cursor is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        if start_id != cursor.position:
            await self._seek(cursor, start_id)
        node = cursor.node
        while True:
            if not cursor.buffer:
                batch = await self._call(
                    functools.partial(self._fetch, node, cursor.after),
                    lambda: describe(node),
                    self._metadata,
                    inline=self._inline(node),
                )
                if not batch:
                    break
                cursor.buffer.extend(batch)
            name, child = cursor.buffer[0]
            inode = self.inodes.remember(cursor.inode, name, child)
            if not self._reply(token, name, self.attributes(inode, child), cursor.position + 1):
                self.inodes.forget(inode, 1)
                break
            cursor.advance(name)
        cursor.mark()
        self._trim()

    def _fetch(self, node: VNode, after: bytes | None) -> list[tuple[bytes, VNode]]:
        """Up to a batch of children after ``after``; in cache-only mode, as many
        as are cached (raising NotCached only if none are)."""
        out: list[tuple[bytes, VNode]] = []
        try:
            for pair in self.vfs.children(node, after):
                out.append(pair)
                if len(out) >= READDIR_BATCH:
                    break
        except NotCached:
            if not out:
                raise
        return out

    async def _seek(self, cursor: DirCursor, position: int) -> None:
        if position == 0:
            cursor.seek(0, None)
            return
        after = cursor.offsets.get(position)
        if after is None:
            # A seek to an offset we no longer remember: count from the start.
            node = cursor.node

            def nth_name() -> bytes:
                name = b""
                for count, (name, _) in enumerate(self.vfs.children(node), start=1):
                    if count == position:
                        return name
                raise PathNotFound(f"{describe(node)}: offset {position} is past the end")

            after = await self._call(nth_name, lambda: describe(node), self._metadata, inline=False)
        cursor.seek(position, after)

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        return None

    # -- files ----------------------------------------------------------

    async def open(
        self, inode: int, flags: int, ctx: pyfuse3.RequestContext | None = None
    ) -> pyfuse3.FileInfo:
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & (os.O_TRUNC | os.O_CREAT):
            raise pyfuse3.FUSEError(errno.EROFS)
        node = await self._node(inode)
        if node.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        if not isinstance(node, SnapshotItem) or not node.entry.is_file:
            raise pyfuse3.FUSEError(errno.EINVAL)
        handle = self._handle()
        self._files[handle] = OpenFile(node)
        # Contents never change, so the kernel may keep its page cache across opens.
        return pyfuse3.FileInfo(fh=handle, keep_cache=True)

    async def read(  # type: ignore[override]  # pyfuse3 takes any contiguous buffer
        self, fh: int, off: int, size: int
    ) -> bytes | memoryview:
        """Bytes of an open file, inline when its chunks are cached (a view of
        the cached chunk when the range lies in one), else from a worker thread."""
        file = self._files.get(fh)
        if file is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        if file.note_read(off, size):
            self._read_ahead(file, off)
        chunks = self.vfs.chunks
        cached = all(chunks.contains(chunk_id) for chunk_id in file.chunks_for(off, size))
        return await self._call(
            lambda: file.read(chunks.get, off, size),
            file.item.describe,
            self._reads,
            inline=cached,
        )

    def _read_ahead(self, file: OpenFile, offset: int) -> None:
        nursery = self.nursery
        if nursery is None:
            return
        chunks = self.vfs.chunks
        for chunk_id in file.ahead(offset, self.readahead_bytes):
            if chunk_id in self._prefetching or chunks.contains(chunk_id):
                continue
            self._prefetching.add(chunk_id)
            nursery.start_soon(self._load_ahead, chunk_id)

    async def _load_ahead(self, chunk_id: BlobId) -> None:
        try:
            await trio.to_thread.run_sync(self.vfs.chunks.get, chunk_id, limiter=self._prefetch)
        except Exception as exc:
            # The reader that reaches this chunk gets (and logs) the error.
            log.debug("read-ahead of chunk %s failed: %s", chunk_id.hex()[:8], exc)
        finally:
            self._prefetching.discard(chunk_id)

    async def release(self, fh: int) -> None:
        self._files.pop(fh, None)

    async def flush(self, fh: int) -> None:
        # Nothing to flush in a read-only file system; ENOSYS once makes the
        # kernel stop sending flush on every close (one round trip less per file).
        raise pyfuse3.FUSEError(errno.ENOSYS)

    async def fsync(self, fh: int, datasync: bool) -> None:
        return None

    @property
    def open_files(self) -> int:
        return len(self._files)

    # -- extended attributes --------------------------------------------

    def xattrs(self, node: VNode) -> dict[bytes, bytes]:
        return extended_attributes(node)

    async def getxattr(
        self, inode: int, name: bytes, ctx: pyfuse3.RequestContext | None = None
    ) -> bytes:
        value = self.xattrs(await self._node(inode)).get(name)
        if value is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return value

    async def listxattr(
        self, inode: int, ctx: pyfuse3.RequestContext | None = None
    ) -> Sequence[bytes]:
        return list(self.xattrs(await self._node(inode)))

    # -- everything that would write: read-only file system -------------

    async def setattr(self, *args: object, **kwargs: object) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EROFS)

    async def mknod(self, *args: object, **kwargs: object) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EROFS)

    async def mkdir(self, *args: object, **kwargs: object) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EROFS)

    async def unlink(self, *args: object, **kwargs: object) -> None:
        raise pyfuse3.FUSEError(errno.EROFS)

    async def rmdir(self, *args: object, **kwargs: object) -> None:
        raise pyfuse3.FUSEError(errno.EROFS)

    async def symlink(self, *args: object, **kwargs: object) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EROFS)

    async def rename(self, *args: object, **kwargs: object) -> None:
        raise pyfuse3.FUSEError(errno.EROFS)

    async def link(self, *args: object, **kwargs: object) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EROFS)

    async def create(
        self, *args: object, **kwargs: object
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        raise pyfuse3.FUSEError(errno.EROFS)

    async def write(self, *args: object, **kwargs: object) -> int:
        raise pyfuse3.FUSEError(errno.EROFS)

    async def setxattr(self, *args: object, **kwargs: object) -> None:
        raise pyfuse3.FUSEError(errno.EROFS)

    async def removexattr(self, *args: object, **kwargs: object) -> None:
        raise pyfuse3.FUSEError(errno.EROFS)
