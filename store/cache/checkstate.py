"""What ``check`` keeps in the local cache (FORMAT.md §10), never in the repository.

- ``check/progress.json``: the packs an interrupted ``check --read-data`` had
  already verified, so ``--resume`` continues it. A run without ``--resume``
  ignores and replaces it: each run reads afresh unless told otherwise.
- ``check/inventory.json``: the objects the last check saw (the anchor).
  An object present then and gone now, with no operation that accounts for
  its removal, is reported as lost: this is how a deleted snapshot, report or
  key slot is found, which no reference inside the repository could reveal.

Both files are written atomically (temporary file, rename); a damaged file is
treated as absent. Not thread-safe; one check at a time per cache.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from store.cache.cachedir import private_dir


def _write_json(path: Path, value: Any) -> None:
    temp = path.with_suffix(".tmp")
    old_umask = os.umask(0o077)
    try:
        temp.write_text(json.dumps(value, sort_keys=True))
    finally:
        os.umask(old_umask)
    os.replace(temp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class ReadProgressJSON(TypedDict):
    """``check/progress.json`` (FORMAT.md §10)."""

    v: int
    repo: str
    started: int
    subset: str
    selected: list[str]
    done: list[str]


class AnchorJSON(TypedDict):
    """``check/inventory.json`` (FORMAT.md §10)."""

    v: int
    time: int
    keys: list[str]
    partial: dict[str, tuple[str, int]]  # written as [owner identity, time ns]


@dataclass
class ReadProgress:
    """An interrupted (or running) ``--read-data`` pass."""

    repo_id: str
    started_ns: int
    subset: str
    selected: list[str]  # pack IDs (hex) chosen for this run
    done: set[str] = field(default_factory=set)  # verified and found intact

    def to_json(self) -> ReadProgressJSON:
        return {
            "v": 1,
            "repo": self.repo_id,
            "started": self.started_ns,
            "subset": self.subset,
            "selected": self.selected,
            "done": sorted(self.done),
        }

    @classmethod
    def from_json(cls, data: Any) -> ReadProgress | None:
        try:
            return cls(
                repo_id=str(data["repo"]),
                started_ns=int(data["started"]),
                subset=str(data["subset"]),
                selected=[str(x) for x in data["selected"]],
                done={str(x) for x in data["done"]},
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class Anchor:
    """The inventory the last check saw: keys, and the partial snapshots among them."""

    time_ns: int
    keys: set[str]
    # snapshot key -> (owner identity, time ns) for checkpoints (they may be
    # superseded later by the same owner's newer snapshots, legitimately)
    partial: dict[str, tuple[str, int]] = field(default_factory=dict)

    def to_json(self) -> AnchorJSON:
        return {
            "v": 1,
            "time": self.time_ns,
            "keys": sorted(self.keys),
            "partial": {k: (o, t) for k, (o, t) in sorted(self.partial.items())},
        }

    @classmethod
    def from_json(cls, data: Any) -> Anchor | None:
        try:
            return cls(
                time_ns=int(data["time"]),
                keys={str(k) for k in data["keys"]},
                partial={str(k): (str(v[0]), int(v[1])) for k, v in data["partial"].items()},
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            return None


class CheckState:
    """The ``check/`` directory of one repository's cache."""

    def __init__(self, cache_dir: Path) -> None:
        self._dir = cache_dir / "check"

    def _path(self, name: str) -> Path:
        private_dir(self._dir)
        return self._dir / name

    def load_progress(self, repo_id: str) -> ReadProgress | None:
        progress = ReadProgress.from_json(_read_json(self._path("progress.json")))
        if progress is None or progress.repo_id != repo_id:
            return None
        return progress

    def save_progress(self, progress: ReadProgress) -> None:
        _write_json(self._path("progress.json"), progress.to_json())

    def clear_progress(self) -> None:
        try:
            self._path("progress.json").unlink()
        except FileNotFoundError:
            pass

    def load_anchor(self) -> Anchor | None:
        return Anchor.from_json(_read_json(self._path("inventory.json")))

    def save_anchor(self, anchor: Anchor) -> None:
        _write_json(self._path("inventory.json"), anchor.to_json())
