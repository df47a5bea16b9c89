"""The inode table: which node each inode the kernel knows stands for.

Inode numbers are derived from the path, as restic's are: a hash of the parent
inode and the name (and, where a snapshot's tree starts, the snapshot ID, so
that a name that comes to mean another snapshot gets another inode and the
kernel never serves one snapshot's cached pages for another). So the same path
gets the same number for as long as the mount runs, and ``readdir`` needs no
second index to find the number of a name it has handed out before. The hash
is Python's own (SipHash under a per-process key): numbers are stable for the
life of the mount, which is all the kernel needs, and cost a fraction of a
cryptographic hash per entry listed. The rare collision gets a number from a
separate counter range.

A record lives exactly as long as the kernel's lookup count for it is above
zero: every successful ``lookup`` and every entry ``readdir`` hands out adds
one, ``forget`` takes away, and at zero the record is dropped. The kernel
forgets when it evicts its own cache; to keep memory bounded no matter what
is walked, :meth:`InodeTable.over_limit` names the oldest entries to ask the
kernel to drop when the table grows past ``max_inodes``.

A file inside a snapshot is kept as its :class:`~mount.attributes.FileStat`
(its stat, not its tree entry), which is what keeps a table of 100,000 inodes
at about 25 MiB; the operations look the entry up again when they need it.

Not thread-safe: the FUSE handlers that use it all run on the trio thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from mount.attributes import FileStat
from store import FILE, SnapshotItem, VirtualDir, VNode

ROOT_INODE = 1
# Numbers below this are never derived (0 is invalid, 1 is the root).
_FIRST_DERIVED = 16
# Collision fallbacks are counted from here; derived numbers stay below it.
_FALLBACK_BASE = 1 << 63
_DERIVED_MASK = _FALLBACK_BASE - 1
DEFAULT_MAX_INODES = 100_000  # ~25 MiB of file records (directories cost more)

Node = VNode | FileStat


def compact(node: VNode) -> Node:
    """What the table keeps of ``node``: a file inside a snapshot as its stat."""
    if type(node) is SnapshotItem and node.path and node.entry.type == FILE:
        return FileStat.of(node)
    return node


class Record:
    """One inode: the node it stands for, where it hangs, its lookup count."""

    __slots__ = ("lookups", "name", "node", "parent")

    def __init__(self, node: Node, parent: int, name: bytes) -> None:
        self.node = node
        self.parent = parent
        self.name = name
        self.lookups = 0


@dataclass(frozen=True)
class Stale:
    """An entry to ask the kernel to forget (``parent`` inode, ``name``)."""

    inode: int
    parent: int
    name: bytes


def _salt(node: Node) -> bytes:
    if type(node) is SnapshotItem and not node.path and node.snapshot.snapshot_id:
        return node.snapshot.snapshot_id
    return b""


def derive_inode(parent: int, name: bytes, salt: bytes = b"") -> int:
    """The inode number of ``name`` in ``parent``, below 2**63 (stable within a process)."""
    number = hash((parent, name, salt)) & _DERIVED_MASK
    return number if number >= _FIRST_DERIVED else number + _FIRST_DERIVED


class InodeTable:
    """Inode number -> :class:`Record` (see the module docstring)."""

    def __init__(self, root: VirtualDir, max_inodes: int = DEFAULT_MAX_INODES) -> None:
        self.max_inodes = max_inodes
        root_record = Record(root, ROOT_INODE, b"")
        root_record.lookups = 1  # never forgotten
        self._records: dict[int, Record] = {ROOT_INODE: root_record}
        self._fallback: dict[tuple[int, bytes, bytes], int] = {}
        self._next_fallback = _FALLBACK_BASE
        self._asked: set[int] = set()

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, inode: int) -> bool:
        return inode in self._records

    def get(self, inode: int) -> Record:
        """The record of ``inode``. Raises KeyError when the kernel forgot it."""
        return self._records[inode]

    def lookups(self, inode: int) -> int:
        record = self._records.get(inode)
        return record.lookups if record else 0

    def remember(self, parent: int, name: bytes, node: VNode) -> int:
        """Count one lookup of ``name`` in ``parent`` (now ``node``); its inode number.

        The record's node is replaced by ``node`` (a file inside a snapshot by
        its :class:`~mount.attributes.FileStat`): a virtual directory's time
        moves on as snapshots arrive.
        """
        salt = _salt(node)
        key = (parent, name, salt)
        inode = self._fallback.get(key)
        if inode is None:
            inode = derive_inode(parent, name, salt)
            record = self._records.get(inode)
            if record is not None and (
                record.parent != parent or record.name != name or _salt(record.node) != salt
            ):
                inode = self._next_fallback
                self._next_fallback += 1
                self._fallback[key] = inode
        record = self._records.get(inode)
        if record is None:
            record = self._records[inode] = Record(compact(node), parent, name)
        else:
            record.node = compact(node)
        record.lookups += 1
        return inode

    def add_lookup(self, inode: int) -> None:
        """Count one more lookup of a known inode (``.`` and ``..``). Raises KeyError."""
        self._records[inode].lookups += 1

    def forget(self, inode: int, count: int) -> None:
        """Take ``count`` lookups away; drop the record at zero. Never raises."""
        record = self._records.get(inode)
        if record is None or inode == ROOT_INODE:
            return
        record.lookups -= count
        if record.lookups > 0:
            return
        del self._records[inode]
        self._asked.discard(inode)
        if inode >= _FALLBACK_BASE:
            self._fallback.pop((record.parent, record.name, _salt(record.node)), None)

    def over_limit(self, keep: frozenset[int] = frozenset()) -> list[Stale]:
        """Entries to ask the kernel to forget once the table holds more than
        ``max_inodes`` not yet asked about: the oldest, enough to bring it to
        90 % (so the work comes in batches), files before directories. Layout
        directories, links and
        snapshot roots are kept (they are few and get walked through), and so
        is ``keep`` (inodes with open handles). Each entry is named once until
        it is forgotten."""
        live = len(self._records) - len(self._asked)
        if live <= self.max_inodes:
            return []
        wanted = live - self.max_inodes * 9 // 10
        out: list[Stale] = []
        # Files first: dropping a directory drops everything the kernel holds
        # under it, which a walk still under way would have to look up again.
        for directories in (False, True):
            for inode, record in self._records.items():
                if len(out) >= wanted:
                    return out
                node = record.node
                if (
                    inode in self._asked
                    or inode in keep
                    or not isinstance(node, SnapshotItem | FileStat)
                    or (isinstance(node, SnapshotItem) and node.is_root)
                    or node.is_dir != directories
                ):
                    continue
                self._asked.add(inode)
                out.append(Stale(inode, record.parent, record.name))
        return out
