"""The Operations class called directly (no kernel): counts, paging, errno, EROFS."""

from __future__ import annotations

import errno
import functools
import gc
import logging
import os
import stat
import threading
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pyfuse3
import pytest
import trio

from mount import Operations, errno_for
from mount.inodes import ROOT_INODE, derive_inode
from store import (
    BackupRun,
    BlobMissing,
    IntegrityError,
    LocalBackend,
    PathNotFound,
    Repository,
    SnapshotItem,
    SnapshotNotFound,
    TransientBackendError,
    VirtualFS,
)
from tests.mount.support.corpus import (
    ALICE,
    ALICE_DIR,
    ARCHIVE_SIZE,
    PASSWORD,
    RUN2_NS,
    SRV_DIR,
    Corpus,
    Item,
    alice_items,
    new_repository,
    store_owner,
)


def trio_test(function: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        trio.run(functools.partial(function, *args, **kwargs))

    return wrapper


class Kernel:
    """Plays the kernel's side of readdir: its buffer takes ``room`` entries per call."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.taken = 0
        self.entries: list[tuple[bytes, int, int]] = []

    def reply(
        self, token: object, name: bytes, attrs: pyfuse3.EntryAttributes, next_id: int
    ) -> bool:
        if self.taken >= self.room:
            return False
        self.taken += 1
        self.entries.append((name, attrs.st_ino, next_id))
        return True

    async def list(self, ops: Operations, fh: int, start: int = 0) -> list[tuple[bytes, int, int]]:
        """Call readdir until the directory is exhausted, as getdents would."""
        out: list[tuple[bytes, int, int]] = []
        offset = start
        while True:
            self.taken = 0
            self.entries = []
            await ops.readdir(fh, offset, None)  # type: ignore[arg-type]
            if not self.entries:
                return out
            out.extend(self.entries)
            offset = self.entries[-1][2]


def make_ops(corpus: Corpus, cache: Path, **options: Any) -> Operations:
    vfs = VirtualFS(corpus.open(cache), refresh_seconds=options.pop("refresh_seconds", 60))
    return Operations(vfs, **options)


async def walk(ops: Operations, path: str) -> int:
    """Look ``path`` up name by name, following links on the way as the kernel does."""
    inode = parent = ROOT_INODE
    names = path.split("/")
    for position, name in enumerate(names):
        attrs = await ops.lookup(inode, os.fsencode(name))
        assert attrs.st_ino, f"{name} not found"
        parent, inode = inode, attrs.st_ino
        if stat.S_ISLNK(attrs.st_mode) and position < len(names) - 1:
            target = await ops.readlink(inode)
            inode = (await ops.lookup(parent, target)).st_ino
    return inode


async def fuse_errno(awaitable: Awaitable[object]) -> int:
    with pytest.raises(pyfuse3.FUSEError) as caught:
        await awaitable
    return caught.value.errno


# -- names, counts, attributes ---------------------------------------------


@trio_test
async def test_lookup_counts_and_forget(corpus: Corpus, fresh_cache: Path) -> None:
    ops = make_ops(corpus, fresh_cache)
    inbox = await walk(ops, f"snapshots/latest/{ALICE_DIR}/Mail/Inbox")
    mail = await walk(ops, f"snapshots/latest/{ALICE_DIR}/Mail/Inbox/0003 Meeting 3.eml")
    assert ops.inodes.lookups(inbox) == 2  # once per walk
    assert ops.inodes.lookups(mail) == 1
    assert (await ops.lookup(inbox, b"0003 Meeting 3.eml")).st_ino == mail
    assert ops.inodes.lookups(mail) == 2
    # "." and ".." count too.
    assert (await ops.lookup(inbox, b".")).st_ino == inbox
    mail_dir = (await ops.lookup(inbox, b"..")).st_ino
    assert ops.inodes.lookups(inbox) == 3
    assert ops.inodes.lookups(mail_dir) == 3
    await ops.forget([(mail, 1)])
    assert (await ops.getattr(mail)).st_size > 0
    await ops.forget([(mail, 1)])
    assert mail not in ops.inodes
    assert await fuse_errno(ops.getattr(mail)) == errno.ENOENT
    # Forgetting what is unknown, or the root, never raises nor drops the root.
    await ops.forget([(mail, 5), (ROOT_INODE, 100), (12345, 1)])
    assert (await ops.getattr(ROOT_INODE)).st_mode & stat.S_IFDIR


@trio_test
async def test_inode_numbers(corpus: Corpus, fresh_cache: Path) -> None:
    ops = make_ops(corpus, fresh_cache)
    snap = corpus.snapshots[1]
    paths = [
        f"snapshots/latest/{ALICE_DIR}",
        f"owners/{ALICE_DIR}/latest",
        f"ids/{snap.id_hex}",
    ]
    roots = [await walk(ops, path) for path in paths]
    # One snapshot, three places: three directories (the kernel allows no
    # directory aliases, and find would report loops).
    assert len(set(roots)) == 3
    # A path keeps its number; the snapshot's ID is in its root's number.
    again = await walk(ops, paths[2])
    assert again == roots[2]
    # Another snapshot's root has another number; forgotten by the kernel and
    # looked up again, a root gets its old number back, also in another mount
    # of the same process (numbers follow from the path and the snapshot ID).
    other = await walk(ops, f"ids/{corpus.snapshots[0].id_hex}")
    assert other != roots[2]
    await ops.forget([(roots[2], ops.inodes.get(roots[2]).lookups)])
    assert roots[2] not in ops.inodes
    assert await walk(ops, paths[2]) == roots[2]
    second = make_ops(corpus, fresh_cache.with_name(fresh_cache.name + "-second"))
    assert await walk(second, paths[2]) == roots[2]


@trio_test
async def test_getattr_sizes_times_modes(corpus: Corpus, fresh_cache: Path) -> None:
    ops = make_ops(corpus, fresh_cache)
    items = alice_items()
    for path in (
        "Mail/Inbox/0007 Meeting 7.eml",
        "OneDrive/Documents/report.docx",
        "OneDrive/empty.txt",
    ):
        inode = await walk(ops, f"snapshots/latest/{ALICE_DIR}/{path}")
        attrs = await ops.getattr(inode)
        assert attrs.st_size == len(items[path].content)
        # Mail: the received time the backup gave is the modification time.
        assert attrs.st_mtime_ns == items[path].mtime_ns
        assert attrs.st_mode == stat.S_IFREG | 0o644
        assert attrs.st_blocks == (attrs.st_size + 511) // 512
    tool = await ops.getattr(await walk(ops, f"snapshots/latest/{SRV_DIR}/bin/tool"))
    assert tool.st_mode == stat.S_IFREG | 0o755
    secret = await ops.getattr(await walk(ops, f"snapshots/latest/{SRV_DIR}/secret.txt"))
    assert secret.st_mode == stat.S_IFREG | 0o600
    link = await walk(ops, f"snapshots/latest/{SRV_DIR}/tool-link")
    assert stat.S_ISLNK((await ops.getattr(link)).st_mode)
    assert await ops.readlink(link) == b"bin/tool"
    latest = await walk(ops, "snapshots/latest")
    assert await ops.readlink(latest) == b"2025-11-25T16-00-00.123456Z"
    run = await ops.getattr(await walk(ops, "snapshots/2025-11-25T16-00-00.123456Z"))
    assert run.st_mode == stat.S_IFDIR | 0o555
    assert run.st_mtime_ns >= RUN2_NS
    assert await fuse_errno(ops.readlink(await walk(ops, "snapshots"))) == errno.EINVAL


@trio_test
async def test_missing_names(corpus: Corpus, fresh_cache: Path) -> None:
    ops = make_ops(corpus, fresh_cache)
    assert await fuse_errno(ops.lookup(ROOT_INODE, b"nothing")) == errno.ENOENT
    snapshots = await walk(ops, "snapshots")
    assert await fuse_errno(ops.lookup(snapshots, b"1999-01-01T00-00-00.000000Z")) == errno.ENOENT
    # Inside a snapshot nothing ever appears: the miss is cached (inode 0).
    inbox = await walk(ops, f"snapshots/latest/{ALICE_DIR}/Mail/Inbox")
    negative = await ops.lookup(inbox, b"no such mail.eml")
    assert negative.st_ino == 0
    assert negative.entry_timeout > 60
    mail = await walk(ops, f"snapshots/latest/{ALICE_DIR}/Mail/Inbox/0001 Meeting 1.eml")
    assert await fuse_errno(ops.opendir(mail, None)) == errno.ENOTDIR
    assert await fuse_errno(ops.getattr(987654321)) == errno.ENOENT


# -- listings ------------------------------------------------------------


@trio_test
async def test_readdir_pages_through_a_big_folder(corpus: Corpus, fresh_cache: Path) -> None:
    kernel = Kernel(room=37)
    ops = make_ops(corpus, fresh_cache, readdir_reply=kernel.reply)
    archive = await walk(ops, f"snapshots/latest/{ALICE_DIR}/Mail/Archive")
    assert ops.vfs.count(ops.inodes.get(archive).node) == ARCHIVE_SIZE
    fh = await ops.opendir(archive, None)
    listed = await kernel.list(ops, fh)
    names = [name for name, _, _ in listed]
    assert names == [b"%05d.eml" % n for n in range(ARCHIVE_SIZE)]
    # Offsets are positions; every entry handed out was counted once, and the
    # entry the full buffer refused was not.
    assert [offset for _, _, offset in listed] == list(range(1, ARCHIVE_SIZE + 1))
    assert all(ops.inodes.lookups(inode) == 1 for _, inode, _ in listed)
    assert len({inode for _, inode, _ in listed}) == ARCHIVE_SIZE
    # A lookup after the listing finds the same inode.
    assert (await ops.lookup(archive, b"01234.eml")).st_ino == listed[1234][1]
    await ops.releasedir(fh)


@trio_test
async def test_listed_files_keep_their_stat_not_their_entry(
    corpus: Corpus, fresh_cache: Path
) -> None:
    """After a listing the kernel holds every file; the inode table keeps each
    one's stat (a decoded entry with its chunks and metadata is several times
    larger), and the entry comes back from the tree when it is needed, even
    once its page has left the tree cache."""
    kernel = Kernel(room=ARCHIVE_SIZE + 1)
    vfs = VirtualFS(corpus.open(fresh_cache), tree_cache_bytes=1)  # keeps one page
    ops = Operations(vfs, readdir_reply=kernel.reply)
    archive = await walk(ops, f"snapshots/latest/{ALICE_DIR}/Mail/Archive")
    fh = await ops.opendir(archive, None)
    gc.collect()
    # Only what the listing allocated under the mount's code counts: earlier tests
    # of the same process leave threads and caches whose allocations landed in
    # the window too (704 bytes a file in CI against 462 alone).
    tracemalloc.start(64)
    try:
        listed = await kernel.list(ops, fh)
        gc.collect()
        traces = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, "*/mount/*", all_frames=True)]
        )
        held = sum(stat.size for stat in traces.statistics("filename"))
    finally:
        tracemalloc.stop()
    await ops.releasedir(fh)
    assert len(listed) == ARCHIVE_SIZE
    # Measured under the mount's code: 1,350 bytes per file with the entries kept
    # (mount/inodes.py's compact() disabled), 460 to 530 without.
    assert held / ARCHIVE_SIZE < 800, held / ARCHIVE_SIZE
    inode = listed[1234][1]
    assert (await ops.getattr(inode, None)).st_size == len(
        alice_items()["Mail/Archive/01234.eml"].content
    )
    assert await ops.getxattr(inode, b"user.coffer.subject", None) == b"Archived 1234"
    assert b"user.coffer.item_id" in await ops.listxattr(inode, None)
    info = await ops.open(inode, os.O_RDONLY, None)
    data = await ops.read(info.fh, 0, 1 << 20)
    assert bytes(data) == alice_items()["Mail/Archive/01234.eml"].content
    await ops.release(info.fh)
    assert await fuse_errno(ops.lookup(inode, b"child", None)) == errno.ENOTDIR
    assert await fuse_errno(ops.opendir(inode, None)) == errno.ENOTDIR
    assert await fuse_errno(ops.readlink(inode, None)) == errno.EINVAL


@trio_test
async def test_readdir_resumes_and_seeks(corpus: Corpus, fresh_cache: Path) -> None:
    kernel = Kernel(room=100)
    ops = make_ops(corpus, fresh_cache, readdir_reply=kernel.reply)
    archive = await walk(ops, f"snapshots/latest/{ALICE_DIR}/Mail/Archive")
    fh = await ops.opendir(archive, None)
    everything = [name for name, _, _ in await kernel.list(ops, fh)]
    # Back to an offset it handed out (seekdir to a telldir value).
    kernel.room = 10
    kernel.taken, kernel.entries = 0, []
    await ops.readdir(fh, 1250, None)  # type: ignore[arg-type]
    assert [name for name, _, _ in kernel.entries] == everything[1250:1260]
    # Rewind.
    kernel.taken, kernel.entries = 0, []
    await ops.readdir(fh, 0, None)  # type: ignore[arg-type]
    assert [name for name, _, _ in kernel.entries] == everything[:10]
    # An offset this handle never gave (a new handle): counted from the start.
    other = await ops.opendir(archive, None)
    kernel.taken, kernel.entries = 0, []
    await ops.readdir(other, 777, None)  # type: ignore[arg-type]
    assert [name for name, _, _ in kernel.entries] == everything[777:787]


@trio_test
async def test_readdir_of_the_layout(corpus: Corpus, fresh_cache: Path) -> None:
    kernel = Kernel(room=1000)
    ops = make_ops(corpus, fresh_cache, readdir_reply=kernel.reply)
    root = await kernel.list(ops, await ops.opendir(ROOT_INODE, None))
    assert [name for name, _, _ in root] == [b"ids", b"owners", b"snapshots"]
    runs = await kernel.list(ops, await ops.opendir(await walk(ops, "snapshots"), None))
    assert [name for name, _, _ in runs] == [
        b"2025-11-24T16-00-00.123456Z",
        b"2025-11-25T16-00-00.123456Z",
        b"latest",
    ]
    owner = await kernel.list(ops, await ops.opendir(await walk(ops, f"owners/{ALICE_DIR}"), None))
    assert [name for name, _, _ in owner][-1] == b"latest"


@trio_test
async def test_new_snapshots_appear_after_the_interval(tmp_path: Path) -> None:
    repo, _, _ = new_repository(tmp_path / "r")
    with BackupRun(repo, time_ns=RUN2_NS) as run:
        store_owner(run, ALICE, {"a.txt": Item(b"one")})
    kernel = Kernel(room=1000)
    vfs = VirtualFS(repo, refresh_seconds=0.5)
    ops = Operations(vfs, readdir_reply=kernel.reply)
    snapshots = await walk(ops, "snapshots")
    first = await kernel.list(ops, await ops.opendir(snapshots, None))
    assert len(first) == 2
    with BackupRun(repo, time_ns=RUN2_NS + 10**9) as run:
        store_owner(run, ALICE, {"a.txt": Item(b"two")})
    await trio.sleep(0.6)
    second = await kernel.list(ops, await ops.opendir(snapshots, None))
    assert [name for name, _, _ in second][1:] == [b"2025-11-25T16-00-01.123456Z", b"latest"]
    latest = (await ops.lookup(snapshots, b"latest")).st_ino
    assert await ops.readlink(latest) == b"2025-11-25T16-00-01.123456Z"
    item = await walk(ops, f"snapshots/latest/{ALICE_DIR}/a.txt")
    fh = (await ops.open(item, os.O_RDONLY, None)).fh
    assert await ops.read(fh, 0, 100) == b"two"
    repo.close()


@trio_test
async def test_inode_table_stays_bounded(corpus: Corpus, fresh_cache: Path) -> None:
    asked: list[tuple[int, bytes]] = []
    kernel = Kernel(room=10_000)
    ops = make_ops(
        corpus,
        fresh_cache,
        readdir_reply=kernel.reply,
        max_inodes=500,
        invalidate=lambda parent, name: asked.append((parent, name)),
    )
    archive = await walk(ops, f"snapshots/latest/{ALICE_DIR}/Mail/Archive")
    listed = await kernel.list(ops, await ops.opendir(archive, None))
    assert len(listed) == ARCHIVE_SIZE
    # Asked to forget the oldest entries (never the layout or snapshot roots) ...
    assert asked
    assert len(set(asked)) == len(asked)
    assert all(parent == archive for parent, _ in asked)
    # ... and once the kernel has, the table is back under its bound.
    await ops.forget([(derive_inode(archive, name), 1) for _, name in asked])
    assert len(ops.inodes) <= 500
    assert ops.inodes.lookups(archive) >= 1


# -- files ---------------------------------------------------------------


@trio_test
async def test_read_only(corpus: Corpus, fresh_cache: Path) -> None:
    ops = make_ops(corpus, fresh_cache)
    mail = await walk(ops, f"snapshots/latest/{ALICE_DIR}/Mail/Inbox/0001 Meeting 1.eml")
    inbox = await walk(ops, f"snapshots/latest/{ALICE_DIR}/Mail/Inbox")
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND):
        assert await fuse_errno(ops.open(mail, flags, None)) == errno.EROFS
    attempts: list[Awaitable[object]] = [
        ops.setattr(mail, pyfuse3.EntryAttributes(), pyfuse3.SetattrFields(), None, None),
        ops.mknod(inbox, b"x", 0o644, 0, None),
        ops.mkdir(inbox, b"x", 0o755, None),
        ops.unlink(inbox, b"0001 Meeting 1.eml", None),
        ops.rmdir(ROOT_INODE, b"snapshots", None),
        ops.symlink(inbox, b"x", b"y", None),
        ops.rename(inbox, b"a", inbox, b"b", 0, None),
        ops.link(mail, inbox, b"x", None),
        ops.create(inbox, b"x", 0o644, os.O_WRONLY, None),
        ops.write(1, 0, b"x"),
        ops.setxattr(mail, b"user.x", b"1", None),
        ops.removexattr(mail, b"user.coffer.subject", None),
    ]
    for attempt in attempts:
        assert await fuse_errno(attempt) == errno.EROFS
    assert await fuse_errno(ops.open(inbox, os.O_RDONLY, None)) == errno.EISDIR
    assert await fuse_errno(ops.read(999, 0, 10)) == errno.EBADF


@trio_test
async def test_read_with_read_ahead(corpus: Corpus, fresh_cache: Path) -> None:
    ops = make_ops(corpus, fresh_cache)
    expected = alice_items()["OneDrive/Documents/report.docx"].content
    inode = await walk(ops, f"snapshots/latest/{ALICE_DIR}/OneDrive/Documents/report.docx")
    info = await ops.open(inode, os.O_RDONLY, None)
    assert info.keep_cache
    entry = ops._files[info.fh].item
    assert isinstance(entry, SnapshotItem)
    assert len(entry.entry.chunks) >= 3
    # The chunks that start within the read-ahead window of the first read.
    chunk_ids, start = [], 0
    for chunk_id, size in entry.entry.chunks:
        if start < ops.readahead_bytes:
            chunk_ids.append(chunk_id)
        start += size
    async with trio.open_nursery() as nursery:
        ops.nursery = nursery
        first = bytes(await ops.read(info.fh, 0, 128 * 1024))
        # A sequential reader gets the following chunks loaded behind its back.
        with trio.fail_after(10):
            while not all(ops.vfs.chunks.contains(c) for c in chunk_ids):
                await trio.sleep(0.01)
        rest = []
        offset = len(first)
        while piece := bytes(await ops.read(info.fh, offset, 128 * 1024)):
            rest.append(piece)
            offset += len(piece)
    assert first + b"".join(rest) == expected
    # Random access too.
    assert bytes(await ops.read(info.fh, 1_000_000, 10)) == expected[1_000_000:1_000_010]
    assert bytes(await ops.read(info.fh, len(expected) + 10, 10)) == b""
    # Across a chunk boundary.
    boundary = entry.entry.chunks[0][1]
    across = await ops.read(info.fh, boundary - 5, 10)
    assert bytes(across) == expected[boundary - 5 : boundary + 5]
    await ops.release(info.fh)
    assert ops.open_files == 0


@trio_test
async def test_xattrs(corpus: Corpus, fresh_cache: Path) -> None:
    ops = make_ops(corpus, fresh_cache)
    mail = await walk(ops, f"snapshots/latest/{ALICE_DIR}/Mail/Inbox/0002 Meeting 2.eml")
    names = set(await ops.listxattr(mail, None))
    assert names == {
        b"user.coffer.subject",
        b"user.coffer.from",
        b"user.coffer.isRead",
        b"user.coffer.item_id",
        b"user.coffer.version",
    }
    assert await ops.getxattr(mail, b"user.coffer.subject", None) == b"Meeting 2"
    assert await ops.getxattr(mail, b"user.coffer.item_id", None) == b"AAMkAGI2TG93AAA=2"
    assert await fuse_errno(ops.getxattr(mail, b"user.coffer.nothing", None)) == pyfuse3.ENOATTR
    root = await walk(ops, f"snapshots/latest/{ALICE_DIR}")
    assert await ops.getxattr(root, b"user.coffer.owner.key", None) == ALICE.key.encode()
    assert await ops.getxattr(root, b"user.coffer.snapshot.partial", None) == b"0"
    assert await ops.listxattr(await walk(ops, "snapshots"), None) == []


@trio_test
async def test_statfs(corpus: Corpus, fresh_cache: Path) -> None:
    ops = make_ops(corpus, fresh_cache)
    stats = await ops.statfs(None)
    assert stats.f_namemax == 255
    assert stats.f_files == 1


class GatedBackend(LocalBackend):
    """Holds every read of a large stored blob until ``gate`` is set: slow storage."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if key.startswith("data/") and length is not None and length > 64 * 1024:
            self.waiting.set()
            self.gate.wait(30)
        return super().get(key, offset, length)


@trio_test
async def test_a_slow_read_does_not_hold_up_others(corpus: Corpus, fresh_cache: Path) -> None:
    backend = GatedBackend(str(corpus.repo_path))
    ops = Operations(VirtualFS(Repository.open(backend, PASSWORD, cache_root=fresh_cache)))
    big = await walk(ops, f"snapshots/latest/{ALICE_DIR}/OneDrive/Documents/report.docx")
    big_fh = (await ops.open(big, os.O_RDONLY, None)).fh
    finished: list[bytes] = []

    async def slow_read() -> None:
        finished.append(bytes(await ops.read(big_fh, 0, 4096)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_read)
        with trio.fail_after(10):
            await trio.to_thread.run_sync(backend.waiting.wait)
        # Meanwhile: names, attributes, listings and another file's content.
        with trio.fail_after(10):
            mail = await walk(ops, f"snapshots/latest/{ALICE_DIR}/Mail/Inbox/0004 Meeting 4.eml")
            assert (await ops.getattr(mail)).st_size > 0
            fh = (await ops.open(mail, os.O_RDONLY, None)).fh
            data = bytes(await ops.read(fh, 0, 1 << 20))
        assert data == alice_items()["Mail/Inbox/0004 Meeting 4.eml"].content
        assert finished == []  # the slow one is still waiting for its storage
        backend.gate.set()
    assert finished == [alice_items()["OneDrive/Documents/report.docx"].content[:4096]]


# -- errors --------------------------------------------------------------


def test_errno_for() -> None:
    assert errno_for(PathNotFound("x"), "p") == errno.ENOENT
    assert errno_for(SnapshotNotFound("x"), "p") == errno.ENOENT
    assert errno_for(IntegrityError("x"), "p") == errno.EIO
    assert errno_for(BlobMissing("x"), "p") == errno.EIO
    assert errno_for(TransientBackendError("x"), "p") == errno.EIO
    assert errno_for(ZeroDivisionError(), "p") == errno.EIO


def damaged_repository(root: Path) -> tuple[Path, Path, str]:
    """A repository whose second run's only data pack is damaged.

    Returns the repository, the damaged pack and that run's file name.
    """
    repo, repo_path, _ = new_repository(root)
    with BackupRun(repo, time_ns=RUN2_NS) as run:
        store_owner(run, ALICE, {"good.txt": Item(b"good\n" * 1000)})
    with BackupRun(repo, time_ns=RUN2_NS + 10**9) as run:
        snapshot = store_owner(
            run, ALICE, {"good.txt": Item(b"good\n" * 1000), "bad.bin": Item(os.urandom(100_000))}
        )
    entry = repo.reader(snapshot).stat("bad.bin")
    pack_id = repo.locate(entry.chunks[0][0]).pack_id
    repo.close()
    pack = repo_path / "data" / pack_id.hex()[:2] / pack_id.hex()
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    return repo_path, pack, "bad.bin"


@trio_test
async def test_damaged_pack_is_eio_on_that_file_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo_path, pack, bad = damaged_repository(tmp_path / "r")
    repo = Repository.open(LocalBackend(str(repo_path)), PASSWORD, cache_root=tmp_path / "c2")
    ops = Operations(VirtualFS(repo))
    caplog.set_level(logging.ERROR, logger="mount")
    inode = await walk(ops, f"snapshots/latest/{ALICE_DIR}/{bad}")
    fh = (await ops.open(inode, os.O_RDONLY, None)).fh
    for _ in range(2):  # and again: no crash, same answer
        assert await fuse_errno(ops.read(fh, 0, 4096)) == errno.EIO
    message = "\n".join(r.getMessage() for r in caplog.records)
    assert f"{bad}: damaged repository data" in message
    assert pack.name in message  # names the pack
    good = await walk(ops, f"snapshots/latest/{ALICE_DIR}/good.txt")
    good_fh = (await ops.open(good, os.O_RDONLY, None)).fh
    assert await ops.read(good_fh, 0, 5) == b"good\n"
    repo.close()


class BrokenBackend(LocalBackend):
    """Fails data reads with an error nobody planned for."""

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if key.startswith("data/"):
            raise RuntimeError("disk controller on fire (test)")
        return super().get(key, offset, length)


@trio_test
async def test_unexpected_errors_are_eio_and_logged(
    corpus: Corpus, fresh_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = Repository.open(BrokenBackend(str(corpus.repo_path)), PASSWORD, cache_root=fresh_cache)
    ops = Operations(VirtualFS(repo))
    caplog.set_level(logging.ERROR, logger="mount")
    inode = await walk(ops, f"snapshots/latest/{ALICE_DIR}/Contacts/Bob Smith.vcf")
    fh = (await ops.open(inode, os.O_RDONLY, None)).fh
    assert await fuse_errno(ops.read(fh, 0, 100)) == errno.EIO
    record = next(r for r in caplog.records if "unexpected error" in r.getMessage())
    assert "Bob Smith.vcf" in record.getMessage()
    assert record.exc_info is not None
    # Metadata still works.
    assert (await ops.getattr(inode)).st_size > 0
    repo.close()
