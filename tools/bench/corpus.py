"""The benchmark corpus: mail-like small files sharing attachments, plus large files.

Deterministic from a seed, generated once into a directory and reused:

- ``owner-NN/<folder>/NNNNN.eml``: small mail-like files of 2-80 KiB (log-uniform),
  headers and text bodies; a third carry a base64 attachment drawn from a pool
  shared by every owner (the same attachment received by many mailboxes);
- ``large/``: large files, half random (incompressible), half text-like.
"""

from __future__ import annotations

import base64
import math
import random
from pathlib import Path

WORDS = [
    "quarterly",
    "report",
    "meeting",
    "budget",
    "forecast",
    "customer",
    "project",
    "schedule",
    "review",
    "contract",
    "invoice",
    "approval",
    "team",
    "update",
    "release",
    "deadline",
    "proposal",
    "revenue",
    "the",
    "of",
    "and",
    "to",
    "in",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "about",
    "please",
    "thanks",
    "regards",
]


def _text(rng: random.Random, size: int) -> bytes:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
        if rng.random() < 0.08:
            words.append("\r\n")
    return " ".join(words).encode()[:size]


def _attachment_pool(rng: random.Random, count: int) -> list[bytes]:
    pool = []
    for _ in range(count):
        size = rng.randrange(8 * 1024, 40 * 1024)
        raw = rng.randbytes(size // 2) + _text(rng, size - size // 2)
        encoded = base64.encodebytes(raw)  # 76-column lines, as mail clients write them
        pool.append(encoded.replace(b"\n", b"\r\n"))
    return pool


def _mail(rng: random.Random, owner: int, number: int, size: int, pool: list[bytes]) -> bytes:
    header = (
        f"From: Sender {rng.randrange(500)} <s{rng.randrange(500)}@example.com>\r\n"
        f"To: Owner {owner} <owner{owner}@contoso.example>\r\n"
        f"Subject: {' '.join(rng.choice(WORDS) for _ in range(6))}\r\n"
        f"Message-ID: <{owner}.{number}.{rng.getrandbits(64):x}@example.com>\r\n"
        f"Date: Tue, {1 + number % 28} Oct 2026 10:{number % 60:02d}:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    parts = [header]
    attachment = b""
    if rng.random() < 0.33:
        attachment = pool[rng.randrange(len(pool))]
    body_size = max(size - len(header) - len(attachment) - 200, 200)
    parts.append(_text(rng, body_size))
    if attachment:
        parts.append(
            b"\r\n--b1\r\nContent-Type: application/pdf\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + attachment
        )
    parts.append(b"\r\n--b1--\r\n")
    return b"".join(parts)


def generate(
    root: Path,
    *,
    owners: int = 10,
    mails_per_owner: int = 10_000,
    large_files: int = 20,
    large_size: int = 25 * 1024 * 1024,
    seed: int = 2026,
) -> Path:
    """Write the corpus under ``root`` (skipped if ``root/.complete`` exists)."""
    marker = root / ".complete"
    if marker.exists():
        return root
    rng = random.Random(seed)
    pool = _attachment_pool(rng, 300)
    low, high = math.log(2 * 1024), math.log(80 * 1024)
    for owner in range(owners):
        for number in range(mails_per_owner):
            folder = root / f"owner-{owner:02d}" / f"folder-{number % 25:02d}"
            if number < 25:
                folder.mkdir(parents=True, exist_ok=True)
            size = int(math.exp(rng.uniform(low, high)))
            (folder / f"{number:05d}.eml").write_bytes(_mail(rng, owner, number, size, pool))
    large = root / "large"
    large.mkdir(parents=True, exist_ok=True)
    for index in range(large_files):
        with open(large / f"large-{index:02d}.bin", "wb") as handle:
            written = 0
            while written < large_size:
                block = rng.randbytes(1 << 20) if index % 2 == 0 else _text(rng, 1 << 20)
                handle.write(block)
                written += len(block)
    marker.write_text("ok\n")
    return root


def change_one_percent(root: Path, *, seed: int = 7) -> int:
    """Modify 1% of the files in place (appends to mails, rewrites 1 MiB of a large file)."""
    rng = random.Random(seed)
    files = sorted(p for p in root.rglob("*.eml"))
    chosen = rng.sample(files, max(1, len(files) // 100))
    for path in chosen:
        with open(path, "ab") as handle:
            handle.write(b"\r\nX-Changed: " + str(rng.random()).encode() + b"\r\n")
    large = sorted((root / "large").glob("*.bin"))
    if large:
        with open(large[0], "r+b") as handle:
            handle.seek(5 * 1024 * 1024)
            handle.write(rng.randbytes(1 << 20))
    return len(chosen) + (1 if large else 0)
