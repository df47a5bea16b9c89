"""A folder of 100,000 items through a real mount: listed page by page, in seconds."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import BackupRun
from tests.mount.support.corpus import ALICE, ALICE_DIR, RUN2_NS, new_repository
from tests.mount.support.mounting import Mount

pytestmark = [pytest.mark.fuse, pytest.mark.slow]

COUNT = 100_000


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("big")
    repo, repo_path, _ = new_repository(base)
    with BackupRun(repo, time_ns=RUN2_NS) as run, run.owner(ALICE) as session:
        session.full_scope()
        for number in range(COUNT):
            session.add_item(f"Archive/{number:06d}.eml", b"%d\n" % number, mtime_ns=number)
        session.commit()
    repo.close()
    with Mount(repo_path, base / "mnt", base / "cache") as mount:
        yield mount.mountpoint / "snapshots" / "latest" / ALICE_DIR / "Archive"
        assert mount.stop() == 0


def test_list_100k_items(big_folder: Path) -> None:
    started = time.monotonic()
    names = os.listdir(big_folder)
    first_listing = time.monotonic() - started
    assert len(names) == COUNT
    assert sorted(names) == [f"{n:06d}.eml" for n in range(COUNT)]
    print(f"first listing of {COUNT} items: {first_listing:.2f} s")
    assert first_listing < 20, f"first listing took {first_listing:.1f} s"
    started = time.monotonic()
    found = subprocess.run(
        ["find", str(big_folder), "-printf", "%s\\n"], capture_output=True, check=True, text=True
    ).stdout.split()
    assert len(found) == COUNT + 1
    walked = time.monotonic() - started
    print(f"find with sizes over {COUNT} items: {walked:.2f} s")
    assert walked < 20
    assert (big_folder / "099999.eml").read_bytes() == b"99999\n"
