"""What snapshots reference: every tree page and data chunk reachable from them.

Trees are content-addressed, so a page reached twice (an unchanged folder in
the next snapshot, the same folder in two owners) is read once: the walk costs
the number of distinct pages, not the number of snapshots times their size.

Pages come from a ``load_page`` callable, so check (which reads afresh through
the index it just verified), prune and stats each supply their own. Errors
loading a page are recorded, never raised: callers decide what damage means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from store.errors import StoreError
from store.format.snapshot import Snapshot
from store.format.tree import Page
from store.ids import BlobId

PageLoader = Callable[[BlobId], Page]


def page_links(page: Page) -> tuple[list[BlobId], list[BlobId]]:
    """(tree pages below this page, data chunks named by it)."""
    pages: list[BlobId] = []
    chunks: list[BlobId] = []
    if page.entries is not None:
        for entry in page.entries:
            if entry.subtree is not None:
                pages.append(entry.subtree)
            for chunk_id, _size in entry.chunks:
                chunks.append(chunk_id)
    else:
        assert page.children is not None
        pages.extend(child for _first, child, _count in page.children)
    return pages, chunks


@dataclass
class Reachability:
    """Accumulates what a set of snapshots references. Not thread-safe."""

    load_page: PageLoader
    tree_blobs: set[BlobId] = field(default_factory=set)  # pages and sync blobs
    data_blobs: set[BlobId] = field(default_factory=set)
    sync_blobs: set[BlobId] = field(default_factory=set)
    # Pages that could not be read, with the reason (what lies below is unknown).
    unreadable: dict[BlobId, str] = field(default_factory=dict)
    pages_read: int = 0

    def add(self, snapshot: Snapshot) -> None:
        """Walk one snapshot (pages already walked are skipped)."""
        self.sync_blobs.update(snapshot.sync)
        self.tree_blobs.update(snapshot.sync)
        self.add_root(snapshot.tree)

    def add_root(self, root: BlobId) -> None:
        stack = [root]
        while stack:
            page_id = stack.pop()
            if page_id in self.tree_blobs:
                continue
            self.tree_blobs.add(page_id)
            try:
                page = self.load_page(page_id)
            except StoreError as exc:
                self.unreadable[page_id] = str(exc)
                continue
            self.pages_read += 1
            pages, chunks = page_links(page)
            self.data_blobs.update(chunks)
            stack.extend(p for p in pages if p not in self.tree_blobs)

    @property
    def all_blobs(self) -> set[BlobId]:
        return self.tree_blobs | self.data_blobs


def walk_all(snapshots: Iterable[Snapshot], load_page: PageLoader) -> Reachability:
    """Everything the snapshots reference."""
    reach = Reachability(load_page)
    for snapshot in snapshots:
        reach.add(snapshot)
    return reach


class DamageLocator:
    """Which snapshots reach any of a set of bad blobs (memoised per page).

    A page that cannot be read counts as reaching damage. Not thread-safe.
    """

    def __init__(self, bad: set[BlobId], load_page: PageLoader) -> None:
        self._bad = bad
        self._load = load_page
        self._memo: dict[BlobId, bool] = {}

    def snapshot_touches(self, snapshot: Snapshot) -> bool:
        if any(blob in self._bad for blob in snapshot.sync):
            return True
        return self.touches(snapshot.tree)

    def touches(self, root: BlobId) -> bool:
        memo = self._memo
        stack: list[tuple[BlobId, bool]] = [(root, False)]
        expanding: set[BlobId] = set()
        children: dict[BlobId, list[BlobId]] = {}
        while stack:
            page_id, expanded = stack.pop()
            if page_id in memo:
                continue
            if expanded:
                memo[page_id] = any(memo.get(k, False) for k in children.pop(page_id, []))
                expanding.discard(page_id)
                continue
            if page_id in self._bad:
                memo[page_id] = True
                continue
            if page_id in expanding:
                continue  # a cycle cannot be built with content addressing; be safe
            try:
                page = self._load(page_id)
            except StoreError:
                memo[page_id] = True
                continue
            pages, chunks = page_links(page)
            if any(chunk in self._bad for chunk in chunks):
                memo[page_id] = True
                continue
            expanding.add(page_id)
            children[page_id] = pages
            stack.append((page_id, True))
            stack.extend((p, False) for p in pages if p not in memo)
        return memo[root]


def affected_snapshots(
    snapshots: Iterable[Snapshot], bad: set[BlobId], load_page: PageLoader
) -> list[Snapshot]:
    """The snapshots that reference (directly or below) any blob in ``bad``."""
    if not bad:
        return []
    locator = DamageLocator(bad, load_page)
    return [s for s in snapshots if locator.snapshot_touches(s)]
