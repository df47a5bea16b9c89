"""Content stored as a download writes it cuts and deduplicates as content read from a spool.

A :class:`ContentSink` (store/backup/sink.py) replaces the spool a Microsoft
365 download was written to and read back from: it pushes the bytes through a
:class:`StreamCutter` as they arrive. Chunk boundaries and blob IDs decide
deduplication against every existing repository, so the pushed path must cut
exactly as the stream path it replaced, whatever the sizes of the writes, and
a retried download (truncated and written again) must leave only the second
content in the item.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

from hypothesis import given, settings

from store import BackupRun, ChunkerParams, Owner
from store.format.chunker import Chunker, StreamCutter
from tests.store.support.helpers import (
    CUT_CASES,
    SMALL_CHUNKS,
    make_repo,
    periodic_content,
    read_all,
)

SEED = 0x5EED_C0FFEE
OWNER = Owner("users", "ann", "ann@example.com")


def _pushed(chunker: Chunker, data: bytes, rng: random.Random, most: int) -> list[bytes]:
    cutter = StreamCutter(chunker)
    out: list[bytes] = []
    try:
        pos = 0
        while pos < len(data):
            piece = memoryview(data)[pos : pos + rng.randint(1, most)]
            pos += len(piece)
            while piece:
                taken = cutter.take(piece)
                piece = piece[taken:]
                if cutter.full:
                    out.extend(bytes(chunk) for chunk in cutter.cut())
        out.extend(bytes(chunk) for chunk in cutter.cut(eof=True))
    finally:
        cutter.close()
    return out


@settings(max_examples=80, deadline=None)
@given(*CUT_CASES)
def test_pushed_cuts_equal_stream_cuts(size: int, seed: int, period: int, most: int) -> None:
    rng = random.Random(seed)
    data = periodic_content(rng, size, period)
    chunker = Chunker(SMALL_CHUNKS, SEED)
    assert _pushed(chunker, data, rng, most) == list(chunker.cut_stream(io.BytesIO(data)))


def test_default_sizes_pushed_in_download_blocks_cut_as_the_stream() -> None:
    rng = random.Random(5)
    data = periodic_content(rng, 9 * 1024 * 1024 + 12345, 97)
    chunker = Chunker(ChunkerParams(), SEED)
    got = _pushed(chunker, data, rng, 65_536)
    assert got == list(chunker.cut_stream(io.BytesIO(data)))
    assert len(got) > 8


def _write(sink: object, data: bytes, rng: random.Random, most: int) -> None:
    pos = 0
    while pos < len(data):
        step = rng.randint(1, most)
        sink.write(data[pos : pos + step])  # type: ignore[attr-defined]
        pos += step


def test_sink_stores_the_chunks_of_the_spool_path_and_dedups_against_it(tmp_path: Path) -> None:
    # Sizes around the in-memory limit (1 MiB) and the window (4 MiB), in a real
    # repository with the default chunker: the first run stores them as a spool
    # (a stream, what a download went through before the sink), the second
    # through sinks, after a retried first attempt each. Same chunks, and the
    # second run stores no data.
    repo = make_repo(tmp_path / "repo")
    rng = random.Random(3)
    sizes = [0, 1, 5000, 1 << 20, (1 << 20) + 1, 3 << 20, (4 << 20) + 7, 11_000_000]
    contents = {f"f{size}.bin": periodic_content(rng, size, 251) for size in sizes}
    with BackupRun(repo) as run, run.owner(OWNER) as session:
        for name, data in contents.items():
            session.add_item(name, io.BytesIO(data))
        spooled = session.commit()
    before = repo.reader(spooled)
    expected = {path: entry.chunks for path, entry in before.walk() if entry.is_file}
    with BackupRun(repo) as run, run.owner(OWNER) as session:
        for name, data in contents.items():
            with run.content_sink() as sink:
                _write(sink, rng.randbytes(min(len(data), 2_500_000)) + b"x", rng, 70_000)
                sink.seek(0)
                sink.truncate()  # what a retried download does first
                _write(sink, data, rng, 70_000)
                session.add_item(name, sink)
        written_again = run.writer.stats.bytes_new_raw
        sunk = session.commit()
    after = repo.reader(sunk)
    assert {path: entry.chunks for path, entry in after.walk() if entry.is_file} == expected
    assert read_all(repo, sunk) == contents
    # Only the abandoned first attempts were new (random bytes): every chunk of
    # the real contents was found stored by the spool path.
    attempts = sum(min(len(data), 2_500_000) + 1 for data in contents.values() if data)
    assert written_again <= attempts + 4096


def test_a_sink_takes_nothing_once_stored(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with BackupRun(repo) as run, run.owner(OWNER) as session, run.content_sink() as sink:
        sink.write(b"abc")
        session.add_item("a.txt", sink)
        for late in (lambda: sink.write(b"d"), sink.truncate, sink.finish):
            try:
                late()
            except ValueError:
                continue
            raise AssertionError("a stored sink took more")


def _files_open_in(directory: Path) -> int:
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        count += target.startswith(str(directory))
    return count


def test_large_downloads_beyond_the_windows_spill_and_cut_the_same(tmp_path: Path) -> None:
    # One store slot: two windows. Three large downloads at once: the third
    # spills to a temporary file (memory stays bounded by the windows), and all
    # three store the chunks the spool path stores; the windows come back.
    repo = make_repo(tmp_path / "repo")
    spill = tmp_path / "spill"
    spill.mkdir()
    rng = random.Random(4)
    contents = [periodic_content(rng, 3_500_000 + i, 199) for i in range(3)]
    with BackupRun(repo, store_slots=1) as run, run.owner(OWNER) as session:
        for i, data in enumerate(contents):
            session.add_item(f"spooled{i}", io.BytesIO(data))
        sinks = [run.content_sink(str(spill)) for _ in contents]
        for sink, data in zip(sinks, contents, strict=True):
            sink.write(data[:1_500_000])  # past the in-memory limit: a window or a file
        assert _files_open_in(spill) == 1
        for sink, data in zip(sinks, contents, strict=True):
            _write(sink, data[1_500_000:], rng, 70_000)
        for i, sink in enumerate(sinks):
            session.add_item(f"sunk{i}", sink)
            sink.close()
        assert _files_open_in(spill) == 0
        assert run.sink_windows.acquire(blocking=False)
        assert run.sink_windows.acquire(blocking=False)
        snapshot = session.commit()
    reader = repo.reader(snapshot)
    entries = {path: entry for path, entry in reader.walk() if entry.is_file}
    for i in range(len(contents)):
        assert entries[f"sunk{i}"].chunks == entries[f"spooled{i}"].chunks
    assert read_all(repo, snapshot)["sunk2"] == contents[2]
