"""Repositories written by earlier releases stay readable by this one.

Every ``tests/data/golden-v*`` directory holds a repository written once by the
release that introduced that format version (``tests/data/make_golden.py``),
with its password and what listing and restoring it gave then
(``expected.json``). This release must list, restore, mount and check each of
them and get exactly that. The committed bytes are never touched: every test
works on its own copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from store.format.config import FORMAT_VERSION

DATA = Path(__file__).resolve().parent.parent / "data"
GOLDEN = sorted(DATA.glob("golden-v*"), key=lambda p: int(p.name.removeprefix("golden-v")))
COFFER = str(Path(sys.executable).with_name("coffer"))
SNAPSHOT_FIELDS = ("id", "owner", "owner_kind", "owner_key", "run", "partial", "time_ns", "parent")


def test_the_current_format_has_a_golden_repository() -> None:
    # A format change without a new golden repository would leave the new
    # version's reading untested against bytes of its own release.
    assert [p.name for p in GOLDEN][-1] == f"golden-v{FORMAT_VERSION}"


class Golden:
    """A private copy of one golden directory, and ``coffer`` runs against it."""

    def __init__(self, source: Path, root: Path) -> None:
        self.source = source
        self.root = root
        shutil.copytree(source, root / "golden")
        self.repo = root / "golden" / "repo"
        self.password_file = root / "golden" / "password"
        self.expected: dict[str, Any] = json.loads((source / "expected.json").read_text())

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
        env.update(
            COFFER_REPO=str(self.repo),
            COFFER_PASSWORD_FILE=str(self.password_file),
            XDG_CACHE_HOME=str(self.root / "cache"),
            XDG_CONFIG_HOME=str(self.root / "config"),
        )
        env.update(extra)
        return env

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [COFFER, *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *args: str, **extra: str) -> str:
        result = self.run(*args, **extra)
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout

    @property
    def snapshot_ids(self) -> list[str]:
        return [s["id"] for s in self.expected["snapshots"]]


@pytest.fixture(params=GOLDEN, ids=[p.name for p in GOLDEN])
def golden(request: pytest.FixtureRequest, tmp_path: Path) -> Golden:
    return Golden(request.param, tmp_path)


def hashes_below(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_golden_repository_holds_every_object_kind(golden: Golden) -> None:
    # What the other tests read must include each kind FORMAT.md §1 names
    # (sessions and locks exist only while a command runs).
    for prefix in ("config", "keys", "data", "tree", "index", "snapshots", "reports", "marks"):
        assert (golden.repo / prefix).exists(), prefix
    kinds = {s["owner_kind"] for s in golden.expected["snapshots"]}
    assert kinds == {"folders", "users", "sites", "teams"}
    assert any(s["partial"] for s in golden.expected["snapshots"])
    slots = json.loads(golden.ok("key", "list", "--json"))
    assert sorted(s["kind"] for s in slots) == ["escrow", "password"]


def test_snapshots_are_listed_as_when_written(golden: Golden) -> None:
    listed = json.loads(golden.ok("snapshots", "--partial", "--json"))
    assert [{k: s[k] for k in SNAPSHOT_FIELDS} for s in listed] == golden.expected["snapshots"]


def test_every_snapshot_lists_as_when_written(golden: Golden) -> None:
    for snapshot_id in golden.snapshot_ids:
        listing = json.loads(golden.ok("ls", snapshot_id, "-R", "--json"))
        assert listing == golden.expected["ls"][snapshot_id], snapshot_id


def test_every_snapshot_restores_to_the_committed_hashes(golden: Golden, tmp_path: Path) -> None:
    for snapshot_id in golden.snapshot_ids:
        target = tmp_path / "restored" / snapshot_id
        golden.ok("restore", snapshot_id, "--to-dir", str(target))
        assert hashes_below(target) == golden.expected["files"][snapshot_id], snapshot_id


def test_check_read_data_finds_the_golden_repository_intact(golden: Golden) -> None:
    # The forgotten snapshot and the marked pack are accounted for by their
    # journals (forget and prune reports), so a full check reports nothing.
    result = golden.run("check", "--read-data", "--json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_escrow_slot_recovers_the_golden_repository(golden: Golden, tmp_path: Path) -> None:
    new_password = tmp_path / "new-password"
    new_password.write_text("recovered golden password\n")
    golden.password_file.write_text("not the password\n")
    assert golden.run("snapshots").returncode == 11
    golden.ok(
        "key",
        "recover",
        "--private-key",
        str(golden.root / "golden" / "escrow-private.pem"),
        "--new-password-file",
        str(new_password),
        "--kdf-memory",
        "8",
        "--kdf-iterations",
        "1",
    )
    listed = json.loads(
        golden.ok("snapshots", "--partial", "--json", COFFER_PASSWORD_FILE=str(new_password))
    )
    assert [s["id"] for s in listed] == golden.snapshot_ids


def _is_mounted(path: Path) -> bool:
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


@pytest.mark.fuse
def test_golden_repository_mounts_and_reads_back_the_committed_hashes(
    golden: Golden, tmp_path: Path
) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    golden.ok("mount", "--background", str(mountpoint))
    try:
        deadline = time.monotonic() + 30
        while not _is_mounted(mountpoint):
            assert time.monotonic() < deadline, "coffer mount --background returned unmounted"
            time.sleep(0.05)
        for snapshot_id in golden.snapshot_ids:
            expected = golden.expected["files"][snapshot_id]
            shown = hashes_below(mountpoint / "ids" / snapshot_id)
            assert shown == expected, snapshot_id
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)


def _claim_version(config: Path, version: int) -> None:
    """Rewrite the header line of ``config`` to name another format version."""
    line, _, body = config.read_bytes().partition(b"\n")
    header = json.loads(line)
    header["version"] = version
    config.write_bytes(json.dumps(header, sort_keys=True).encode() + b"\n" + body)


@pytest.mark.parametrize(
    "command", [["snapshots"], ["ls", "latest"], ["check"], ["backup", "--path", "EMPTY"]]
)
def test_a_repository_of_a_newer_format_exits_14_with_one_line(
    golden: Golden, command: list[str]
) -> None:
    config = golden.repo / "config"
    _claim_version(config, FORMAT_VERSION + 1)
    before = {p: p.read_bytes() for p in golden.repo.rglob("*") if p.is_file()}
    empty = golden.root / "empty"
    empty.mkdir()
    result = golden.run(*(str(empty) if arg == "EMPTY" else arg for arg in command))
    assert result.returncode == 14, result.stderr
    assert result.stderr.count("\n") == 1
    assert f"format version {FORMAT_VERSION + 1}" in result.stderr
    assert "Traceback" not in result.stderr
    # Refusing writes nothing: a newer Coffer's repository is left as it was.
    assert {p: p.read_bytes() for p in golden.repo.rglob("*") if p.is_file()} == before
