"""The tree reader's page cache is bounded in bytes of decoded pages, whatever
the pages hold (one entry or thousands, no chunk or many, metadata or none)."""

from __future__ import annotations

import gc
import os
import tracemalloc

import pytest

from store.format.tree import Entry, Page, TreeReader, interior_page, leaf_page
from store.ids import BlobId


def _entry(number: int, attrs: int, chunks: int) -> Entry:
    return Entry(
        name=b"item-%07d.eml" % number,
        type="f",
        mtime_ns=1_700_000_000_000_000_000 + number,
        size=4096 * chunks,
        chunks=tuple((BlobId(os.urandom(32)), 4096) for _ in range(chunks)),
        attrs={f"key{k}": "value " * 4 for k in range(attrs)},
    )


def _leaf(start: int, count: int, attrs: int = 0, chunks: int = 1) -> bytes:
    return leaf_page([_entry(n, attrs, chunks).encode() for n in range(start, start + count)])


def _decoded_bytes(raw: bytes) -> tuple[Page, int]:
    gc.collect()
    tracemalloc.start()
    try:
        page = Page.decode(raw, "tree page")
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return page, held


@pytest.mark.parametrize(("attrs", "chunks"), [(0, 0), (0, 1), (3, 1), (0, 8), (6, 40)], ids=str)
def test_page_weight_is_an_upper_estimate_of_its_memory(attrs: int, chunks: int) -> None:
    page, held = _decoded_bytes(_leaf(0, 500, attrs, chunks))
    assert held <= page.weight <= 1.6 * held, (held, page.weight)


def test_interior_page_weight_is_an_upper_estimate() -> None:
    children = [(b"first-%06d" % n, BlobId(os.urandom(32)), n) for n in range(2000)]
    page, held = _decoded_bytes(interior_page(children))
    assert page.children is not None
    assert len(page.children) == 2000
    assert held <= page.weight <= 1.6 * held, (held, page.weight)


def _pages(count: int, per_page: int) -> dict[BlobId, bytes]:
    return {
        BlobId(os.urandom(32)): _leaf(n * per_page, per_page, attrs=2, chunks=2)
        for n in range(count)
    }


def test_cache_memory_stays_under_its_byte_bound() -> None:
    """Walking 100 pages of 1,000 entries (~90 MB decoded) through a 4 MiB cache
    holds at most the bound plus the page in use."""
    pages = _pages(100, 1000)
    one_page = Page.decode(next(iter(pages.values())), "page").weight
    bound = 4 * 1024 * 1024
    reader = TreeReader(pages.__getitem__, cache_bytes=bound)
    gc.collect()
    tracemalloc.start()
    try:
        for page_id in pages:
            assert sum(1 for _ in reader.entries(page_id)) == 1000
        gc.collect()
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held <= bound + one_page, (held, bound, one_page)


def test_pages_within_the_bound_are_not_loaded_again() -> None:
    pages = _pages(6, 200)
    loads: list[BlobId] = []

    def load(page_id: BlobId) -> bytes:
        loads.append(page_id)
        return pages[page_id]

    total = sum(Page.decode(raw, "page").weight for raw in pages.values())
    reader = TreeReader(load, cache_bytes=total)
    for _ in range(3):
        for page_id in pages:
            reader.page(page_id)
    assert len(loads) == 6
    # Half the room: a cyclic walk evicts every page before it comes round again.
    small = TreeReader(load, cache_bytes=total // 2)
    loads.clear()
    for _ in range(3):
        for page_id in pages:
            small.page(page_id)
    assert len(loads) == 18
