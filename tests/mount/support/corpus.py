"""A repository to mount, and the same files written out as they should appear.

Two runs: the first with older contents, the second (``latest``) with
:data:`ALICE_ITEMS` and :data:`SRV_ITEMS`. :func:`build_corpus` writes the
second run's trees to ``expected/<kind>/<owner name>/`` with the same modes and
times, so ``diff -r`` and ``rsync --checksum`` can compare a mounted snapshot
with them (until ``coffer restore --to-dir`` exists to write them).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from store import BackupRun, KdfParams, LocalBackend, Owner, Repository, Snapshot

PASSWORD = b"mount test password"
RUN1_NS = 1_764_000_000_123_456_000  # 2025-11-24T16-00-00.123456Z
RUN2_NS = RUN1_NS + 86_400 * 10**9
ALICE = Owner("users", "8d3c0e53-alice", "alice@contoso.com")
SRV = Owner("folders", "fileserver:/srv/data", "fileserver:/srv/data")
ALICE_DIR = ALICE.path
SRV_DIR = SRV.path
ARCHIVE_SIZE = 1500  # a dozen tree pages, many kernel readdir buffers
DIR_MTIME_NS = 1_700_000_000_000_000_000
LATIN1_NAME = os.fsdecode(b"latin1-\xe9t\xe9.txt")  # not UTF-8 on the original disk


@dataclass
class Item:
    content: bytes = b""
    mode: int = 0o644
    mtime_ns: int = 0
    attrs: dict[str, str] = field(default_factory=dict)
    item_id: str | None = None
    version: str | None = None
    link: bytes | None = None  # a symlink's target instead of content


def _mail(number: int, subject: str) -> Item:
    received = 1_763_000_000_000_000_000 + number * 61 * 10**9
    body = (
        f"From: bob@contoso.com\r\nTo: alice@contoso.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{number}@contoso.com>\r\n\r\nHello {number}\r\n"
    ).encode()
    return Item(
        body,
        mtime_ns=received,
        attrs={"subject": subject, "from": "bob@contoso.com", "isRead": "true"},
        item_id=f"AAMkAGI2TG93AAA={number}",
        version=f"CQAAABYAAAD{number}",
    )


def alice_items() -> dict[str, Item]:
    rng = random.Random(5)
    items: dict[str, Item] = {}
    for number in range(40):
        items[f"Mail/Inbox/{number:04d} Meeting {number}.eml"] = _mail(number, f"Meeting {number}")
    items["Mail/Sent Items/Re- Résumé ✓.eml"] = _mail(99, "Re: Résumé ✓")
    for number in range(ARCHIVE_SIZE):
        items[f"Mail/Archive/{number:05d}.eml"] = _mail(1000 + number, f"Archived {number}")
    items["Contacts/Bob Smith.vcf"] = Item(
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Bob Smith\r\nEND:VCARD\r\n",
        mtime_ns=1_762_000_000_000_000_000,
        item_id="AAMkContact=1",
    )
    items["Calendar/Standup.ics"] = Item(
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Standup\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        mtime_ns=1_762_000_100_000_000_000,
    )
    items["OneDrive/Documents/report.docx"] = Item(
        rng.randbytes(9 * 1024 * 1024 + 12345),  # several chunks (at most 2 MiB each)
        mtime_ns=1_761_000_000_000_000_000,
        attrs={"quickXorHash": "AAAA", "eTag": '"{1},2"'},
        item_id="01ABCDEF",
        version='"{1},2"',
    )
    items["OneDrive/empty.txt"] = Item(b"", mtime_ns=1_761_000_000_000_000_000)
    return items


def srv_items() -> dict[str, Item]:
    return {
        "bin/tool": Item(b"#!/bin/sh\necho hi\n", mode=0o755, mtime_ns=1_600_000_000_000_000_000),
        "secret.txt": Item(b"s3cret\n", mode=0o600, mtime_ns=1_600_000_001_000_000_000),
        "tool-link": Item(link=b"bin/tool", mtime_ns=1_600_000_002_000_000_000),
        os.fsdecode(b"latin1-\xe9t\xe9.txt"): Item(
            b"not utf-8\n", mtime_ns=1_600_000_003_000_000_000
        ),
        "deep/a/b/c/d.txt": Item(b"deep\n", mtime_ns=1_600_000_004_000_000_000),
    }


@dataclass
class Corpus:
    root: Path
    repo_path: Path
    cache: Path
    expected: Path
    snapshots: list[Snapshot]

    def open(self, cache: Path | None = None) -> Repository:
        return Repository.open(
            LocalBackend(str(self.repo_path)), PASSWORD, cache_root=cache or self.cache
        )


def directories(paths: list[str]) -> list[str]:
    out = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            out.add("/".join(parts[:depth]))
    return sorted(out)


def store_owner(run: BackupRun, owner: Owner, items: dict[str, Item]) -> Snapshot:
    with run.owner(owner) as session:
        session.full_scope()
        for directory in directories(list(items)):
            session.add_directory(directory, mtime_ns=DIR_MTIME_NS)
        for path, item in items.items():
            if item.link is not None:
                session.add_symlink(path, item.link, mtime_ns=item.mtime_ns)
            else:
                session.add_item(
                    path,
                    item.content,
                    mode=item.mode,
                    mtime_ns=item.mtime_ns,
                    attrs=item.attrs,
                    item_id=item.item_id,
                    version=item.version,
                )
        return session.commit()


def write_expected(base: Path, items: dict[str, Item]) -> None:
    for path, item in items.items():
        target = base / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if item.link is not None:
            os.symlink(item.link, target)
            os.utime(target, ns=(item.mtime_ns, item.mtime_ns), follow_symlinks=False)
            continue
        target.write_bytes(item.content)
        target.chmod(item.mode)
        os.utime(target, ns=(item.mtime_ns, item.mtime_ns))
    for directory in directories(list(items)):
        os.utime(base / directory, ns=(DIR_MTIME_NS, DIR_MTIME_NS))


def new_repository(root: Path) -> tuple[Repository, Path, Path]:
    repo_path, cache = root / "repo", root / "cache"
    repo = Repository.init(
        LocalBackend(str(repo_path)), PASSWORD, kdf=KdfParams(1, 1, 1024), cache_root=cache
    )
    return repo, repo_path, cache


def build_corpus(root: Path) -> Corpus:
    repo, repo_path, cache = new_repository(root)
    snapshots = []
    old_alice = {"Mail/Inbox/old.eml": _mail(1, "Old"), "OneDrive/empty.txt": Item(b"was not")}
    with BackupRun(repo, time_ns=RUN1_NS) as run:
        snapshots.append(store_owner(run, ALICE, old_alice))
    with BackupRun(repo, time_ns=RUN2_NS) as run:
        snapshots.append(store_owner(run, ALICE, alice_items()))
        snapshots.append(store_owner(run, SRV, srv_items()))
    repo.close()
    expected = root / "expected"
    write_expected(expected / ALICE_DIR, alice_items())
    write_expected(expected / SRV_DIR, srv_items())
    return Corpus(root, repo_path, cache, expected, snapshots)
