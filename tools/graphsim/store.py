"""Persistence of the simulated tenant in one SQLite database (`DIR/tenant.db`).

Every Graph object (user, folder, message, attachment, contact, calendar, event, drive,
drive item, site, list, list item, team, channel, channel message) is one row of `items`:

    pk       INTEGER  insertion order (stable paging key)
    key      TEXT     unique internal key (the Graph id, or "<container>/<id>" where Graph
                      ids are only unique per container: list items, channel messages)
    kind     TEXT     object type ("message", "driveItem", ...)
    owner    TEXT     user, site or team the object belongs to (throttling, inventory)
    scope    TEXT     the collection a delta query tracks (mail folder, drive, list, ...)
    parent   TEXT     the direct container's key
    name     TEXT     lower-cased name for lookups (drive paths, folder names)
    seq      INTEGER  global change sequence number of the row's last change
    deleted  INTEGER  1 for a tombstone, kept so delta queries can report removals
    data     TEXT     the Graph JSON properties (keys starting with "_" are private)
    content  TEXT     JSON content spec (see content.py) or NULL

A change (insert, update, tombstone) always takes a new `seq`, so "everything in scope S
changed after watermark W" is one indexed range query. Content bytes are never stored
here: generated content is derived from its spec, uploaded content lives in DIR/blobs.

Thread-safety: each thread gets its own connection (WAL mode, readers never block);
writers are serialised by one process-wide lock inside `Store.transaction()`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items(
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    scope TEXT NOT NULL,
    parent TEXT NOT NULL,
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    cseq INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    content TEXT
);
CREATE INDEX IF NOT EXISTS items_parent ON items(parent, kind, deleted, pk);
CREATE INDEX IF NOT EXISTS items_scope ON items(scope, kind, seq);
CREATE INDEX IF NOT EXISTS items_owner ON items(owner, kind, deleted);
CREATE INDEX IF NOT EXISTS items_name ON items(parent, name);
CREATE INDEX IF NOT EXISTS items_immutable ON items(json_extract(data, '$._immutableId'))
    WHERE kind = 'message';
CREATE TABLE IF NOT EXISTS invitations(
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS content_hashes(
    key TEXT PRIMARY KEY,
    quick_xor TEXT NOT NULL,
    sha1 TEXT NOT NULL,
    sha256 TEXT NOT NULL
);
"""

_COLUMNS = "pk, key, kind, owner, scope, parent, name, seq, deleted, data, content, cseq"


@dataclass
class Item:
    """One stored object. `data` is mutable: change it, then `Transaction.update(item)`."""

    pk: int
    key: str
    kind: str
    owner: str
    scope: str
    parent: str
    name: str
    seq: int
    deleted: bool
    data: dict[str, Any]
    content: dict[str, Any] | None = None
    cseq: int = 0  # seq at creation (to tell "created" from "updated" in delta rounds)

    @property
    def gid(self) -> str:
        """The Graph id (`data["id"]`)."""
        return str(self.data.get("id", self.key))


@dataclass
class NewItem:
    """An object to insert; `key` defaults to `data["id"]`."""

    kind: str
    owner: str
    scope: str
    parent: str
    data: dict[str, Any]
    name: str = ""
    content: dict[str, Any] | None = None
    key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _row_to_item(row: sqlite3.Row | tuple[Any, ...]) -> Item:
    return Item(
        pk=row[0],
        key=row[1],
        kind=row[2],
        owner=row[3],
        scope=row[4],
        parent=row[5],
        name=row[6],
        seq=row[7],
        deleted=bool(row[8]),
        data=json.loads(row[9]),
        content=json.loads(row[10]) if row[10] else None,
        cseq=row[11],
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Transaction:
    """A write transaction. Obtain one from `Store.transaction()`; not thread-safe."""

    def __init__(self, store: Store, conn: sqlite3.Connection) -> None:
        self._store = store
        self._conn = conn
        self.changed: list[Item] = []

    def next_seq(self) -> int:
        return self._store._allocate_seq()

    def insert(self, new: NewItem) -> Item:
        key = new.key or str(new.data["id"])
        seq = self.next_seq()
        cur = self._conn.execute(
            "INSERT INTO items(key, kind, owner, scope, parent, name, seq, cseq, deleted, data,"
            " content) VALUES (?,?,?,?,?,?,?,?,0,?,?)",
            (
                key,
                new.kind,
                new.owner,
                new.scope,
                new.parent,
                new.name.lower(),
                seq,
                seq,
                _dumps(new.data),
                _dumps(new.content) if new.content is not None else None,
            ),
        )
        item = Item(
            pk=int(cur.lastrowid or 0),
            key=key,
            kind=new.kind,
            owner=new.owner,
            scope=new.scope,
            parent=new.parent,
            name=new.name.lower(),
            seq=seq,
            deleted=False,
            data=new.data,
            content=new.content,
            cseq=seq,
        )
        self.changed.append(item)
        return item

    def insert_many(self, items: Iterable[NewItem]) -> int:
        """Bulk insert for the generator; returns the number of rows. No Item objects."""
        rows = []
        for new in items:
            seq = self.next_seq()
            rows.append(
                (
                    new.key or str(new.data["id"]),
                    new.kind,
                    new.owner,
                    new.scope,
                    new.parent,
                    new.name.lower(),
                    seq,
                    seq,
                    _dumps(new.data),
                    _dumps(new.content) if new.content is not None else None,
                )
            )
        self._conn.executemany(
            "INSERT INTO items(key, kind, owner, scope, parent, name, seq, cseq, deleted, data,"
            " content) VALUES (?,?,?,?,?,?,?,?,0,?,?)",
            rows,
        )
        return len(rows)

    def update(self, item: Item, *, bump: bool = True) -> Item:
        """Persist `item` (data, content, parent, scope, name); a new seq unless bump=False."""
        if bump:
            item.seq = self.next_seq()
        self._conn.execute(
            "UPDATE items SET owner=?, scope=?, parent=?, name=?, seq=?, deleted=?, data=?,"
            " content=? WHERE pk=?",
            (
                item.owner,
                item.scope,
                item.parent,
                item.name.lower(),
                item.seq,
                int(item.deleted),
                _dumps(item.data),
                _dumps(item.content) if item.content is not None else None,
                item.pk,
            ),
        )
        self.changed.append(item)
        return item

    def tombstone(self, item: Item) -> Item:
        """Mark deleted (kept for delta), with a new seq. Idempotent for tombstones."""
        if item.deleted:
            return item
        item.deleted = True
        return self.update(item)

    def purge(self, item: Item) -> None:
        """Remove the row entirely (no delta trace). Used for ephemeral objects."""
        self._conn.execute("DELETE FROM items WHERE pk=?", (item.pk,))

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested step that can fail alone: on an exception its writes are undone."""
        self._conn.execute("SAVEPOINT step")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK TO step")
            self._conn.execute("RELEASE step")
            raise
        self._conn.execute("RELEASE step")

    def add_invitation(self, payload: dict[str, Any]) -> None:
        self._conn.execute("INSERT INTO invitations(data) VALUES (?)", (_dumps(payload),))

    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )


class Store:
    """The tenant database. Open once per simulator; safe to use from many threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._all_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        conn = self.conn()
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
        self._seq = int(row[0]) if row else 0
        # Readers see only committed changes: a delta round must never take a watermark
        # that covers rows still being written.
        self._committed = self._seq
        if self.get_meta("schema") is None:
            with self.transaction() as tx:
                tx.set_meta("schema", SCHEMA_VERSION)

    # -- connections -------------------------------------------------------------------

    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA cache_size=-16000")
            self._local.conn = conn
            with self._conns_lock:
                self._all_conns.append(conn)
        return conn

    def close_thread(self) -> None:
        """Close the calling thread's connection (server threads end with their TCP
        connection; without this their SQLite handles would pile up)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._conns_lock:
            if conn in self._all_conns:
                self._all_conns.remove(conn)
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def close(self) -> None:
        """Close every connection opened by any thread."""
        with self._conns_lock:
            conns, self._all_conns = self._all_conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    # -- writes ---------------------------------------------------------------------------

    def _allocate_seq(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def current_seq(self) -> int:
        """The sequence number of the last committed change."""
        return self._committed

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One atomic write; commits on success, rolls back (and restores seq) on error."""
        with self._write_lock:
            conn = self.conn()
            start_seq = self._seq
            conn.execute("BEGIN IMMEDIATE")
            tx = Transaction(self, conn)
            try:
                yield tx
                if self._seq != start_seq:
                    tx.set_meta("seq", str(self._seq))
                conn.execute("COMMIT")
                self._committed = self._seq
            except BaseException:
                conn.execute("ROLLBACK")
                self._seq = start_seq
                raise

    # -- reads ----------------------------------------------------------------------------

    def get(self, key: str, *, include_deleted: bool = False) -> Item | None:
        row = self.conn().execute(f"SELECT {_COLUMNS} FROM items WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        item = _row_to_item(row)
        if item.deleted and not include_deleted:
            return None
        return item

    def get_pk(self, pk: int) -> Item | None:
        row = self.conn().execute(f"SELECT {_COLUMNS} FROM items WHERE pk=?", (pk,)).fetchone()
        return _row_to_item(row) if row else None

    def children(
        self,
        parent: str,
        kinds: Sequence[str],
        *,
        after_pk: int = 0,
        limit: int = -1,
    ) -> list[Item]:
        """Live children of `parent` of the given kinds, in insertion order."""
        marks = ",".join("?" * len(kinds))
        rows = self.conn().execute(
            f"SELECT {_COLUMNS} FROM items WHERE parent=? AND kind IN ({marks}) AND deleted=0"
            " AND pk>? ORDER BY pk LIMIT ?",
            (parent, *kinds, after_pk, limit),
        )
        return [_row_to_item(r) for r in rows]

    def scope_page(
        self, scope: str, kinds: Sequence[str], *, after_pk: int = 0, limit: int = -1
    ) -> list[Item]:
        """Live rows of a delta scope (a whole drive, say) in insertion order."""
        marks = ",".join("?" * len(kinds))
        rows = self.conn().execute(
            f"SELECT {_COLUMNS} FROM items WHERE scope=? AND kind IN ({marks}) AND deleted=0"
            " AND pk>? ORDER BY pk LIMIT ?",
            (scope, *kinds, after_pk, limit),
        )
        return [_row_to_item(r) for r in rows]

    def count_children(self, parent: str, kinds: Sequence[str]) -> int:
        marks = ",".join("?" * len(kinds))
        row = (
            self.conn()
            .execute(
                f"SELECT COUNT(*) FROM items WHERE parent=? AND kind IN ({marks}) AND deleted=0",
                (parent, *kinds),
            )
            .fetchone()
        )
        return int(row[0])

    def count_json(self, parent: str, kind: str, path: str, value: Any) -> int:
        """Live children of `parent` of `kind` whose JSON `path` equals `value`."""
        row = (
            self.conn()
            .execute(
                "SELECT COUNT(*) FROM items WHERE parent=? AND kind=? AND deleted=0"
                " AND json_extract(data, ?)=?",
                (parent, kind, path, value),
            )
            .fetchone()
        )
        return int(row[0])

    def by_json(
        self, scope: str, kind: str, path: str, value: Any, *, include_deleted: bool = False
    ) -> list[Item]:
        """Rows of `scope`/`kind` whose JSON `path` equals `value`."""
        cond = "" if include_deleted else " AND deleted=0"
        rows = self.conn().execute(
            f"SELECT {_COLUMNS} FROM items WHERE scope=? AND kind=?{cond}"
            " AND json_extract(data, ?)=? ORDER BY pk",
            (scope, kind, path, value),
        )
        return [_row_to_item(r) for r in rows]

    def message_by_immutable_id(self, immutable_id: str) -> Item | None:
        """The live message with this immutable id (outlook-immutable-id.md)."""
        row = (
            self.conn()
            .execute(
                f"SELECT {_COLUMNS} FROM items WHERE kind = 'message'"
                " AND json_extract(data, '$._immutableId') = ? AND deleted=0",
                (immutable_id,),
            )
            .fetchone()
        )
        return _row_to_item(row) if row else None

    def count_owned(self, owner: str, kind: str) -> int:
        row = (
            self.conn()
            .execute(
                "SELECT COUNT(*) FROM items WHERE owner=? AND kind=? AND deleted=0", (owner, kind)
            )
            .fetchone()
        )
        return int(row[0])

    def by_owner(
        self, owner: str, kinds: Sequence[str], *, after_pk: int = 0, limit: int = -1
    ) -> list[Item]:
        marks = ",".join("?" * len(kinds))
        rows = self.conn().execute(
            f"SELECT {_COLUMNS} FROM items WHERE owner=? AND kind IN ({marks}) AND deleted=0"
            " AND pk>? ORDER BY pk LIMIT ?",
            (owner, *kinds, after_pk, limit),
        )
        return [_row_to_item(r) for r in rows]

    def by_kind(self, kinds: Sequence[str], *, after_pk: int = 0, limit: int = -1) -> list[Item]:
        marks = ",".join("?" * len(kinds))
        rows = self.conn().execute(
            f"SELECT {_COLUMNS} FROM items WHERE kind IN ({marks}) AND deleted=0 AND pk>?"
            " ORDER BY pk LIMIT ?",
            (*kinds, after_pk, limit),
        )
        return [_row_to_item(r) for r in rows]

    def in_scope(
        self, scope: str, kinds: Sequence[str], *, include_deleted: bool = False
    ) -> Iterator[Item]:
        marks = ",".join("?" * len(kinds))
        cond = "" if include_deleted else " AND deleted=0"
        rows = self.conn().execute(
            f"SELECT {_COLUMNS} FROM items WHERE scope=? AND kind IN ({marks}){cond} ORDER BY pk",
            (scope, *kinds),
        )
        for r in rows:
            yield _row_to_item(r)

    def changes(
        self,
        scope: str,
        kinds: Sequence[str],
        *,
        since: int,
        upto: int,
        after_seq: int,
        limit: int,
        include_deleted: bool,
    ) -> list[Item]:
        """Rows of `scope` changed in (since, upto], after `after_seq`, ordered by seq."""
        marks = ",".join("?" * len(kinds))
        cond = "" if include_deleted else " AND deleted=0"
        rows = self.conn().execute(
            f"SELECT {_COLUMNS} FROM items WHERE scope=? AND kind IN ({marks}) AND seq>?"
            f" AND seq<=?{cond} ORDER BY seq LIMIT ?",
            (scope, *kinds, max(since, after_seq), upto, limit),
        )
        return [_row_to_item(r) for r in rows]

    def find_name(self, parent: str, kinds: Sequence[str], name: str) -> Item | None:
        marks = ",".join("?" * len(kinds))
        row = (
            self.conn()
            .execute(
                f"SELECT {_COLUMNS} FROM items WHERE parent=? AND name=? AND kind IN ({marks})"
                " AND deleted=0 ORDER BY pk LIMIT 1",
                (parent, name.lower(), *kinds),
            )
            .fetchone()
        )
        return _row_to_item(row) if row else None

    def count_by_owner_kind(self) -> list[tuple[str, str, int]]:
        rows = self.conn().execute(
            "SELECT owner, kind, COUNT(*) FROM items WHERE deleted=0 GROUP BY owner, kind"
        )
        return [(r[0], r[1], int(r[2])) for r in rows]

    def iter_live(self, kinds: Sequence[str]) -> Iterator[Item]:
        marks = ",".join("?" * len(kinds))
        rows = self.conn().execute(
            f"SELECT {_COLUMNS} FROM items WHERE kind IN ({marks}) AND deleted=0 ORDER BY pk",
            tuple(kinds),
        )
        for r in rows:
            yield _row_to_item(r)

    # -- meta, invitations, hashes ---------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx.set_meta(key, value)

    def invitations(self) -> list[dict[str, Any]]:
        rows = self.conn().execute("SELECT data FROM invitations ORDER BY pk")
        return [json.loads(r[0]) for r in rows]

    def clear_invitations(self) -> None:
        with self.transaction() as tx:
            tx._conn.execute("DELETE FROM invitations")

    def get_hashes(self, key: str) -> tuple[str, str, str] | None:
        row = (
            self.conn()
            .execute("SELECT quick_xor, sha1, sha256 FROM content_hashes WHERE key=?", (key,))
            .fetchone()
        )
        return None if row is None else (row[0], row[1], row[2])

    def put_hashes(self, key: str, quick_xor: str, sha1: str, sha256: str) -> None:
        with self._write_lock:
            self.conn().execute(
                "INSERT OR REPLACE INTO content_hashes(key, quick_xor, sha1, sha256)"
                " VALUES (?,?,?,?)",
                (key, quick_xor, sha1, sha256),
            )
