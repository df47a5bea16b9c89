"""``check --read-data``: read whole packs and authenticate every byte.

Which packs: all, a random ``N%`` (at least one), or the ``n/t`` part (the
packs whose ID, read as a big-endian number from its first 8 bytes, is
``n - 1`` modulo ``t``; running 1/t .. t/t covers every pack exactly once,
like restic's buckets). Packs are read by ``workers`` threads; the packs
verified intact are saved in the local cache every few seconds so an
interrupted run can be continued with ``--resume`` (store/cache/checkstate.py).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from store.cache.checkstate import CheckState, ReadProgress
from store.errors import StoreError
from store.ids import PackId
from store.maintenance.check.structure import StructureCheck
from store.maintenance.inventory import Inventory, PackFile
from store.maintenance.packverify import PackVerdict, verify_pack

_SAVE_EVERY_SECONDS = 3.0
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")
_PART = re.compile(r"^(\d+)/(\d+)$")


def validate_subset(subset: str) -> None:
    """Raise ValueError unless ``subset`` is ``N%`` (0 < N <= 100) or ``n/t`` (1 <= n <= t)."""
    percent = _PERCENT.match(subset)
    if percent:
        value = float(percent.group(1))
        if not 0 < value <= 100:
            raise ValueError(f"--subset {subset}: the percentage must be above 0 and at most 100")
        return
    part = _PART.match(subset)
    if part:
        n, t = int(part.group(1)), int(part.group(2))
        if not 1 <= n <= t:
            raise ValueError(f"--subset {subset}: n/t needs 1 <= n <= t")
        return
    raise ValueError(f"--subset {subset}: give a percentage (10%) or a part (3/7)")


def select_packs(
    packs: list[PackFile], subset: str | None, rng: random.Random | None = None
) -> list[PackFile]:
    """The packs a ``--subset`` names, in a stable order. Raises ValueError."""
    ordered = sorted(packs, key=lambda p: p.pack_id)
    if subset is None:
        return ordered
    validate_subset(subset)
    percent = _PERCENT.match(subset)
    if percent:
        if not ordered:
            return []
        count = max(1, math.ceil(len(ordered) * float(percent.group(1)) / 100))
        chosen = (rng or random.SystemRandom()).sample(ordered, min(count, len(ordered)))
        return sorted(chosen, key=lambda p: p.pack_id)
    part = _PART.match(subset)
    assert part is not None
    n, t = int(part.group(1)), int(part.group(2))
    return [p for p in ordered if int.from_bytes(p.pack_id[:8], "big") % t == n - 1]


def read_packs(
    structure: StructureCheck,
    *,
    subset: str | None,
    resume: bool,
    state: CheckState | None,
    progress: Callable[[int, int, int, int], None] | None,
    workers: int,
) -> None:
    """Verify the chosen packs; damage goes into ``structure.result``."""
    repo = structure.repo
    result = structure.result
    inv = structure.inv
    saved = state.load_progress(repo.repo_id) if (state is not None and resume) else None
    if resume and saved is None:
        raise StoreError("there is no interrupted check to resume: run it again without --resume")
    if saved is not None:
        chosen = [inv.packs[PackId(bytes.fromhex(h))] for h in saved.selected if _has(inv, h)]
        result.resumed = True
        result.subset = saved.subset or None
        run = saved
    else:
        if state is not None:
            state.clear_progress()  # a fresh run: an older interrupted one is abandoned
        chosen = select_packs(list(inv.packs.values()), subset)
        run = ReadProgress(
            repo.repo_id, time.time_ns(), subset or "", [p.pack_id.hex() for p in chosen]
        )
    todo = [p for p in chosen if p.pack_id.hex() not in run.done]
    total_bytes = sum(p.size for p in chosen)
    done_bytes = sum(p.size for p in chosen if p.pack_id.hex() in run.done)
    done_count = len(chosen) - len(todo)
    # Progress is saved only once the run has lasted a few seconds (and when it
    # is interrupted): a quick check leaves no trace in the cache.
    last_save = time.monotonic()
    saved_any = saved is not None
    blobs = 0

    def verify(pack: PackFile) -> PackVerdict:
        return verify_pack(
            repo.backend.get, pack, repo.keyring, structure.records.get(pack.pack_id)
        )

    if progress is not None:
        progress(done_count, len(chosen), done_bytes, total_bytes)
    pool = ThreadPoolExecutor(workers, "coffer-check") if workers > 1 and len(todo) > 1 else None
    verdicts = pool.map(verify, todo) if pool is not None else map(verify, todo)
    try:
        for verdict in verdicts:
            _record(structure, verdict)
            blobs += len(verdict.good)
            done_count += 1
            done_bytes += inv.packs[verdict.pack_id].size
            if verdict.ok:
                run.done.add(verdict.pack_id.hex())
            if progress is not None:
                progress(done_count, len(chosen), done_bytes, total_bytes)
            if state is not None and time.monotonic() - last_save > _SAVE_EVERY_SECONDS:
                state.save_progress(run)
                last_save = time.monotonic()
                saved_any = True
    except BaseException:
        if state is not None:
            state.save_progress(run)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if state is not None and saved_any:
        state.clear_progress()
    result.counts["packs_read"] = len(todo)
    result.counts["packs_selected"] = len(chosen)
    result.counts["bytes_read"] = sum(p.size for p in todo)
    result.counts["blobs_verified"] = blobs


def _has(inv: Inventory, pack_hex: str) -> bool:
    try:
        return PackId(bytes.fromhex(pack_hex)) in inv.packs
    except ValueError:
        return False


def _record(structure: StructureCheck, verdict: PackVerdict) -> None:
    if verdict.ok:
        return
    result = structure.result
    pack = structure.inv.packs[verdict.pack_id]
    name = verdict.pack_id.hex()
    indexed = verdict.pack_id in structure.records
    if verdict.missing and not indexed:
        return  # an orphan or marked pack removed meanwhile (a concurrent prune)
    reasons = result.bad_packs.setdefault(name, [])
    for problem in verdict.problems:
        reasons.append(problem)
        result.add("pack-damaged", f"{pack.key}: {problem}", key=pack.key)
    if verdict.bad:
        reasons.append(f"{len(verdict.bad)} damaged blob(s)")
        first = next(iter(verdict.bad.values()))
        result.add(
            "pack-damaged",
            f"{pack.key}: {len(verdict.bad)} blob(s) fail authentication (first: {first})",
            key=pack.key,
        )
        result.lost_blobs.update(verdict.bad)
