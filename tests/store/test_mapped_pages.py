"""Letting go of an LMDB file's mapped pages when the cache's path is not UTF-8.

``COFFER_CACHE_DIR`` from a non-UTF-8 locale names a directory whose bytes are
not UTF-8; /proc/self/maps lists the mapping under those bytes. Reading the
maps file as text raised UnicodeDecodeError (``coffer repair index`` ended in
"unexpected error"); it is read as bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from store.cache.blobindex import BlobIndex


def test_the_mapping_of_a_cache_under_a_non_utf8_name_is_found(tmp_path: Path) -> None:
    root = Path(os.fsdecode(os.fsencode(tmp_path) + b"/cache-\xff\xfe"))
    root.mkdir()
    index = BlobIndex(root / "blobs")
    try:
        index.pages.release()  # raised UnicodeDecodeError
        assert index.pages._find(), "the data file's mapping was not found"
    finally:
        index.close()
