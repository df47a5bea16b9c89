"""``check``: run the passes and record the result.

The structural pass (store/maintenance/check/structure.py), then with
``read_data`` the pack read (store/maintenance/check/read_data.py), then
:func:`locate_damage` turns bad packs into lost blobs and affected snapshots.
Check never changes the repository. :func:`record_check` stores its report
and the local anchor afterwards (the CLI calls it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from store.cache.checkstate import CheckState
from store.maintenance.check.read_data import read_packs
from store.maintenance.check.result import CheckResult
from store.maintenance.check.structure import StructureCheck, locate_damage
from store.repository.repository import Repository


def check_repository(
    repo: Repository,
    *,
    read_data: bool = False,
    subset: str | None = None,
    resume: bool = False,
    state: CheckState | None = None,
    progress: Callable[[int, int, int, int], None] | None = None,
    workers: int = 2,
) -> CheckResult:
    """Check ``repo``; never modifies it. ``state`` holds the anchor and resume data.

    Raises StoreError only for failures that stop the check itself (backend
    unreachable); damage is reported in the result. KeyboardInterrupt during
    ``read_data`` leaves resumable progress in ``state``.
    """
    # The storage itself, not this host's cache of it (a cached copy that
    # differs from the storage is dropped on the way).
    repo.read_storage()
    result = CheckResult(repo.repo_id, time.time_ns(), read_data=read_data, subset=subset)
    anchor = state.load_anchor() if state is not None else None
    structure = StructureCheck(repo, result, anchor)
    structure.run()
    if read_data:
        read_packs(
            structure, subset=subset, resume=resume, state=state, progress=progress, workers=workers
        )
    locate_damage(structure)
    result.finished_ns = time.time_ns()
    return result


def record_check(repo: Repository, result: CheckResult, state: CheckState | None) -> str:
    """Store the check's report in the repository and its anchor in the cache."""
    key = repo.save_report("check", result.to_report())
    if state is not None and result.anchor is not None:
        result.anchor.keys.add(key)
        state.save_anchor(result.anchor)
    return key


__all__ = ["check_repository", "record_check"]
