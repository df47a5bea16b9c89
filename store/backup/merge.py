"""Building an owner's new tree from its catalogue and the run's changes.

The catalogue holds the parent snapshot's state and the ``run`` database the
changes since; both are sorted by path key, which is the depth-first order of
the tree, so one merge pass streams the new state into :class:`PageWriter`s
(one per open directory, a stack as deep as the tree) with bounded memory.

- A directory untouched by the run (and outside any full-enumeration scope,
  on the final pass) is not even read: its old subtree ID is reused and the
  catalogue cursor jumps past it. An incremental run costs work proportional
  to its changes.
- In a full-enumeration scope, catalogue items the run neither saw nor added
  are dropped (the item is gone from the source); a directory left with no
  items that the run did not see itself is dropped too.
- The catalogue is updated in the same pass, in a write transaction the caller
  commits only after the snapshot is stored (see session.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import lmdb

from store.cache.catalogue import TOMBSTONE, CatalogueWriter, OwnerStore
from store.format.codec import decode, encode
from store.format.config import TreeSplitParams
from store.format.paths import SEPARATOR, is_under
from store.format.tree import DIRECTORY, PageWriter, is_directory_entry
from store.ids import BlobId


@dataclass
class MergeCounts:
    """What the merge did, for statistics."""

    kept: int = 0
    written: int = 0
    dropped: int = 0
    reused_dirs: int = 0


@dataclass
class _OpenDir:
    key: bytes
    entry: dict[str, object] | None  # None for the root
    old_encoded: bytes | None  # the catalogue's bytes, None if new or synthesized
    explicit: bool  # keep even when empty
    writer: PageWriter
    children: int = 0
    prefix: bytes = b""  # what the keys of its items start with (b"" for the root)
    # Whether it is, or lies under, a subtree kept whole / a full scope: its
    # items' _in_scope then needs two set lookups, not a walk up their keys.
    under_kept: bool = False
    under_scope: bool = False


@dataclass
class MergeInput:
    """What a merge needs besides the store."""

    save_tree: Callable[[bytes], BlobId]
    split: TreeSplitParams
    split_key: bytes
    full_scopes: list[bytes] = field(default_factory=list)  # applied only if final
    # Subtrees the source found unchanged as a whole: kept without reading them.
    kept: list[bytes] = field(default_factory=list)
    final: bool = False
    # False: no directory's old subtree is reused, every page is written again from
    # the catalogue (deduplication stores only the pages no index has): for a base
    # whose pages may be missing (audit.py).
    reuse_dirs: bool = True


# Items between two ticks of the catalogue's mapped pages (MappedPages.tick).
_TICK_EVERY = 256


def _under_any(key: bytes, prefixes: frozenset[bytes]) -> bool:
    """``any(is_under(key, p) for p in prefixes)`` in O(depth of key)."""
    if not prefixes:
        return False
    if b"" in prefixes or key in prefixes:
        return True
    end = key.find(SEPARATOR)
    while end != -1:
        if key[:end] in prefixes:
            return True
        end = key.find(SEPARATOR, end + 1)
    return False


def _cursor_items(cursor: lmdb.Cursor) -> Iterator[tuple[bytes, bytes]]:
    for key, value in cursor:
        yield bytes(key), bytes(value)


class _Merger:
    def __init__(
        self, store: OwnerStore, spec: MergeInput, rtxn: lmdb.Transaction, out: CatalogueWriter
    ) -> None:
        self.store = store
        self.spec = spec
        self.rtxn = rtxn
        self.wtxn = out
        self.counts = MergeCounts()
        self.scopes = spec.full_scopes if spec.final else []
        self.kept = spec.kept
        # The same as sets, for _under_any: a partly changed folder of a large
        # tree kept its unchanged siblings whole, and testing every key against
        # every kept path was quadratic (0.5 s of a 10,000-file rerun).
        self._kept_set = frozenset(spec.kept)
        self._scope_set = frozenset(self.scopes)
        self.stack: list[_OpenDir] = []
        self.stack.append(self._open(b"", None, None, explicit=True))

    # -- helpers --------------------------------------------------------

    def _open(
        self, key: bytes, entry: dict[str, object] | None, old: bytes | None, *, explicit: bool
    ) -> _OpenDir:
        """A directory to write, opened inside the top of the stack (its parent)."""
        writer = PageWriter(self.spec.save_tree, self.spec.split, self.spec.split_key)
        prefix = key + SEPARATOR if key else b""
        parent = self.stack[-1] if self.stack else None
        under_kept = key in self._kept_set or (parent is not None and parent.under_kept)
        under_scope = key in self._scope_set or (parent is not None and parent.under_scope)
        return _OpenDir(
            key,
            entry,
            old,
            explicit,
            writer,
            prefix=prefix,
            under_kept=under_kept,
            under_scope=under_scope,
        )

    def _in_scope(self, key: bytes) -> bool:
        if not self._scope_set:
            return False  # no full scope (not final, or a source without one)
        if _under_any(key, self._kept_set):
            return False  # kept whole: as good as seen
        return _under_any(key, self._scope_set)

    def _item_in_scope(self, parent: _OpenDir, key: bytes) -> bool:
        """:meth:`_in_scope` of an item directly in ``parent``."""
        if not self._scope_set or parent.under_kept or key in self._kept_set:
            return False
        return parent.under_scope or key in self._scope_set

    def _scope_below(self, key: bytes) -> bool:
        return any(scope.startswith(key + SEPARATOR) for scope in self.scopes)

    def _put(self, key: bytes, encoded: bytes) -> None:
        self.wtxn.put(key, encoded, db=self.store.catalogue)

    def _delete(self, key: bytes, old_encoded: bytes) -> None:
        self.wtxn.delete(key, db=self.store.catalogue)
        item_id = decode(old_encoded, "catalogue entry").get("i")
        if item_id is not None:
            raw_id = str(item_id).encode()
            current = self.wtxn.get(raw_id, db=self.store.ids)
            if current == key:
                self.wtxn.delete(raw_id, db=self.store.ids)
        self.counts.dropped += 1

    def _set_id(self, key: bytes, encoded: bytes) -> None:
        item_id = decode(encoded, "run entry").get("i")
        if item_id is not None:
            self.wtxn.set_id(key, str(item_id).encode())

    def _close_until_parent_of(self, key: bytes) -> _OpenDir:
        """Pop directories until the top of the stack is the parent of ``key``
        (opening its missing ancestors); returns it."""
        stack = self.stack
        while len(stack) > 1 and not key.startswith(stack[-1].prefix):
            self._close_top()
        top = stack[-1]
        rest = key[len(top.prefix) :]
        if SEPARATOR in rest:
            # Open synthesized directories for missing ancestors.
            current = top.key
            for name in rest.split(SEPARATOR)[:-1]:
                current = current + SEPARATOR + name if current else name
                raw = self.rtxn.get(current, db=self.store.catalogue)
                existing = None if raw is None else bytes(raw)
                old_entry = decode(existing, "catalogue entry") if existing is not None else None
                if old_entry is not None and old_entry.get("t") == DIRECTORY:
                    stack.append(self._open(current, old_entry, existing, explicit=False))
                else:
                    # Missing, or a file the run replaced by a folder: a new directory.
                    entry = {"n": name, "t": DIRECTORY, "p": 0o755, "m": 0}
                    stack.append(self._open(current, entry, None, explicit=False))
            top = stack[-1]
        return top

    def _close_top(self) -> None:
        closing = self.stack.pop()
        parent = self.stack[-1]
        assert closing.entry is not None
        if closing.children == 0 and not closing.explicit:
            if closing.old_encoded is not None:
                self._delete(closing.key, closing.old_encoded)
            return
        entry = dict(closing.entry)
        entry["x"] = closing.writer.finish()
        # Keep FORMAT.md's key order: x comes before v, i, a.
        ordered: dict[str, object] = {k: entry[k] for k in ("n", "t", "p", "m", "x") if k in entry}
        ordered.update({k: v for k, v in entry.items() if k not in ordered})
        encoded = encode(ordered)
        if encoded != closing.old_encoded:
            self._put(closing.key, encoded)
            self.counts.written += 1
        else:
            self.counts.kept += 1
        self._emit_into(parent, closing.key, encoded)

    def _emit_into(self, directory: _OpenDir, key: bytes, encoded: bytes) -> None:
        directory.writer.add(key[len(directory.prefix) :], encoded)
        directory.children += 1

    def _emit(self, key: bytes, encoded: bytes) -> None:
        self._emit_into(self._close_until_parent_of(key), key, encoded)

    def _push_dir(self, key: bytes, encoded: bytes, old: bytes | None, *, explicit: bool) -> None:
        self._close_until_parent_of(key)
        self.stack.append(
            self._open(key, decode(encoded, "directory entry"), old, explicit=explicit)
        )

    # -- the merge ------------------------------------------------------

    def run(self) -> BlobId:
        store = self.store
        cat_cursor = self.rtxn.cursor(db=store.catalogue)
        run_items = _cursor_items(self.rtxn.cursor(db=store.run))
        cat_ok = cat_cursor.first()
        run_next = next(run_items, None)
        dropping: bytes | None = None
        ticks = 0
        while cat_ok or run_next is not None:
            ticks += 1
            if ticks == _TICK_EVERY:  # one lock per batch, not per item
                store.pages.tick(ticks)
                ticks = 0
            cat_key = bytes(cat_cursor.key()) if cat_ok else None
            if run_next is not None and (cat_key is None or run_next[0] <= cat_key):
                key, value = run_next
                run_next = next(run_items, None)
                old = None
                if cat_key == key:
                    old = bytes(cat_cursor.value())
                    cat_ok = cat_cursor.next()
                if dropping is not None and not is_under(key, dropping):
                    dropping = None
                if value == TOMBSTONE:
                    if old is not None:
                        self._delete(key, old)
                    dropping = key
                    continue
                is_dir = is_directory_entry(value)
                if old is not None and not is_dir and is_directory_entry(old):
                    dropping = key  # a directory replaced by a file: drop its contents
                self._set_id(key, value)
                if is_dir:
                    self._push_dir(key, value, old, explicit=True)
                else:
                    if value != old:
                        self._put(key, value)
                        self.counts.written += 1
                    self._emit(key, value)
                continue
            # Only the catalogue has this key.
            assert cat_key is not None
            old = bytes(cat_cursor.value())
            if dropping is not None and is_under(cat_key, dropping) and cat_key != dropping:
                self._delete(cat_key, old)
                cat_ok = cat_cursor.next()
                continue
            if not is_directory_entry(old):
                # A file or link: its folder is open by now (a folder's key
                # comes before its items'), or it is opened for it.
                parent = self._close_until_parent_of(cat_key)
                if (
                    not self._item_in_scope(parent, cat_key)
                    or self.rtxn.get(cat_key, db=store.seen) is not None
                ):
                    self._emit_into(parent, cat_key, old)
                    self.counts.kept += 1
                else:
                    self._delete(cat_key, old)
                cat_ok = cat_cursor.next()
                continue
            # A folder.
            in_scope = self._in_scope(cat_key)
            was_seen = (not in_scope) or self.rtxn.get(cat_key, db=store.seen) is not None
            kept_whole = _under_any(cat_key, self._kept_set)
            if (
                self.spec.reuse_dirs
                and not in_scope
                and (kept_whole or not self._scope_below(cat_key))
                and not store.run_has_under(cat_key)
            ):
                # Untouched directory: reuse its subtree as is.
                self._emit(cat_key, old)
                self.counts.reused_dirs += 1
                cat_ok = cat_cursor.set_range(cat_key + b"\x01")
                continue
            self._push_dir(cat_key, old, old, explicit=was_seen)
            cat_ok = cat_cursor.next()
        while len(self.stack) > 1:
            self._close_top()
        return self.stack[0].writer.finish()


def merge(
    store: OwnerStore, spec: MergeInput, rtxn: lmdb.Transaction, out: CatalogueWriter
) -> tuple[BlobId, MergeCounts]:
    """Build the new root tree. ``rtxn`` reads the old state, ``out`` records the new."""
    merger = _Merger(store, spec, rtxn, out)
    root = merger.run()
    return root, merger.counts
