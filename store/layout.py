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
- Owner names come from Microsoft 365 and are untrusted; :func:`safe_component`
  makes one safe path component of them, readable where possible. ``~`` never
  survives it, so a ``~`` suffix is always ours: when two owners of one kind get
  the same name (ignoring case: copies often land on case-insensitive disks),
  the owner whose first snapshot is oldest keeps it and the others get
  ``~<8 hex of BLAKE2b(kind/key)>``.
- Checkpoints (partial snapshots) appear only under ``ids/``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from store.snapshot import OWNER_KINDS, Snapshot, format_time

LATEST = "latest"

# Longest owner name we show, in UTF-8 bytes: NAME_MAX (255) minus room for a
# disambiguating suffix.
MAX_NAME_BYTES = 200

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SEPARATORS = re.compile(r"[/\\:]+")
# Control, format (bidi overrides, zero-width), surrogate and line/paragraph
# separator characters: invisible or misleading in a listing.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _escape(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def safe_component(text: str) -> str:
    """One safe, readable path component for an untrusted name. Pure.

    A leading ``scheme://`` is dropped and every run of ``/``, ``\\`` or ``:``
    becomes one ``_`` (``host:/srv/data`` -> ``host_srv_data``,
    ``https://contoso.sharepoint.com/sites/HR`` ->
    ``contoso.sharepoint.com_sites_HR``). ``%``, ``~``, invisible characters,
    a leading ``.`` or ``-`` and leading or trailing spaces become ``%XX``
    (UTF-8). The result is never empty, ``.`` or ``..``, holds no ``/``, NUL or
    ``~``, and has at most :data:`MAX_NAME_BYTES` bytes. Different names may
    give the same result: :class:`Layout` resolves such collisions.
    """
    text = _SEPARATORS.sub("_", _SCHEME.sub("", text)).strip("_")
    out: list[str] = []
    last = len(text) - 1
    for position, char in enumerate(text):
        category = unicodedata.category(char)
        if (
            char in "%~"
            or category in _HIDDEN_CATEGORIES
            or (position == 0 and char in ".-")
            or (position in (0, last) and category == "Zs")
        ):
            out.append(_escape(char))
        else:
            out.append(char)
    name = "".join(out) or "_"
    encoded = name.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_NAME_BYTES:
        name = encoded[:MAX_NAME_BYTES].decode("utf-8", "ignore")
    return name


def identity_tag(identity: str, digits: int = 8) -> str:
    """``~`` and the first ``digits`` hex digits of BLAKE2b(identity)."""
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
    """identity -> unique safe name, per kind (see the module docstring)."""
    first_seen: dict[str, int] = {}
    newest: dict[str, Snapshot] = {}
    for snap in complete:
        identity = snap.owner.identity
        first_seen[identity] = min(first_seen.get(identity, snap.time_ns), snap.time_ns)
        current = newest.get(identity)
        if current is None or (snap.time_ns, snap.id_hex) > (current.time_ns, current.id_hex):
            newest[identity] = snap
    by_name: dict[tuple[str, str], list[str]] = defaultdict(list)
    base: dict[str, str] = {}
    for identity, snap in newest.items():
        # The newest snapshot's name: a renamed mailbox shows its current name.
        base[identity] = safe_component(snap.owner.name or snap.owner.key)
        by_name[(snap.owner.kind, base[identity].casefold())].append(identity)
    names: dict[str, str] = {}
    for group in by_name.values():
        group.sort(key=lambda i: (first_seen[i], i))
        names[group[0]] = base[group[0]]
        for identity in group[1:]:
            names[identity] = base[identity] + identity_tag(identity)
    _check_unique_tags(names, newest)
    return names


def _check_unique_tags(names: dict[str, str], newest: dict[str, Snapshot]) -> None:
    # Two tagged names that still clash would need a 32-bit hash collision;
    # lengthen the tag for those rather than show two owners under one name.
    for digits in (16, 32):
        seen: dict[tuple[str, str], list[str]] = defaultdict(list)
        for identity, name in names.items():
            seen[(newest[identity].owner.kind, name.casefold())].append(identity)
        clashes = [group for group in seen.values() if len(group) > 1]
        if not clashes:
            return
        for group in clashes:
            for identity in group:
                plain = names[identity].split("~", 1)[0]
                names[identity] = plain + identity_tag(identity, digits)


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
