"""`coffer restore --to-dir` of a home-like folder: sparse VM images come back
with holes, everything byte-identical with its metadata (issue 14)."""

from __future__ import annotations

import os
import random
from pathlib import Path

from tests.cli.support.helpers import init, make_tree, new_env, tree_state

MIB = 1024 * 1024


def _sparse_image(path: Path, size: int, rng: random.Random) -> None:
    """A file of ``size`` apparent bytes: 1 MiB of data every 16 MiB, at odd
    offsets, holes between and after (as tools/bench/homecorpus.py makes)."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        for start in range(12345, size - 2 * MIB, 16 * MIB):
            handle.seek(start)
            handle.write(rng.randbytes(MIB))


def test_sparse_images_restore_as_holes_and_the_tree_is_exact(tmp_path: Path) -> None:
    rng = random.Random(14)
    env = new_env(tmp_path / "env")
    init(env)
    source = tmp_path / "home"
    make_tree(source, files=60, big=2)
    (source / "vm").mkdir()
    _sparse_image(source / "vm" / "disk-0.img", 96 * MIB, rng)
    _sparse_image(source / "vm" / "disk-1.img", 64 * MIB + 4097, rng)
    with open(source / "vm" / "blank.img", "wb") as handle:
        handle.truncate(8 * MIB)  # all hole
    (source / "vm" / "disk-0.img").chmod(0o640)
    os.utime(
        source / "vm" / "disk-0.img", ns=(1_600_000_000_000_000_001, 1_600_000_000_000_000_001)
    )
    (source / "links").mkdir()
    os.link(source / "nested" / "mode-600", source / "links" / "hard-600")
    os.link(source / "vm" / "disk-1.img", source / "links" / "disk-1-again.img")
    (source / "links" / "to-image").symlink_to("../vm/disk-0.img")
    env.run("backup", "--path", str(source))

    target = tmp_path / "restored"
    summary = env.run("restore", "latest", "--to-dir", str(target), "--json").json()
    assert summary["failed"] == 0
    assert tree_state(target) == tree_state(source)  # contents, modes, mtimes, links
    for name, data_mib in (
        ("vm/disk-0.img", 6),
        ("vm/disk-1.img", 4),
        ("links/disk-1-again.img", 4),
    ):
        restored = (target / name).stat()
        assert restored.st_size == (source / name).stat().st_size
        # The data plus the partial blocks around it; never the holes.
        assert restored.st_blocks * 512 <= (data_mib + 1) * MIB, name
    assert (target / "vm" / "blank.img").stat().st_blocks == 0
    assert (target / "big-0.bin").stat().st_blocks * 512 >= 3 * MIB  # data stays data
    # Hard links come back as separate files with the same content (docs/engine.md).
    assert (target / "links" / "hard-600").read_bytes() == b"private\n"
    assert not list(target.rglob(".coffer-restore-*"))
