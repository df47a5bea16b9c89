"""The restore's writer process decodes chunks itself while it keeps up
(sources/localdir/restore.py, ``_Offload``; writer.py): the same files come
out, a chunk that is not what its ID says fails its file and nothing else,
and without the key no undecoded chunk is accepted."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest

from sources.errors import RestoreWriterFailed
from sources.folder import backup_folder
from sources.localdir import restore_to_dir
from sources.localdir import unnamed as unnamed_files
from sources.localdir.offload import Answer, WriterProcess
from sources.localdir.restore import TEMP_PREFIX, _Offload
from sources.localdir.writewire import Meta
from store import BackupRun
from store.format.crypto import encode_payload, keyed_hash
from tests.cli.support.helpers import tree_state
from tests.store.support.helpers import make_repo

KEY = bytes(range(32))
META = Meta(0o640, False, None, None, 1_600_000_000_000_000_000)


def _text(rng: random.Random, size: int) -> bytes:
    words = [b"mailbox", b"meeting", b"invoice", b"Regards,", b"\n", b"attached", b"quarter"]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def _mails(root: Path, count: int) -> Path:
    rng = random.Random(11)
    home = root / "home"
    for number in range(count):
        folder = home / f"box{number % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{number:05d}.eml").write_bytes(_text(rng, rng.randrange(1, 40_000)))
    return home


class _Spy:
    """Counts the parts sent to the writer, undecoded (sealed) or not; calls through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sealed = 0
        self.plain = 0
        original = WriterProcess.add

        def add(process: WriterProcess, *args: object, **kwargs: object) -> int:
            if kwargs.get("sealed") is not None:
                self.sealed += 1
            else:
                self.plain += 1
            return original(process, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(WriterProcess, "add", add)


def _restored(tmp_path: Path, home: Path, out: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with BackupRun(repo) as run:
        snapshot = backup_folder(run, home).snapshot
    result = restore_to_dir(repo.reader(snapshot), out)
    assert not result.failures
    assert result.created == sum(1 for p in home.rglob("*") if p.is_file())


def test_the_writer_decodes_chunks_while_it_keeps_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _mails(tmp_path, _Offload.START_AFTER + 1500)
    spy = _Spy(monkeypatch)
    out = tmp_path / "out"
    _restored(tmp_path, home, out)
    assert spy.sealed > 0, "no file went to the writer undecoded"
    assert tree_state(out) == tree_state(home)
    assert not list(out.rglob(TEMP_PREFIX.decode() + "*"))


def test_a_writer_further_behind_than_the_balance_gets_plaintext(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Always "too far behind": the restore decodes every chunk itself.
    monkeypatch.setattr(_Offload, "BALANCE_BYTES", 0)
    home = _mails(tmp_path, _Offload.START_AFTER + 600)
    spy = _Spy(monkeypatch)
    out = tmp_path / "out"
    _restored(tmp_path, home, out)
    assert spy.sealed == 0
    assert spy.plain > 0
    assert tree_state(out) == tree_state(home)


def _sealed_file(
    process: WriterProcess, dir_id: int, name: bytes, chunks: list[tuple[bytes, bytes, int]]
) -> int:
    """Send one file of (chunk ID, payload, recorded length) chunks, undecoded."""
    ranges: list[tuple[int, int]] = []
    records: list[tuple[int, bytes]] = []
    offset = 0
    for chunk_id, payload, raw in chunks:
        ranges.append((offset, len(payload)))
        records.append((raw, chunk_id))
        offset += raw
    views = [memoryview(payload) for _id, payload, _raw in chunks]
    temp = TEMP_PREFIX + name
    return process.add(
        name.decode(), dir_id, name, temp, META, offset, ranges, views, sealed=records
    )


def _chunk(data: bytes, *, key: bytes = KEY) -> tuple[bytes, bytes, int]:
    return keyed_hash(key, data), encode_payload(data, 3), len(data)


def _answers(tmp_path: Path, files: dict[bytes, list[tuple[bytes, bytes, int]]]) -> list[Answer]:
    target = tmp_path / "target"
    target.mkdir()
    dir_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    process = WriterProcess(KEY)
    try:
        dir_id = process.share(dir_fd)
        for name, chunks in files.items():
            _sealed_file(process, dir_id, name, chunks)
        return list(process.drain())
    finally:
        process.close()
        os.close(dir_fd)


def test_undecoded_chunks_come_out_as_their_plaintext(tmp_path: Path) -> None:
    text = b"Dear all, the minutes are attached. " * 3000
    raw = random.Random(3).randbytes(5000)  # stored raw: does not compress
    answers = _answers(tmp_path, {b"one.eml": [_chunk(text), _chunk(raw), _chunk(text[:77])]})
    assert [(a.rel, a.errno) for a in answers] == [("one.eml", 0)]
    written = tmp_path / "target" / "one.eml"
    assert written.read_bytes() == text + raw + text[:77]
    assert oct(written.stat().st_mode & 0o7777) == oct(0o640)
    assert written.stat().st_mtime_ns == META.mtime_ns


def test_zero_runs_of_undecoded_chunks_are_holes(tmp_path: Path) -> None:
    text = b"Regards,\n" * 200
    answers = _answers(tmp_path, {b"sparse": [_chunk(text + bytes(512 * 1024)), _chunk(text)]})
    assert answers[0].errno == 0
    written = tmp_path / "target" / "sparse"
    assert written.read_bytes() == text + bytes(512 * 1024) + text
    assert written.stat().st_blocks * 512 < 256 * 1024  # the zeros were not written


def test_a_file_ending_in_zeros_keeps_its_size(tmp_path: Path) -> None:
    # The zeros are not written: the file must still end where it ends.
    text = b"Regards,\n" * 200
    answers = _answers(
        tmp_path,
        {
            b"tail": [_chunk(text), _chunk(text + bytes(300 * 1024))],
            b"zeros": [_chunk(bytes(200 * 1024))],
        },
    )
    assert [a.errno for a in answers] == [0, 0]
    assert (tmp_path / "target" / "tail").read_bytes() == text + text + bytes(300 * 1024)
    assert (tmp_path / "target" / "zeros").read_bytes() == bytes(200 * 1024)


def test_a_chunk_that_is_not_its_id_fails_its_file_alone(tmp_path: Path) -> None:
    good = b"kept as it was\n" * 500
    honest_id, _payload, raw = _chunk(b"the original text\n" * 500)
    # A payload that authenticates (the ring holds it decrypted) but whose
    # content is another chunk's: the writer must not write it under this ID.
    swapped = (honest_id, encode_payload(b"planted other text" * 500, 3), raw)
    answers = _answers(tmp_path, {b"bad.eml": [_chunk(good), swapped], b"good.eml": [_chunk(good)]})
    outcome = {a.rel: (a.errno, a.message) for a in answers}
    assert outcome["bad.eml"][0] == errno.EBADMSG
    assert "does not match its ID" in outcome["bad.eml"][1]
    assert outcome["good.eml"] == (0, "")
    assert sorted(os.listdir(tmp_path / "target")) == ["good.eml"]  # nothing of bad.eml


def test_a_chunk_longer_than_recorded_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    text = b"x" * 100_000
    chunk_id, payload, _raw = _chunk(text)
    answers = _answers(tmp_path, {b"long.eml": [(chunk_id, payload, 1000)]})
    assert answers[0].errno == errno.EBADMSG
    assert "claims 100000 bytes, recorded 1000" in answers[0].message
    assert os.listdir(tmp_path / "target") == []


def test_a_chunk_under_another_key_fails(tmp_path: Path) -> None:
    # IDs are keyed: the same text under another repository's key is not this chunk.
    answers = _answers(tmp_path, {b"other.eml": [_chunk(b"hello\n" * 100, key=bytes(32))]})
    assert answers[0].errno == errno.EBADMSG


def test_undecoded_chunks_need_the_key(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    dir_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    keyless = WriterProcess()
    try:
        dir_id = keyless.share(dir_fd)
        with pytest.raises(ValueError, match="need the key"):
            _sealed_file(keyless, dir_id, b"a.eml", [_chunk(b"text")])
        # A writer that was never given the key ends at the first such part
        # (as the restore's guard above would have prevented).
        keyless._keyed = True
        _sealed_file(keyless, dir_id, b"a.eml", [_chunk(b"text")])
        with pytest.raises(RestoreWriterFailed, match="exited with status 2"):
            list(keyless.drain())
    finally:
        keyless.close()
        os.close(dir_fd)
    assert os.listdir(target) == []


def test_without_unnamed_files_the_restore_uses_temporary_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a filesystem without O_TMPFILE: the same files, nothing left.
    monkeypatch.setattr(unnamed_files, "_supported", [False])
    home = _mails(tmp_path, _Offload.START_AFTER + 300)
    out = tmp_path / "out"
    _restored(tmp_path, home, out)
    assert tree_state(out) == tree_state(home)
    assert not list(out.rglob(TEMP_PREFIX.decode() + "*"))


def test_a_name_is_never_replaced_by_linking(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "elsewhere").write_bytes(b"not to be touched")
    (folder / "mail.eml").symlink_to(tmp_path / "elsewhere")  # planted
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = unnamed_files.open_unnamed(dir_fd)
        assert fd is not None
        try:
            os.write(fd, b"restored")
            with pytest.raises(FileExistsError):
                unnamed_files.link_into_place(fd, dir_fd, b"mail.eml")
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)
    assert (folder / "mail.eml").is_symlink()
    assert (tmp_path / "elsewhere").read_bytes() == b"not to be touched"
    assert os.listdir(folder) == ["mail.eml"]
