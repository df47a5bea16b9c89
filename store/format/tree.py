"""Directory trees: entries, content-defined pages, writing and reading them.

A directory's listing is stored as one or more tree blobs ("pages", FORMAT.md
§8). :class:`PageWriter` streams sorted entries into pages with bounded memory;
:class:`TreeReader` lists, looks up and seeks in them through a page cache.
"""

from __future__ import annotations

import bisect
import stat as stat_module
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from blake3 import blake3

from store.errors import IntegrityError
from store.format.codec import (
    I64_MAX,
    decode,
    decode_map,
    encode,
    field_bytes,
    field_int,
    field_list,
    field_map,
    field_str,
    field_str_map,
)
from store.format.config import TreeSplitParams
from store.ids import BlobId

FILE = "f"
DIRECTORY = "d"
SYMLINK = "l"
ENTRY_TYPES = (FILE, DIRECTORY, SYMLINK)
TREE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a directory: a file, a directory or a symlink."""

    name: bytes
    type: str
    mode: int = 0o644
    mtime_ns: int = 0
    size: int = 0
    chunks: tuple[tuple[BlobId, int], ...] = ()
    subtree: BlobId | None = None
    target: bytes | None = None
    version: str | None = None
    item_id: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def is_dir(self) -> bool:
        return self.type == DIRECTORY

    @property
    def is_file(self) -> bool:
        return self.type == FILE

    @property
    def is_symlink(self) -> bool:
        return self.type == SYMLINK

    @property
    def st_mode(self) -> int:
        kind = {FILE: stat_module.S_IFREG, DIRECTORY: stat_module.S_IFDIR}.get(
            self.type, stat_module.S_IFLNK
        )
        return kind | (self.mode & 0o7777)

    @property
    def display_name(self) -> str:
        return self.name.decode("utf-8", "surrogateescape")

    def to_map(self) -> dict[str, Any]:
        """The msgpack map, keys in FORMAT.md order, optional ones omitted."""
        out: dict[str, Any] = {"n": self.name, "t": self.type, "p": self.mode, "m": self.mtime_ns}
        if self.type == FILE:
            out["s"] = self.size
            out["c"] = [[blob_id, size] for blob_id, size in self.chunks]
        elif self.type == DIRECTORY:
            if self.subtree is not None:
                out["x"] = self.subtree
        elif self.target is not None:
            out["l"] = self.target
        if self.version is not None:
            out["v"] = self.version
        if self.item_id is not None:
            out["i"] = self.item_id
        if self.attrs:
            out["a"] = dict(sorted(self.attrs.items()))
        return out

    def encode(self) -> bytes:
        return encode(self.to_map())

    @classmethod
    def from_map(cls, data: object, what: str = "tree entry") -> Entry:
        """Parse an entry map (FORMAT.md §8). Raises IntegrityError.

        Every field is type- and range-checked: the name is one safe path
        component (restore and mount join it to paths), integers fit the
        format's ranges, the content's sizes are non-negative.
        """
        data = field_map(data, what, "entry")
        entry_type = data.get("t")
        if entry_type not in ENTRY_TYPES:
            raise IntegrityError(f"{what}: unknown entry type {_show_type(entry_type)}")
        name = field_bytes(data.get("n"), what, "entry name")
        try:
            validate_name(name)
        except ValueError as exc:
            raise IntegrityError(f"{what}: {exc}") from None
        subtree = data.get("x")
        target = data.get("l")
        version = data.get("v")
        item_id = data.get("i")
        chunks = tuple(
            _chunk(item, what) for item in field_list(data.get("c", []), what, "content")
        )
        return cls(
            name=name,
            type=str(entry_type),
            mode=field_int(data.get("p", 0), what, "permission bits", 0, 0o7777),
            mtime_ns=field_int(data.get("m", 0), what, "modification time", -I64_MAX, I64_MAX),
            size=field_int(data.get("s", 0), what, "size", 0, I64_MAX),
            chunks=chunks,
            subtree=None if subtree is None else BlobId(field_bytes(subtree, what, "subtree", 32)),
            target=None if target is None else field_bytes(target, what, "link target"),
            version=None if version is None else field_str(version, what, "version key"),
            item_id=None if item_id is None else field_str(item_id, what, "item ID"),
            attrs=dict(field_str_map(data.get("a") or {}, what, "metadata")),
        )

    @classmethod
    def decode(cls, raw: bytes, what: str = "tree entry") -> Entry:
        data = decode(raw, what)
        if not isinstance(data, dict):
            raise IntegrityError(f"{what}: malformed entry")
        return cls.from_map(data, what)


def validate_name(name: bytes) -> None:
    """Refuse names that are not one safe path component. Raises ValueError."""
    if not name or name in (b".", b"..") or b"/" in name or b"\x00" in name:
        raise ValueError(f"invalid item name {name!r}")


def _array_header(count: int) -> bytes:
    if count < 16:
        return bytes([0x90 | count])
    if count < 1 << 16:
        return b"\xdc" + struct.pack(">H", count)
    return b"\xdd" + struct.pack(">I", count)


def _chunk(item: object, what: str) -> tuple[BlobId, int]:
    blob_id, size = field_list(item, what, "content chunk", 2)
    return BlobId(field_bytes(blob_id, what, "chunk ID", 32)), field_int(
        size, what, "chunk size", 0, I64_MAX
    )


def _show_type(value: object) -> str:
    return repr(value)[:20] if isinstance(value, str) else type(value).__name__


# An encoded entry as Entry.to_map writes it starts with a fixmap and its
# name, then its type: "n" bin8/bin16 name, "t" one-letter str.
_NAME_KEY = b"\xa1n"
_TYPE_DIRECTORY = b"\xa1t\xa1" + DIRECTORY.encode()
_TYPE_OTHER = (b"\xa1t\xa1" + FILE.encode(), b"\xa1t\xa1" + SYMLINK.encode())


def is_directory_entry(raw: bytes) -> bool:
    """Whether the encoded entry ``raw`` is a directory (``"t"`` is DIRECTORY).

    Reads the type where Coffer's encoder puts it, after the name, without
    decoding the rest (a merge asks this of every entry of a changed folder);
    anything laid out otherwise is decoded whole. False for an empty value (a
    removal) and for what does not decode to a map. Raises IntegrityError
    for bytes that are not msgpack at all.
    """
    if len(raw) > 4 and 0x80 <= raw[0] <= 0x8F and raw[1:3] == _NAME_KEY:
        if raw[3] == 0xC4:
            at = 5 + raw[4]
        elif raw[3] == 0xC5:
            at = 6 + int.from_bytes(raw[4:6], "big")
        else:
            at = -1
        if at > 0:
            kind = raw[at : at + 4]
            if kind == _TYPE_DIRECTORY:
                return True
            if kind in _TYPE_OTHER:
                return False
    if not raw:
        return False
    data = decode(raw, "catalogue entry")
    return isinstance(data, dict) and data.get("t") == DIRECTORY


# Pre-encoded msgpack for {"v": 1, "e": [...]}: fixmap(2) "v" 1 "e".
_LEAF_PREFIX = b"\x82\xa1v\x01\xa1e"


def leaf_page(encoded_entries: list[bytes]) -> bytes:
    """A leaf page from already-encoded entries (avoids re-encoding them)."""
    return _LEAF_PREFIX + _array_header(len(encoded_entries)) + b"".join(encoded_entries)


def interior_page(children: list[tuple[bytes, BlobId, int]]) -> bytes:
    return encode({"v": 1, "p": [[first, page_id, count] for first, page_id, count in children]})


class PageWriter:
    """Streams a directory's entries (in strictly increasing name order) into pages.

    ``save`` stores a tree blob and returns its ID (dedup makes unchanged pages
    free). Memory is bounded by one page per level. Not thread-safe.
    """

    def __init__(
        self,
        save: Callable[[bytes], BlobId],
        params: TreeSplitParams,
        split_key: bytes,
    ) -> None:
        self._save = save
        self._params = params
        self._key = split_key
        self._mask = (1 << params.mask_bits) - 1
        self._entries: list[bytes] = []
        self._bytes = 0
        self._first: bytes | None = None
        self._last: bytes | None = None
        self._leaves: list[tuple[bytes, BlobId, int]] = []
        self.count = 0

    def _boundary(self, name: bytes) -> bool:
        digest = blake3(name, key=self._key).digest(length=4)
        return (int.from_bytes(digest, "little") & self._mask) == 0

    def add(self, name: bytes, encoded_entry: bytes) -> None:
        if self._last is not None and name <= self._last:
            raise ValueError(f"entries out of order: {name!r} after {self._last!r}")
        self._last = name
        if self._first is None:
            self._first = name
        self._entries.append(encoded_entry)
        self._bytes += len(encoded_entry)
        self.count += 1
        params = self._params
        count = len(self._entries)
        if (
            (count >= params.min and self._boundary(name))
            or count >= params.max_entries
            or self._bytes >= params.max_bytes
        ):
            self._flush_leaf()

    def _flush_leaf(self) -> None:
        if not self._entries:
            return
        page_id = self._save(leaf_page(self._entries))
        assert self._first is not None
        self._leaves.append((self._first, page_id, len(self._entries)))
        self._entries = []
        self._bytes = 0
        self._first = None

    def finish(self) -> BlobId:
        """Write what is left and return the directory's root page ID."""
        if not self._leaves or self._entries:
            if not self._leaves and not self._entries:
                return self._save(leaf_page([]))
            self._flush_leaf()
        level = self._leaves
        while len(level) > 1:
            level = self._interior_level(level)
        return level[0][1]

    def _interior_level(
        self, children: list[tuple[bytes, BlobId, int]]
    ) -> list[tuple[bytes, BlobId, int]]:
        parents: list[tuple[bytes, BlobId, int]] = []
        current: list[tuple[bytes, BlobId, int]] = []
        params = self._params
        for child in children:
            current.append(child)
            if (len(current) >= params.min and self._boundary(child[0])) or len(
                current
            ) >= params.max_entries:
                parents.append(self._write_interior(current))
                current = []
        if current:
            parents.append(self._write_interior(current))
        if len(parents) == len(children):
            # Every child became its own parent: force progress.
            return [self._write_interior(children)]
        return parents

    def _write_interior(
        self, children: list[tuple[bytes, BlobId, int]]
    ) -> tuple[bytes, BlobId, int]:
        page_id = self._save(interior_page(children))
        return children[0][0], page_id, sum(count for _, _, count in children)


# What a decoded page costs in memory, from its encoded size and entry count
# (measured with tracemalloc: leaves of files with 0 to 40 chunks and 0 to 6
# metadata keys take 3.6 to 4.3 times their msgpack bytes plus ~160 to 250
# bytes per entry; interior pages ~4 times plus ~16 per child). Rounded up, so
# the estimate errs above the truth (tests/store/test_tree_cache.py).
_LEAF_PER_BYTE, _LEAF_PER_ENTRY = 5, 256
_INTERIOR_PER_BYTE, _INTERIOR_PER_CHILD = 4, 32


@dataclass(frozen=True)
class Page:
    """A decoded page: either ``entries`` (leaf) or ``children`` (interior).

    ``weight`` is an upper estimate of the bytes the decoded page holds in
    memory (0 when built by hand), for the reader's cache bound.
    """

    entries: tuple[Entry, ...] | None
    children: tuple[tuple[bytes, BlobId, int], ...] | None
    weight: int = 0

    @property
    def names(self) -> list[bytes]:
        if self.entries is not None:
            return [entry.name for entry in self.entries]
        assert self.children is not None
        return [first for first, _, _ in self.children]

    @classmethod
    def decode(cls, raw: bytes, what: str) -> Page:
        """Parse a tree page. Raises FormatTooNew, IntegrityError."""
        data = decode_map(raw, what, TREE_VERSION)
        if "e" in data:
            items = field_list(data["e"], what, "entries")
            entries = tuple(Entry.from_map(item, what) for item in items)
            return cls(entries, None, _LEAF_PER_BYTE * len(raw) + _LEAF_PER_ENTRY * len(entries))
        children = []
        for child in field_list(data.get("p"), what, "children"):
            first, page_id, count = field_list(child, what, "child", 3)
            children.append(
                (
                    field_bytes(first, what, "child name"),
                    BlobId(field_bytes(page_id, what, "child page ID", 32)),
                    field_int(count, what, "child count", 0, I64_MAX),
                )
            )
        weight = _INTERIOR_PER_BYTE * len(raw) + _INTERIOR_PER_CHILD * len(children)
        return cls(None, tuple(children), weight)


DEFAULT_TREE_CACHE_BYTES = 16 * 1024 * 1024


class TreeReader:
    """Reads directory trees through a bounded LRU cache of decoded pages.

    ``load`` returns a tree blob's plaintext (verified). The cache holds at
    most ``cache_bytes`` of decoded pages by :attr:`Page.weight` (a page holds
    from one to thousands of entries, so neither pages nor entries bound the
    memory), except that the page in use is always kept. Thread-safe.
    """

    def __init__(
        self, load: Callable[[BlobId], bytes], cache_bytes: int = DEFAULT_TREE_CACHE_BYTES
    ) -> None:
        self._load = load
        self._cache: OrderedDict[BlobId, Page] = OrderedDict()
        self._capacity = cache_bytes
        self._held = 0
        self._lock = threading.Lock()

    def page(self, page_id: BlobId) -> Page:
        with self._lock:
            cached = self._cache.get(page_id)
            if cached is not None:
                self._cache.move_to_end(page_id)
                return cached
        page = Page.decode(self._load(page_id), f"tree page {page_id.hex()[:8]}")
        with self._lock:
            if page_id not in self._cache:
                self._cache[page_id] = page
                self._held += page.weight
                while self._held > self._capacity and len(self._cache) > 1:
                    _, evicted = self._cache.popitem(last=False)
                    self._held -= evicted.weight
        return page

    def lookup(self, root: BlobId, name: bytes) -> Entry | None:
        """The entry called ``name`` in the directory, or None."""
        page = self.page(root)
        while page.children is not None:
            firsts = [first for first, _, _ in page.children]
            position = bisect.bisect_right(firsts, name) - 1
            if position < 0:
                return None
            page = self.page(page.children[position][1])
        assert page.entries is not None
        names = [entry.name for entry in page.entries]
        position = bisect.bisect_left(names, name)
        if position < len(names) and names[position] == name:
            return page.entries[position]
        return None

    def entries(self, root: BlobId, after: bytes | None = None) -> Iterator[Entry]:
        """Every entry in name order, optionally only those after ``after``."""
        yield from self._walk(self.page(root), after)

    def _walk(self, page: Page, after: bytes | None) -> Iterator[Entry]:
        if page.entries is not None:
            start = 0
            if after is not None:
                start = bisect.bisect_right([e.name for e in page.entries], after)
            yield from page.entries[start:]
            return
        assert page.children is not None
        start = 0
        if after is not None:
            firsts = [first for first, _, _ in page.children]
            start = max(bisect.bisect_right(firsts, after) - 1, 0)
        for _first, child_id, _count in page.children[start:]:
            yield from self._walk(self.page(child_id), after)

    def count(self, root: BlobId) -> int:
        """Number of entries in the directory (without reading every leaf)."""
        page = self.page(root)
        if page.entries is not None:
            return len(page.entries)
        assert page.children is not None
        return sum(count for _, _, count in page.children)
