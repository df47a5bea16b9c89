"""Chunk sizes by measurement: dedup after edits against the number of chunks.

    python -m tools.bench chunking [--mib 256]

For each candidate FastCDC size (min / mean / max), cut a set of large files,
then cut them again after inserting a few bytes at random places (what an
edited document or a grown log looks like), and report: the number of chunks
per GiB (index entries, tree size, requests) and the bytes that the edit
forces to be stored again (dedup loss). The chosen default balances the two.
"""

from __future__ import annotations

import argparse
import random
import time

from store import ChunkerParams
from store.format.chunker import Chunker


def _files(mib: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    words = b"report budget meeting forecast schedule customer review the of and to ".split()
    files = []
    for index in range(max(1, mib // 32)):
        if index % 2:
            files.append(rng.randbytes(32 << 20))
        else:
            files.append(b" ".join(rng.choice(words) for _ in range(6 << 20))[: 32 << 20])
    return files


def _edit(data: bytes, rng: random.Random, edits: int) -> bytes:
    out = bytearray(data)
    for _ in range(edits):
        position = rng.randrange(len(out))
        out[position:position] = rng.randbytes(rng.randrange(1, 200))
    return bytes(out)


CANDIDATES = [
    ChunkerParams(min=64 << 10, normal_size=192 << 10, max=1 << 20),
    ChunkerParams(min=128 << 10, normal_size=384 << 10, max=2 << 20),
    ChunkerParams(min=256 << 10, normal_size=768 << 10, max=4 << 20),
    ChunkerParams(min=512 << 10, normal_size=1536 << 10, max=8 << 20),
    ChunkerParams(min=1 << 20, normal_size=3 << 20, max=16 << 20),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--edits", type=int, default=8, help="insertions per file")
    args = parser.parse_args(argv)
    files = _files(args.mib, 1)
    rng = random.Random(2)
    edited = [_edit(f, rng, args.edits) for f in files]
    total = sum(len(f) for f in files)
    print(f"{len(files)} files, {total >> 20} MiB, {args.edits} insertions each\n")
    print("| min / mean / max | chunks per GiB | re-stored after edits | cut speed |")
    print("|---|---|---|---|")
    for params in CANDIDATES:
        chunker = Chunker(params, seed=0x5EED | 1)
        started = time.perf_counter()
        seen = {hash(c) for f in files for c in chunker.cut_bytes(f)}
        seconds = time.perf_counter() - started
        chunks = len(seen)
        restored = sum(len(c) for f in edited for c in chunker.cut_bytes(f) if hash(c) not in seen)
        mean = params.mean_size
        print(
            f"| {params.min >> 10} KiB / {mean >> 10} KiB / {params.max >> 20} MiB "
            f"| {chunks * (1 << 30) // total} | {restored / total:.1%} "
            f"| {total / seconds / 1e6:.0f} MB/s |"
        )
