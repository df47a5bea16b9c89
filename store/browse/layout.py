"""The virtual layout of a repository's snapshots, and its naming rules.

:class:`Layout` is built from one list of snapshots and never changes; the VFS
builds a new one when it refreshes. It decides every name the mount, ``coffer
ls`` and restore show above the snapshots' own trees::

    snapshots/<run time>/<kind>/<owner name>/...   every run (completed snapshots)
    snapshots/latest -> <run time>                 the newest run
    owners/<kind>/<owner name>/<snapshot time>/... each owner's history
    owners/<kind>/<owner name>/latest -> <time>    the owner's newest snapshot
    ids/<snapshot id>/...                          every snapshot, checkpoints too

Naming rules (docs/mount.md explains them to administrators):

- Times are :func:`format_time` (UTC, sortable, no colons) with microseconds;
  when two runs (or two snapshots of one owner) share that, nanoseconds; when
  they still share it, ``~`` and the first 8 hex digits of the ID.
- Owner names come from Microsoft 365 and are untrusted. Each becomes one path
  component by the rule restore uses for owner directories (``Owner.path``:
  ``%``, ``/``, NUL and control characters percent-encoded, ``.``/``..``
  escaped, long names cut with a hash), and here invisible characters too
  (bidi overrides, zero-width and line separators), so nothing in a listing
  pretends to be what it is not. Both encodings are reversible, so only
  owners that share a name collide (a mailbox deleted and recreated with the
  same address, or names that differ only in case, which copies to
  case-insensitive disks would merge): the owner whose first snapshot is
  oldest keeps the name, the others get ``~<8 hex of BLAKE2b(kind/key)>``
  (longer if that still clashes).
- Checkpoints (partial snapshots) appear only under ``ids/``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from store.browse.safetext import is_hidden
from store.format.paths import safe_component
from store.format.snapshot import OWNER_KINDS, Snapshot, format_time

LATEST = "latest"


def owner_component(name: str) -> str:
    """The directory name of an owner called ``name``. Pure and reversible.

    :func:`store.format.paths.safe_component` (the rule of ``Owner.path``), with
    invisible characters (:func:`store.browse.safetext.is_hidden`, the rule the
    command line's output uses too) also percent-encoded (UTF-8). Never empty, ``.``,
    ``..``, and never holds ``/`` or NUL.
    """
    base = safe_component(name)
    if not any(is_hidden(char) for char in base):
        return base
    escaped = "".join(
        "".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))
        if is_hidden(char)
        else char
        for char in base
    )
    return _fit(escaped, identity_tag(name, 8) if _size(escaped) > NAME_MAX else "")


NAME_MAX = 255


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _fit(name: str, tag: str) -> str:
    """``name`` + ``tag``, ``name`` cut so that the whole fits in NAME_MAX bytes."""
    room = NAME_MAX - _size(tag)
    raw = name.encode("utf-8", "surrogatepass")
    if len(raw) > room:
        name = raw[:room].decode("utf-8", "ignore")
    return name + tag


def identity_tag(identity: str, digits: int = 8) -> str:
    """``~`` and the first ``digits`` hex digits (up to 128) of BLAKE2b(identity)."""
    return "~" + hashlib.blake2b(identity.encode("utf-8", "surrogatepass")).hexdigest()[:digits]


@dataclass(frozen=True)
class OwnerHistory:
    """One owner's completed snapshots under ``owners/<kind>/<name>/``."""

    identity: str
    kind: str
    name: str
    snapshots: dict[str, Snapshot]  # time name -> snapshot
    latest: str  # the time name of the newest
    mtime_ns: int


@dataclass(frozen=True)
class Run:
    """One run under ``snapshots/<name>/``: its completed snapshots by kind and owner name."""

    run_id: str
    name: str
    time_ns: int
    members: dict[str, dict[str, Snapshot]]  # kind -> owner name -> snapshot
    mtime_ns: int


@dataclass(frozen=True)
class Layout:
    """The names of one list of snapshots (immutable; see the module docstring)."""

    runs: dict[str, Run] = field(default_factory=dict)  # by run dir name
    run_names: dict[str, str] = field(default_factory=dict)  # run ID -> dir name
    owners: dict[str, dict[str, OwnerHistory]] = field(default_factory=dict)  # kind -> name ->
    owner_names: dict[str, str] = field(default_factory=dict)  # identity -> name
    ids: dict[str, Snapshot] = field(default_factory=dict)  # hex ID -> snapshot
    latest_run: str | None = None
    newest_ns: int = 0

    @classmethod
    def build(cls, snapshots: Iterable[Snapshot]) -> Layout:
        """The layout of ``snapshots`` (their IDs must be set). Deterministic."""
        every = [s for s in snapshots if s.snapshot_id is not None]
        complete = [s for s in every if not s.partial]
        ids = {s.id_hex: s for s in sorted(every, key=lambda s: s.id_hex)}
        owner_names = _owner_names(complete)
        owners = _owner_histories(complete, owner_names)
        runs, run_names = _runs(complete, owner_names)
        latest_run = max(runs.values(), key=lambda r: (r.time_ns, r.name)).name if runs else None
        newest = max((s.time_ns for s in every), default=0)
        return cls(runs, run_names, owners, owner_names, ids, latest_run, newest)


def _owner_names(complete: list[Snapshot]) -> dict[str, str]:
    """identity -> unique directory name within its kind (see the module docstring)."""
    first_seen: dict[str, int] = {}
    newest: dict[str, Snapshot] = {}
    for snap in complete:
        identity = snap.owner.identity
        first_seen[identity] = min(first_seen.get(identity, snap.time_ns), snap.time_ns)
        current = newest.get(identity)
        if current is None or (snap.time_ns, snap.id_hex) > (current.time_ns, current.id_hex):
            newest[identity] = snap
    # The newest snapshot's name: a renamed mailbox shows its current name.
    base = {i: owner_component(s.owner.name or s.owner.key) for i, s in newest.items()}
    kind = {i: s.owner.kind for i, s in newest.items()}
    names = dict(base)
    for digits in (8, 16, 32, 128):
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for identity, name in names.items():
            groups[(kind[identity], name.casefold())].append(identity)
        clashes = [group for group in groups.values() if len(group) > 1]
        if not clashes:
            break
        for group in clashes:
            # The oldest untagged owner keeps its name; everyone else is tagged.
            group.sort(key=lambda i: (names[i] != base[i], first_seen[i], i))
            keeper = group[0] if names[group[0]] == base[group[0]] else None
            for identity in group:
                if identity != keeper:
                    names[identity] = _fit(base[identity], identity_tag(identity, digits))
    return names


def _unique_times(
    items: list[Snapshot], tag: Callable[[Snapshot], str], time_of: Callable[[Snapshot], int]
) -> dict[str, Snapshot]:
    """Names of ``items`` by time: microseconds, else nanoseconds, else ``~tag``."""
    groups: dict[str, list[Snapshot]] = defaultdict(list)
    for item in items:
        groups[format_time(time_of(item))].append(item)
    out: dict[str, Snapshot] = {}
    for name, group in groups.items():
        if len(group) == 1:
            out[name] = group[0]
            continue
        fine: dict[str, list[Snapshot]] = defaultdict(list)
        for item in group:
            fine[format_time(time_of(item), precision=9)].append(item)
        for fine_name, same in fine.items():
            if len(same) == 1:
                out[fine_name] = same[0]
            else:
                for item in same:
                    out[fine_name + "~" + tag(item)] = item
    return dict(sorted(out.items()))


def _owner_histories(
    complete: list[Snapshot], owner_names: dict[str, str]
) -> dict[str, dict[str, OwnerHistory]]:
    mine: dict[str, list[Snapshot]] = defaultdict(list)
    for snap in complete:
        mine[snap.owner.identity].append(snap)
    owners: dict[str, dict[str, OwnerHistory]] = {kind: {} for kind in OWNER_KINDS}
    for identity, snaps in mine.items():
        kind = snaps[0].owner.kind
        times = _unique_times(snaps, lambda s: s.short_id, lambda s: s.time_ns)
        latest = max(times, key=lambda n: (times[n].time_ns, n))
        name = owner_names[identity]
        newest = max(s.time_ns for s in snaps)
        owners[kind][name] = OwnerHistory(identity, kind, name, times, latest, newest)
    return {kind: dict(sorted(histories.items())) for kind, histories in owners.items()}


def _runs(
    complete: list[Snapshot], owner_names: dict[str, str]
) -> tuple[dict[str, Run], dict[str, str]]:
    by_run: dict[str, list[Snapshot]] = defaultdict(list)
    for snap in complete:
        by_run[snap.run].append(snap)
    # One representative per run, timed by its earliest snapshot (the run's start).
    starts = {run_id: min(s.time_ns for s in snaps) for run_id, snaps in by_run.items()}
    heads = [min(snaps, key=lambda s: s.time_ns) for snaps in by_run.values()]
    named = _unique_times(heads, lambda s: s.run[:8], lambda s: starts[s.run])
    runs: dict[str, Run] = {}
    run_names: dict[str, str] = {}
    for name, head in named.items():
        members: dict[str, dict[str, Snapshot]] = defaultdict(dict)
        snaps = sorted(by_run[head.run], key=lambda s: (s.time_ns, s.id_hex), reverse=True)
        for snap in snaps:
            owner_name = owner_names[snap.owner.identity]
            # The same owner twice in one run: the newest keeps the plain name.
            if owner_name in members[snap.owner.kind]:
                owner_name = f"{owner_name}~{snap.short_id}"
            members[snap.owner.kind][owner_name] = snap
        sorted_members = {kind: dict(sorted(members[kind].items())) for kind in sorted(members)}
        mtime = max(s.time_ns for s in snaps)
        runs[name] = Run(head.run, name, starts[head.run], sorted_members, mtime)
        run_names[head.run] = name
    return runs, run_names
