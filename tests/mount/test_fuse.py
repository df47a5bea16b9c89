"""Real mounts through the kernel, checked with plain tools (find, stat, cat,
cp -a, rsync, diff -r, getfattr) and plain ``os`` calls."""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import BackupRun, LocalBackend, Repository
from tests.mount.support.corpus import (
    ALICE,
    ALICE_DIR,
    ARCHIVE_SIZE,
    PASSWORD,
    RUN2_NS,
    SRV_DIR,
    Corpus,
    Item,
    alice_items,
    srv_items,
    store_owner,
)
from tests.mount.support.mounting import Mount, coffer, environment, is_mounted
from tests.mount.test_operations import damaged_repository

pytestmark = pytest.mark.fuse

LATEST_RUN = "2025-11-25T16-00-00.123456Z"


def run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        check=check,
        env=environment(),
    )


def coffer_in(
    corpus: Corpus, cache: Path, *args: str | Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``coffer`` on the corpus repository, with a cache of its own."""
    return run(*coffer(corpus.repo_path, cache, *(str(a) for a in args)), check=check)


@pytest.fixture(scope="module")
def mounted(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("mounted")
    with Mount(corpus.repo_path, base / "mnt", base / "cache") as mount:
        yield mount.mountpoint
        assert mount.stop() == 0


@pytest.fixture
def latest(mounted: Path) -> Path:
    return mounted / "snapshots" / "latest"


def relative_paths(root: Path) -> list[str]:
    out = []
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            out.append(os.path.relpath(os.path.join(directory, name), root))
    return sorted(out)


# -- browsing and copying ----------------------------------------------


def test_layout(mounted: Path) -> None:
    assert sorted(os.listdir(mounted)) == ["ids", "owners", "snapshots"]
    assert sorted(os.listdir(mounted / "snapshots")) == [
        "2025-11-24T16-00-00.123456Z",
        LATEST_RUN,
        "latest",
    ]
    assert os.readlink(mounted / "snapshots" / "latest") == LATEST_RUN
    owners = ["folders", "groups", "sites", "teams", "users"]
    assert sorted(os.listdir(mounted / "owners")) == owners
    history = mounted / "owners" / ALICE_DIR
    assert sorted(os.listdir(history)) == ["2025-11-24T16-00-00.123456Z", LATEST_RUN, "latest"]
    assert (history / "2025-11-24T16-00-00.123456Z" / "Mail/Inbox/old.eml").exists()
    assert len(os.listdir(mounted / "ids")) == 3


def test_find_lists_every_item(latest: Path, corpus: Corpus) -> None:
    found = run("find", f"{latest}/", "-mindepth", "1", "-printf", "%P\\n").stdout.splitlines()
    expected = run("find", f"{corpus.expected}/", "-mindepth", "1", "-printf", "%P\\n")
    assert sorted(found) == sorted(expected.stdout.splitlines())
    assert len(found) > ARCHIVE_SIZE


def owned_paths(root: Path) -> list[str]:
    """Paths below ``<kind>/<owner>/`` (above them is the layout, not the owners' data)."""
    return [p for p in relative_paths(root) if p.count("/") >= 2]


def test_stat_sizes_times_modes(latest: Path, corpus: Corpus) -> None:
    for relative in owned_paths(corpus.expected):
        want = os.lstat(corpus.expected / relative)
        got = os.lstat(latest / relative)
        assert got.st_mode == want.st_mode, relative
        assert got.st_mtime_ns == want.st_mtime_ns, relative
        if not os.path.isdir(corpus.expected / relative):
            assert got.st_size == want.st_size, relative
    # And with stat(1): a mail's received time is its modification time.
    mail = "Mail/Inbox/0005 Meeting 5.eml"
    shown = run("stat", "-c", "%s %Y %A", latest / ALICE_DIR / mail).stdout.split()
    item = alice_items()[mail]
    assert shown == [str(len(item.content)), str(item.mtime_ns // 10**9), "-rw-r--r--"]


def cat(path: Path) -> bytes:
    return subprocess.run(["cat", str(path)], capture_output=True, check=True).stdout


def test_cat(latest: Path) -> None:
    for path, item in list(alice_items().items())[:50]:
        assert cat(latest / ALICE_DIR / path) == item.content
    report = latest / ALICE_DIR / "OneDrive/Documents/report.docx"
    assert cat(report) == alice_items()["OneDrive/Documents/report.docx"].content


def minor_faults(pid: int) -> int:
    """Page faults the process has taken so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[7])  # minflt, the 10th field of stat(5)


def test_reading_reuses_buffers_instead_of_faulting_in_fresh_pages(
    corpus: Corpus, tmp_path: Path
) -> None:
    """Every chunk passes through a few chunk-sized buffers: the mount reuses
    them (mount/allocator.py) rather than taking every page of every buffer
    afresh from the kernel, which cost up to 1,000 page faults per MiB read
    (4 per page) and more CPU in the kernel than in Python. Measured here:
    about one fault per page read without, under a third with on a quiet
    machine; a CI run beside a test-full measured 0.52, so the bound is three
    quarters, still well below one per page."""
    expected = alice_items()["OneDrive/Documents/report.docx"].content
    with Mount(corpus.repo_path, tmp_path / "mnt", tmp_path / "cache") as mount:
        report = (
            mount.mountpoint / "snapshots" / "latest" / ALICE_DIR / "OneDrive/Documents/report.docx"
        )
        assert cat(report) == expected  # the heap grows to its working size once
        before = minor_faults(mount.process.pid)
        rounds = 6
        for _ in range(rounds):
            with open(report, "rb") as handle:
                # Drop the kernel's copy so that every read reaches the mount again.
                os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                assert handle.read() == expected
        faults = minor_faults(mount.process.pid) - before
        assert mount.stop() == 0
    pages_read = rounds * len(expected) // 4096
    assert faults < pages_read * 3 // 4, (faults, pages_read)


def test_cp_a_and_diff(latest: Path, corpus: Corpus, tmp_path: Path) -> None:
    run("cp", "-a", f"{latest}/.", tmp_path / "copy")
    run("diff", "-r", "--no-dereference", tmp_path / "copy", corpus.expected)
    for relative in owned_paths(corpus.expected):
        want, got = os.lstat(corpus.expected / relative), os.lstat(tmp_path / "copy" / relative)
        assert (got.st_mode, got.st_mtime_ns) == (want.st_mode, want.st_mtime_ns), relative


def test_rsync_checksum(latest: Path, corpus: Corpus, tmp_path: Path) -> None:
    run("rsync", "-a", "--checksum", f"{latest}/", f"{tmp_path}/copy/")
    run("diff", "-r", "--no-dereference", tmp_path / "copy", corpus.expected)
    # rsync itself finds nothing to change below the owners' directories.
    changes = run("rsync", "-a", "--checksum", "-n", "-i", f"{latest}/", f"{corpus.expected}/")
    below = [line for line in changes.stdout.splitlines() if line.count("/") > 2]
    assert below == []


def test_diff_against_restore(latest: Path, corpus: Corpus, tmp_path: Path) -> None:
    target = tmp_path / "restored"
    run(
        *coffer(
            corpus.repo_path, tmp_path / "cache", "-q", "restore", "latest", "--to-dir", str(target)
        )
    )
    run("diff", "-r", "--no-dereference", f"{latest}/", target)


def test_getfattr(latest: Path) -> None:
    mail = latest / ALICE_DIR / "Mail/Sent Items/Re- Résumé ✓.eml"
    dumped = run("getfattr", "-d", "-m", "^user\\.coffer\\.", "--absolute-names", mail).stdout
    assert 'user.coffer.from="bob@contoso.com"' in dumped
    assert 'user.coffer.item_id="AAMkAGI2TG93AAA=99"' in dumped
    assert 'user.coffer.version="CQAAABYAAAD99"' in dumped
    subject = subprocess.run(
        ["getfattr", "-n", "user.coffer.subject", "--only-values", str(mail)],
        capture_output=True,
        check=True,
    )
    assert subject.stdout == "Re: Résumé ✓".encode()
    root = run("getfattr", "-n", "user.coffer.owner.key", "--only-values", latest / ALICE_DIR)
    assert root.stdout == ALICE.key
    missing = run("getfattr", "-n", "user.coffer.nothing", mail, check=False)
    assert missing.returncode != 0
    assert "No such attribute" in missing.stderr


def test_names_that_are_not_utf8(latest: Path) -> None:
    names = os.listdir(os.fsencode(latest / SRV_DIR))
    assert b"latin1-\xe9t\xe9.txt" in names
    assert (latest / SRV_DIR / os.fsdecode(b"latin1-\xe9t\xe9.txt")).read_bytes() == b"not utf-8\n"
    assert os.readlink(latest / SRV_DIR / "tool-link") == "bin/tool"
    assert (latest / SRV_DIR / "tool-link").read_bytes() == srv_items()["bin/tool"].content


def test_big_folder_listing(latest: Path) -> None:
    listed = run("ls", "-f", latest / ALICE_DIR / "Mail/Archive").stdout.split()
    assert sorted(listed) == [f"{n:05d}.eml" for n in range(ARCHIVE_SIZE)]


def test_read_only(latest: Path) -> None:
    mail = latest / ALICE_DIR / "Mail/Inbox/0001 Meeting 1.eml"
    attempts = [
        lambda: open(mail, "r+b"),  # noqa: SIM115
        lambda: open(mail.with_name("new.eml"), "wb"),  # noqa: SIM115
        mail.unlink,
        lambda: mail.with_name("dir").mkdir(),
        lambda: mail.chmod(0o600),
        lambda: os.utime(mail, (0, 0)),
        lambda: os.rename(mail, mail.with_name("x.eml")),
        lambda: os.setxattr(mail, "user.coffer.subject", b"x"),
        lambda: os.symlink("x", latest / "link"),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as caught:
            attempt()
        assert caught.value.errno == errno.EROFS
    assert run("touch", mail, check=False).returncode != 0


def test_concurrent_readers(latest: Path) -> None:
    items = alice_items()
    chosen = random.Random(1).sample(sorted(items), 200) + ["OneDrive/Documents/report.docx"] * 4

    def digest(path: str) -> tuple[str, str]:
        with open(latest / ALICE_DIR / path, "rb") as handle:
            return path, hashlib.sha256(handle.read()).hexdigest()

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(digest, chosen))
    for path, got in results:
        assert got == hashlib.sha256(items[path].content).hexdigest(), path


# -- damage, refresh, errors ---------------------------------------------


def test_damaged_pack_is_eio_on_that_file_only(tmp_path: Path) -> None:
    repo, pack, bad = damaged_repository(tmp_path / "damaged")
    with Mount(repo, tmp_path / "mnt", tmp_path / "cache") as mount:
        owner = mount.mountpoint / "snapshots" / "latest" / ALICE_DIR
        result = run("cat", owner / bad, check=False)
        assert result.returncode != 0
        assert "Input/output error" in result.stderr
        assert os.stat(owner / bad).st_size == 100_000  # its metadata is fine
        assert (owner / "good.txt").read_bytes() == b"good\n" * 1000
        assert run("cat", owner / bad, check=False).returncode != 0  # again, still no crash
        assert mount.stop() == 0
    log = mount.stderr
    assert f"{bad}: damaged repository data" in log
    assert pack.name in log


def test_new_snapshots_appear_without_remounting(corpus: Corpus, tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    shutil.copytree(corpus.repo_path, repo_path)
    with Mount(repo_path, tmp_path / "mnt", tmp_path / "cache", "--refresh", "1") as mount:
        snapshots = mount.mountpoint / "snapshots"
        assert os.readlink(snapshots / "latest") == LATEST_RUN
        writer = Repository.open(
            LocalBackend(str(repo_path)), PASSWORD, cache_root=tmp_path / "writer-cache"
        )
        with BackupRun(writer, time_ns=RUN2_NS + 3600 * 10**9) as backup:
            store_owner(backup, ALICE, {"new.eml": Item(b"new mail")})
        writer.close()
        deadline = time.monotonic() + 15
        while os.readlink(snapshots / "latest") == LATEST_RUN:
            assert time.monotonic() < deadline, "the new run did not appear"
            time.sleep(0.2)
        assert os.readlink(snapshots / "latest") == "2025-11-25T17-00-00.123456Z"
        assert (snapshots / "latest" / ALICE_DIR / "new.eml").read_bytes() == b"new mail"
        assert len(os.listdir(mount.mountpoint / "owners" / ALICE_DIR)) == 4
        assert mount.stop() == 0


def test_mountpoint_errors(corpus: Corpus, mounted: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "file").write_text("x")
    cases = {
        tmp_path / "missing": "does not exist",
        tmp_path / "file": "is not a directory",
        tmp_path / "full": "is not empty",
        mounted: "already mounted",
    }
    for mountpoint, message in cases.items():
        result = run(
            *coffer(corpus.repo_path, tmp_path / "cache", "mount", str(mountpoint)), check=False
        )
        assert result.returncode == 17, result.stderr
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback


SMALL_TABLE_MOUNT = """
import os, sys
from pathlib import Path
from mount import mount_repository
from store import LocalBackend, Repository
repo = Repository.open(
    LocalBackend(sys.argv[1]), os.environ["COFFER_PASSWORD"].encode(), cache_root=Path(sys.argv[3])
)
mount_repository(repo, sys.argv[2], max_inodes=int(sys.argv[4]))
"""


def test_the_kernel_forgets_when_the_inode_table_is_full(corpus: Corpus, tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    limit = 300
    arguments = [str(corpus.repo_path), str(mountpoint), str(tmp_path / "cache"), str(limit)]
    process = subprocess.Popen(
        [sys.executable, "-c", SMALL_TABLE_MOUNT, *arguments], env=environment()
    )
    try:
        deadline = time.monotonic() + 30
        while not is_mounted(mountpoint):
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        archive = mountpoint / "snapshots" / "latest" / ALICE_DIR / "Mail/Archive"
        assert len(os.listdir(archive)) == ARCHIVE_SIZE
        # statfs reports the table's size: over the limit at first (every listed
        # entry is counted), back under it once the kernel has forgotten.
        deadline = time.monotonic() + 15
        while os.statvfs(mountpoint).f_files > limit:
            assert time.monotonic() < deadline, os.statvfs(mountpoint).f_files
            time.sleep(0.1)
        # What was forgotten is simply looked up again.
        assert (archive / "00007.eml").read_bytes() == alice_items()[
            "Mail/Archive/00007.eml"
        ].content
        run("fusermount3", "-u", mountpoint)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        if is_mounted(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)


# -- unmounting ------------------------------------------------------------


def test_unmount_from_outside_exits_0(corpus: Corpus, tmp_path: Path) -> None:
    with Mount(corpus.repo_path, tmp_path / "mnt", tmp_path / "cache") as mount:
        assert os.listdir(mount.mountpoint)
        run("fusermount3", "-u", mount.mountpoint)
        assert mount.wait() == 0
        assert not is_mounted(mount.mountpoint)


def test_sigterm_exits_0(corpus: Corpus, tmp_path: Path) -> None:
    with Mount(corpus.repo_path, tmp_path / "mnt", tmp_path / "cache") as mount:
        assert os.listdir(mount.mountpoint)
        mount.signal(signal.SIGTERM)
        assert mount.wait() == 0
        assert not is_mounted(mount.mountpoint)
        assert "unmounted" in mount.stderr


def test_unmount_while_a_reader_is_open(corpus: Corpus, tmp_path: Path) -> None:
    expected = alice_items()["OneDrive/Documents/report.docx"].content
    with Mount(corpus.repo_path, tmp_path / "mnt", tmp_path / "cache") as mount:
        path = (
            mount.mountpoint / "snapshots" / "latest" / ALICE_DIR / "OneDrive/Documents/report.docx"
        )
        with open(path, "rb") as reader:
            head = reader.read(1000)
            # Busy: a plain unmount from outside is refused and nothing breaks.
            busy = run("fusermount3", "-u", mount.mountpoint, check=False)
            assert busy.returncode != 0
            assert is_mounted(mount.mountpoint)
            # Ctrl-C: detached at once (nothing new gets in), the reader finishes.
            mount.signal(signal.SIGINT)
            deadline = time.monotonic() + 10
            while is_mounted(mount.mountpoint):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert mount.process.poll() is None
            assert head + reader.read() == expected
        assert mount.wait() == 0
        assert "waiting for 1 open file" in mount.stderr


def test_second_signal_ends_the_mount_now(corpus: Corpus, tmp_path: Path) -> None:
    with Mount(corpus.repo_path, tmp_path / "mnt", tmp_path / "cache") as mount:
        path = mount.mountpoint / "snapshots" / "latest" / ALICE_DIR / "Contacts/Bob Smith.vcf"
        reader = os.open(path, os.O_RDONLY)
        try:
            mount.signal(signal.SIGINT)
            time.sleep(0.5)
            mount.signal(signal.SIGINT)
            assert mount.wait() == 0
            # The reader that held it open is cut off, not left hanging.
            with pytest.raises(OSError) as caught:
                os.read(reader, 100)
            assert caught.value.errno == errno.ENOTCONN
        finally:
            try:
                os.close(reader)
            except OSError:
                pass  # ENOTCONN again: the connection is gone
    assert "failed to unmount" not in mount.stderr


def test_background(corpus: Corpus, tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    try:
        started = run(
            *coffer(corpus.repo_path, tmp_path / "cache", "mount", str(mountpoint), "--background")
        )
        assert "mounted at" in started.stderr
        assert is_mounted(mountpoint)
        assert os.readlink(mountpoint / "snapshots" / "latest") == LATEST_RUN
        run("fusermount3", "-u", mountpoint)
        deadline = time.monotonic() + 10
        while run("pgrep", "-f", f"mount {mountpoint} --background", check=False).returncode == 0:
            assert time.monotonic() < deadline, "the daemon did not exit"
            time.sleep(0.1)
    finally:
        if is_mounted(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)


def test_background_reports_errors(corpus: Corpus, tmp_path: Path) -> None:
    result = run(
        *coffer(
            corpus.repo_path, tmp_path / "cache", "mount", str(tmp_path / "nope"), "--background"
        ),
        check=False,
    )
    assert result.returncode == 17
    assert "does not exist" in result.stderr
