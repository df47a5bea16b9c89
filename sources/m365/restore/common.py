"""What every service writer shares: the run's context, conflict decisions, safe creates.

:class:`ServiceRun` is one service of one owner being restored: the Graph
client, the snapshot reader, the resource whose limits apply (a mailbox, or
SharePoint), the counters, the conflict policy and whether this is a dry run.

:class:`FolderIndex` is what a target folder holds, listed once: writers ask
it whether an item is *already there* (an existing item with the same
identity and content: nothing to do), has *another version* there (same
identity, other content: the conflict policy decides), or is *absent*.
Matches are claimed: an existing item answers for one snapshot item only, so
two identical items in a snapshot folder come back as two, and a second run
finds both and writes nothing.

:func:`create_once` sends a creating POST once: after an ambiguous failure
(AmbiguousWrite: the connection dropped or Graph answered 5xx after the
request went out) it looks for what the request would have created before
sending it again, so a retry never duplicates an item.

Thread-safe: item workers of one owner share these objects.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sources.m365.graph.client import Answer, GraphClient
from sources.m365.graph.errors import AmbiguousWrite, GraphError, TransientGraphError
from sources.m365.graph.throttle import Resource
from sources.m365.restore.report import ALREADY_THERE, OTHER_VERSION, ServiceResult
from sources.m365.restore.target import RestoreTarget
from store import SnapshotReader

SKIP = "skip"
REPLACE = "replace"
KEEP_BOTH = "keep-both"
POLICIES = (SKIP, REPLACE, KEEP_BOTH)

AMBIGUOUS_ATTEMPTS = 5

# What a writer found in the target for one item.
ABSENT = "absent"
SAME = "same"
OTHER = "other"


def fingerprint(values: Any) -> str:
    """A stable hash of JSON-able values (what "the same content" compares)."""
    raw = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def size_of(row: dict[str, Any]) -> int:
    """The ``size`` Graph gives for an item (-1 when it gives none)."""
    value = row.get("size")
    try:
        return int(value) if value is not None else -1
    except (TypeError, ValueError):
        return -1


def meaningful(value: Any) -> bool:
    """False for values Graph treats as unset (None, "", [], {})."""
    return value not in (None, "", [], {})


@dataclass(frozen=True)
class Placement:
    """Where one owner's items go: the target owner and the folder above them.

    ``user_id`` / ``site_id``: the target's Graph IDs (the source owner's own
    for ``original``); ``base``: folder names under the service's root that
    everything restored goes into (empty for ``original``).
    """

    target: RestoreTarget
    user_id: str | None = None
    user_name: str = ""
    site_id: str | None = None
    site_name: str = ""
    base: tuple[str, ...] = ()

    @property
    def original(self) -> bool:
        return not self.target.alternate


class ServiceRun:
    """One service of one owner (see the module docstring)."""

    def __init__(
        self,
        *,
        client: GraphClient,
        reader: SnapshotReader,
        result: ServiceResult,
        res: Resource,
        placement: Placement,
        on_conflict: str,
        dry_run: bool,
        pacer: Callable[[int], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if on_conflict not in POLICIES:
            raise ValueError(f"on_conflict must be one of {POLICIES}")
        self.client = client
        self.reader = reader
        self.result = result
        self.res = res.with_meter(result.meter)
        self.placement = placement
        self.on_conflict = on_conflict
        self.dry_run = dry_run
        self._pacer = pacer
        self._sleep = sleep
        self._random = random.Random()  # noqa: S311 (jitter, not secrets)

    # -- outcomes ------------------------------------------------------------------------

    def done(self, outcome: str, item: str, reason: str = "") -> None:
        self.result.record(outcome, item, reason, planned=self.dry_run)

    def fail(self, item: str, reason: str) -> None:
        self.result.record("failed", item, reason, planned=self.dry_run)

    def already_there(self, item: str) -> None:
        self.done("skipped", item, ALREADY_THERE)

    def decide(self, found: str) -> str:
        """The action for what was found: create, nothing, or the conflict policy's.

        Returns "create", "skip", "replace" or "keep-both".
        """
        if found == ABSENT:
            return "create"
        if found == SAME:
            return "same"
        return self.on_conflict

    def act(self, item: str, found: str) -> str | None:
        """What to write for ``item`` found in state ``found``: "create", "replace" or
        "keep-both"; None when nothing is to be written (already there, or skipped by
        the policy), which this counts."""
        if found == SAME:
            self.already_there(item)
            return None
        action = self.decide(found)
        if action == SKIP:
            self.skipped_other_version(item)
            return None
        return action

    def settle(self, item: str, found: str) -> str | None:
        """As :meth:`act`, and in a dry run count what would be done and return None."""
        if self.dry_run:
            self.planned(item, found)
            return None
        return self.act(item, found)

    def skipped_other_version(self, item: str) -> None:
        self.done("skipped", item, OTHER_VERSION)

    def planned(self, item: str, found: str) -> None:
        """Count what a dry run would do for an item in state ``found``."""
        action = self.decide(found)
        if found == SAME:
            self.already_there(item)
        elif found == ABSENT:
            self.done("created", item)
        elif action == SKIP:
            self.skipped_other_version(item)
        elif action == REPLACE:
            self.done("replaced", item)
        else:
            self.done("kept_both", item)

    # -- writing -------------------------------------------------------------------------

    def pace(self, size: int) -> None:
        """Wait for the mailbox's upload budget before sending ``size`` bytes."""
        if self._pacer is not None and size > 0:
            self._pacer(size)

    def create_once(
        self,
        create: Callable[[], Answer],
        find: Callable[[], dict[str, Any] | None],
        what: str,
    ) -> dict[str, Any]:
        """Send a creating request; after an ambiguous failure, look first (see the
        module docstring). Returns the created (or found) item's JSON.

        Raises the classified GraphError of the last attempt.
        """
        for attempt in range(1, AMBIGUOUS_ATTEMPTS + 1):
            try:
                return create().data
            except AmbiguousWrite as exc:
                found = find()
                if found is not None:
                    return found
                if attempt == AMBIGUOUS_ATTEMPTS:
                    raise TransientGraphError(
                        exc.status, exc.code, f"{what}: {exc.message}", url=exc.url
                    ) from None
                self._sleep(self._random.uniform(0.05, 0.2) * attempt)
        raise AssertionError("unreachable")

    def create_container(
        self, url: str, body: dict[str, Any], find: Callable[[], dict[str, Any] | None], what: str
    ) -> str:
        """Create a folder, calendar or contact folder once (as :meth:`create_once`)
        and return its ID; when Graph answers that it already exists (409, or
        ErrorFolderExists), the one ``find`` returns. Raises GraphError otherwise."""
        try:
            made = self.create_once(
                lambda: self.client.send("POST", url, self.res, json_body=body, idempotent=False),
                find,
                what,
            )
        except GraphError as exc:
            if exc.status == 409 or exc.has_code("ErrorFolderExists"):
                existing = find()
                if existing is not None:
                    return str(existing["id"])
            raise
        return str(made["id"])


class ItemKind(Protocol):
    """How one kind of item (message, contact, event, list item) is recognised in a
    target folder; each writer has one. Implementations are pure and thread-safe.

    ``bucket(record)``: a coarse key that equal items share (internet message ID,
    display name, subject and start...), for the snapshot's record and for a row
    Graph lists alike. ``identities(record)``: the identities an item has (its
    Graph ID, its internet message ID). ``same(ours, row)``: whether a listed row
    is the snapshot's item: Graph adds defaults to what it stores (a contact's
    fileAs), so "the same" means every property restore would set is equal, not
    that the records are identical.
    """

    def bucket(self, record: dict[str, Any]) -> str: ...

    def identities(self, record: dict[str, Any]) -> list[str]: ...

    def same(self, ours: dict[str, Any], row: dict[str, Any]) -> bool: ...


def by_graph_id(record: dict[str, Any]) -> list[str]:
    """The identity of a record by its Graph ID (none without one)."""
    return [f"id:{record['id']}"] if record.get("id") else []


class FolderIndex:
    """What one target folder holds, for conflict decisions (module docstring).

    ``rows``: the folder's items as Graph lists them; ``kind`` says how they are
    bucketed, identified and compared. Thread-safe.
    """

    def __init__(self, rows: Iterable[dict[str, Any]], kind: ItemKind) -> None:
        self._kind = kind
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Any]] = {}
        self._by_bucket: dict[str, list[str]] = {}
        self._by_identity: dict[str, list[str]] = {}
        self._claimed: set[str] = set()
        for row in rows:
            self.add(row, claimed=False)

    def add(self, row: dict[str, Any], *, claimed: bool = True) -> None:
        """Record an item now in the folder (one we created is claimed)."""
        rid = str(row.get("id", ""))
        if not rid:
            return
        with self._lock:
            self._rows[rid] = row
            self._by_bucket.setdefault(self._kind.bucket(row), []).append(rid)
            for key in self._kind.identities(row):
                self._by_identity.setdefault(key, []).append(rid)
            if claimed:
                self._claimed.add(rid)

    def ids(self) -> set[str]:
        """The IDs of every item known in the folder (listed or added)."""
        with self._lock:
            return set(self._rows)

    def forget(self, rid: str) -> None:
        with self._lock:
            self._claimed.add(rid)  # gone (deleted or replaced): answers for nothing

    def match(
        self, ours: dict[str, Any], *, by_identity: bool = True
    ) -> tuple[str, dict[str, Any] | None]:
        """``find`` for the snapshot's record ``ours`` (``by_identity`` False: only an
        equal item counts, an item with the same identity does not)."""
        kind = self._kind
        identities = kind.identities(ours) if by_identity else []
        return self.find(kind.bucket(ours), lambda row: kind.same(ours, row), identities)

    def find(
        self,
        bucket: str,
        same: Callable[[dict[str, Any]], bool],
        identities: list[str],
    ) -> tuple[str, dict[str, Any] | None]:
        """(SAME, row), (OTHER, row) or (ABSENT, None); the row found is claimed.

        SAME: an unclaimed item of ``bucket`` for which ``same`` holds; OTHER:
        none, but an unclaimed item has one of ``identities``.
        """
        with self._lock:
            for rid in self._by_bucket.get(bucket, []):
                if rid not in self._claimed and same(self._rows[rid]):
                    self._claimed.add(rid)
                    return SAME, self._rows[rid]
            for key in identities:
                for rid in self._by_identity.get(key, []):
                    if rid not in self._claimed:
                        self._claimed.add(rid)
                        return OTHER, self._rows[rid]
        return ABSENT, None


class FolderIndexes:
    """One FolderIndex per target folder, listed from Graph on first use. Thread-safe."""

    def __init__(self, kind: ItemKind) -> None:
        self.kind = kind
        self._lock = threading.Lock()
        self._indexes: dict[str, FolderIndex] = {}

    def get(self, key: str | None, rows: Callable[[str], Iterable[dict[str, Any]]]) -> FolderIndex:
        """The index of folder ``key`` (``rows(key)`` lists it the first time); an
        empty one for None (a folder a dry run has not created)."""
        if key is None:
            return FolderIndex([], self.kind)
        with self._lock:
            found = self._indexes.get(key)
            if found is None:
                found = self._indexes[key] = FolderIndex(rows(key), self.kind)
            return found


def same_values(
    ours: dict[str, Any], row: dict[str, Any], normalize: Callable[[str, Any], Any]
) -> bool:
    """True when ``row`` has every property of ``ours`` with an equal value
    (after ``normalize(name, value)``)."""
    return all(normalize(k, row.get(k)) == normalize(k, v) for k, v in ours.items())
