"""What the kernel learns about a node: its stat, its extended attributes.

Pure functions of a :class:`store.VirtualFS` node, used by every lookup and
for every entry of every listing (so they read an entry's fields directly).
"""

from __future__ import annotations

import stat

import pyfuse3

from store import DIRECTORY, FILE, SYMLINK, SnapshotItem, VirtualDir, VNode, format_time

# Snapshot contents never change: the kernel may keep names and attributes
# for an hour. Layout directories change as snapshots arrive: one second.
ITEM_TIMEOUT = 3600.0
LAYOUT_TIMEOUT = 1.0
BLOCK_SIZE = 128 * 1024  # st_blksize: cp and cat size their reads by it
_FILE_TYPES = {FILE: stat.S_IFREG, DIRECTORY: stat.S_IFDIR, SYMLINK: stat.S_IFLNK}
XATTR_PREFIX = b"user.coffer."
_XATTR_NAME_MAX = 255
_XATTR_SIZE_MAX = 65536


class FileStat:
    """What the inode table keeps of a file inside a snapshot: its stat only.

    A decoded tree entry with its chunk list and metadata costs ~800 bytes; the
    kernel may hold a hundred thousand files after a ``find``, so the table
    keeps this (~100 bytes) and the operations look the entry up again in the
    parent directory when the file is opened or its attributes are read.
    """

    __slots__ = ("mtime_ns", "size", "st_mode")
    is_dir = False

    def __init__(self, st_mode: int, size: int, mtime_ns: int) -> None:
        self.st_mode = st_mode
        self.size = size
        self.mtime_ns = mtime_ns

    @classmethod
    def of(cls, node: SnapshotItem) -> FileStat:
        entry = node.entry
        return cls(
            stat.S_IFREG | (entry.mode & 0o7777),
            entry.size,
            entry.mtime_ns or node.snapshot.time_ns,
        )


def entry_attributes(
    inode: int, node: VNode | FileStat, uid: int, gid: int
) -> pyfuse3.EntryAttributes:
    """The stat of ``node`` as the kernel gets it, owned by ``uid``/``gid``."""
    attrs = pyfuse3.EntryAttributes()
    if type(node) is FileStat:
        attrs.st_mode = node.st_mode
        size = node.size
        mtime = node.mtime_ns
        timeout = ITEM_TIMEOUT
    elif type(node) is SnapshotItem:
        entry = node.entry
        kind = entry.type
        attrs.st_mode = _FILE_TYPES[kind] | (entry.mode & 0o7777)
        if kind == FILE:
            size = entry.size
        elif kind == SYMLINK:
            size = len(entry.target or b"")
        else:
            size = 0
        mtime = entry.mtime_ns or node.snapshot.time_ns
        timeout = ITEM_TIMEOUT
    else:
        assert not isinstance(node, FileStat)
        attrs.st_mode = node.st_mode
        size = node.size
        mtime = node.mtime_ns
        timeout = LAYOUT_TIMEOUT
    attrs.st_ino = inode
    # 1 for directories too: "unknown", so find does not skip subdirectories
    # by counting links.
    attrs.st_nlink = 1
    attrs.st_uid = uid
    attrs.st_gid = gid
    attrs.st_size = size
    attrs.st_blksize = BLOCK_SIZE
    attrs.st_blocks = (size + 511) >> 9
    attrs.st_atime_ns = mtime
    attrs.st_mtime_ns = mtime
    attrs.st_ctime_ns = mtime
    attrs.entry_timeout = timeout
    attrs.attr_timeout = timeout
    return attrs


def negative_entry() -> pyfuse3.EntryAttributes:
    """The answer "no such name", which the kernel keeps as long as snapshot items."""
    negative = pyfuse3.EntryAttributes()
    negative.st_ino = 0
    negative.entry_timeout = ITEM_TIMEOUT
    return negative


def extended_attributes(node: VNode) -> dict[bytes, bytes]:
    """``user.coffer.*`` of a node: the item's metadata, and on a snapshot's
    root the snapshot's own. Names that are not valid or values too large
    for the kernel are left out; the entry's own item ID and version win over
    metadata keys of the same name."""
    if not isinstance(node, SnapshotItem):
        return {}
    values: dict[str, str] = dict(node.entry.attrs)
    if node.entry.item_id is not None:
        values["item_id"] = node.entry.item_id
    if node.entry.version is not None:
        values["version"] = node.entry.version
    if node.is_root:
        snap = node.snapshot
        values.update(
            {
                "snapshot.id": snap.id_hex,
                "snapshot.time": format_time(snap.time_ns, precision=9),
                "snapshot.run": snap.run,
                "snapshot.host": snap.host,
                "snapshot.partial": "1" if snap.partial else "0",
                "owner.kind": snap.owner.kind,
                "owner.key": snap.owner.key,
                "owner.name": snap.owner.name,
            }
        )
    out: dict[bytes, bytes] = {}
    for key, value in values.items():
        name = XATTR_PREFIX + key.encode("utf-8", "surrogateescape")
        data = value.encode("utf-8", "surrogateescape")
        if b"\x00" in name or len(name) > _XATTR_NAME_MAX or len(data) > _XATTR_SIZE_MAX:
            continue
        out[name] = data
    return out


def describe(node: VNode, name: bytes | None = None) -> str:
    """A node (and a child name) for log lines."""
    if isinstance(node, SnapshotItem):
        where = node.describe()
    elif isinstance(node, VirtualDir):
        where = "/" + "/".join(node.key)
    else:
        where = f"link -> {node.target}"
    if name is not None:
        where = f"{where.rstrip('/')}/{name.decode('utf-8', 'backslashreplace')}"
    return where
