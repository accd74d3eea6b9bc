"""``SqliteStore``: the embedded, file-backed store (one file, no server).

Values are stored as JSON text in a ``store_items`` table; filters become ``json_type`` /
``json_extract`` conditions with every user-supplied piece (namespace, key, JSON path,
operand) bound as a parameter, so no input can change the SQL. Only comparisons SQLite
cannot express faithfully (equality against a whole list/object, integers beyond 64 bits)
are finished in Python, after the SQL has narrowed the rows.

The schema is versioned in ``store_migrations``; :meth:`SqliteStore.setup` applies missing
migrations inside a ``BEGIN IMMEDIATE`` transaction so concurrent processes cannot apply
one twice. It runs automatically on first use if you never call it.

With ``index={"embed": ..., "dims": ..., "fields": [...]}`` the store embeds the
configured fields of each value on put and keeps the vectors (float64 blobs) in
``store_vectors``; ``search(..., query=...)`` narrows the rows in SQL (namespace, filter)
and ranks them by cosine similarity in Python, so no SQLite extension is needed.

Async methods run the sync code in a worker thread, so the connection must allow use from
other threads (``from_conn_string`` opens it with ``check_same_thread=False``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from threadloom.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    _Condition,
    _dumps_value,
    _fits_int64,
    _join_namespace,
    _list_namespaces,
    _literal_prefix,
    _matches,
    _now,
    _parse_filter,
    _prefix_bounds,
    _run_in_thread,
    _split_namespace,
    _validate_ops,
)
from threadloom.store.embed import SemanticIndex, rank

__all__ = ["SqliteStore"]

# Each entry is one schema version; never edit a released entry, append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE IF NOT EXISTS store_items (
            seq INTEGER PRIMARY KEY,
            prefix TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (prefix, key)
        )
        """,
    ),
    (
        # semantic search: the vectors of an item's embedded fields
        """
        CREATE TABLE IF NOT EXISTS store_vectors (
            prefix TEXT NOT NULL,
            key TEXT NOT NULL,
            field TEXT NOT NULL,
            vector BLOB NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS store_vectors_item ON store_vectors (prefix, key)",
    ),
)

_SELECT_ITEM = "SELECT prefix, key, value, created_at, updated_at FROM store_items"
_NUMBER_TYPES = "('integer', 'real')"
_SQL_COMPARATORS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


class SqliteStore(BaseStore):
    """A :class:`BaseStore` in a SQLite database.

    Pass a ``sqlite3.Connection`` you own, or use :meth:`from_conn_string` to have the
    store open (and later close) one. All access goes through one lock because a sqlite3
    connection must not be used by two threads at once.

    ``index=`` enables semantic search (see :mod:`threadloom.store.embed`).
    """

    def __init__(self, conn: sqlite3.Connection, *, index: Any = None) -> None:
        self.conn = conn
        self._index = None if index is None else SemanticIndex(index, "SqliteStore")
        self.index_config = None if self._index is None else self._index.config
        self._lock = threading.RLock()
        self._is_setup = False

    @classmethod
    @contextmanager
    def from_conn_string(
        cls, conn_string: str, *, index: Any = None
    ) -> Iterator[SqliteStore]:
        """Open ``conn_string`` (a path or ``":memory:"``), yield a set-up store, close it.

        File databases switch to WAL so readers do not block the writer.
        """
        conn = sqlite3.connect(conn_string, check_same_thread=False, isolation_level=None)
        try:
            if conn_string != ":memory:" and not conn_string.startswith("file::memory:"):
                conn.execute("PRAGMA journal_mode=WAL")
            store = cls(conn, index=index)
            store.setup()
            yield store
        finally:
            conn.close()

    # -- schema -------------------------------------------------------------------------

    def setup(self) -> None:
        """Create or upgrade the tables. Idempotent; safe to call from several processes."""
        with self._lock, _transaction(self.conn):
            self.conn.execute("CREATE TABLE IF NOT EXISTS store_migrations (v INTEGER PRIMARY KEY)")
            row = self.conn.execute("SELECT max(v) FROM store_migrations").fetchone()
            current = -1 if row is None or row[0] is None else int(row[0])
            for version, statements in enumerate(MIGRATIONS):
                if version <= current:
                    continue
                for statement in statements:
                    self.conn.execute(statement)
                self.conn.execute("INSERT INTO store_migrations (v) VALUES (?)", (version,))
            self._is_setup = True

    # -- batch --------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Validate every op, then run them in order; writes commit atomically per batch."""
        checked = _validate_ops(ops, semantic=self._index is not None)
        vectors: dict[int, Any] = {}
        queries: dict[int, Any] = {}
        if self._index is not None:
            vectors = self._index.embed_puts(checked)
            queries = self._index.embed_queries(checked)
        return self._execute(checked, vectors, queries)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Like :meth:`batch`; the embedding model is called through its async methods and
        the database work runs in a worker thread so the event loop never blocks on disk."""
        checked = _validate_ops(ops, semantic=self._index is not None)
        vectors: dict[int, Any] = {}
        queries: dict[int, Any] = {}
        if self._index is not None:
            vectors = await self._index.aembed_puts(checked)
            queries = await self._index.aembed_queries(checked)
        return await _run_in_thread(self._execute, checked, vectors, queries)

    def _execute(
        self, checked: list[Op], vectors: dict[int, Any], queries: dict[int, Any]
    ) -> list[Result]:
        # Serialize values before touching the database so a bad value changes nothing.
        payloads = {
            i: _dumps_value(op.value, op.key)
            for i, op in enumerate(checked)
            if isinstance(op, PutOp) and op.value is not None
        }
        with self._lock:
            if not self._is_setup:
                self.setup()
            has_writes = any(isinstance(op, PutOp) for op in checked)
            if not has_writes:
                return [self._run(op, None, None, queries.get(i))
                        for i, op in enumerate(checked)]
            with _transaction(self.conn):
                return [self._run(op, payloads.get(i), vectors.get(i), queries.get(i))
                        for i, op in enumerate(checked)]

    def _run(
        self, op: Op, payload: str | None, vectors: Any = None, query: Any = None
    ) -> Result:
        if isinstance(op, GetOp):
            row = self.conn.execute(
                f"{_SELECT_ITEM} WHERE prefix = ? AND key = ?",
                (_join_namespace(op.namespace), op.key),
            ).fetchone()
            return None if row is None else _row_to_item(row, Item)
        if isinstance(op, PutOp):
            self._put(op, payload, vectors)
            return None
        if isinstance(op, SearchOp):
            if query is not None:
                return self._semantic_search(op, query)
            return self._search(op)
        if isinstance(op, ListNamespacesOp):
            return self._list_namespaces(op)
        raise TypeError(f"Unknown store operation: {op!r}")  # pragma: no cover

    def _put(self, op: PutOp, payload: str | None, vectors: Any = None) -> None:
        prefix = _join_namespace(op.namespace)
        if self._index is not None or vectors:
            self.conn.execute(
                "DELETE FROM store_vectors WHERE prefix = ? AND key = ?", (prefix, op.key)
            )
        if vectors:
            self.conn.executemany(
                "INSERT INTO store_vectors (prefix, key, field, vector) VALUES (?, ?, ?, ?)",
                [(prefix, op.key, field, array("d", vector).tobytes())
                 for field, vector in vectors],
            )
        if payload is None:
            self.conn.execute(
                "DELETE FROM store_items WHERE prefix = ? AND key = ?", (prefix, op.key)
            )
            return
        now = _now().isoformat()
        # On conflict the row keeps its seq (insertion order) and created_at.
        self.conn.execute(
            """
            INSERT INTO store_items (prefix, key, value, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (prefix, key) DO UPDATE
            SET value = excluded.value, updated_at = excluded.updated_at
            """,
            (prefix, op.key, payload, now, now),
        )

    def _search(self, op: SearchOp) -> list[SearchItem]:
        if op.limit == 0:
            return []
        where: list[str] = []
        params: list[Any] = []
        if op.namespace_prefix:
            where.append("(prefix = ? OR (prefix >= ? AND prefix < ?))")
            params.extend(_prefix_bounds(op.namespace_prefix))
        leftover: list[_Condition] = []
        for condition in _parse_filter(op.filter):
            compiled = _compile_condition(condition)
            if compiled is None:
                leftover.append(condition)
            else:
                where.append(compiled[0])
                params.extend(compiled[1])
        sql = _SELECT_ITEM
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if not leftover:
            sql += " LIMIT ? OFFSET ?"
            params.extend((op.limit, op.offset))
            rows = self.conn.execute(sql, params).fetchall()
            return [_row_to_item(row, SearchItem) for row in rows]
        # Some conditions are checked in Python: page after filtering.
        results: list[SearchItem] = []
        skipped = 0
        cursor = self.conn.execute(sql, params)
        try:
            for row in cursor:
                item = _row_to_item(row, SearchItem)
                if not _matches(item.value, leftover):
                    continue
                if skipped < op.offset:
                    skipped += 1
                    continue
                results.append(item)
                if 0 <= op.limit <= len(results):
                    break
        finally:
            cursor.close()
        return results

    def _semantic_search(self, op: SearchOp, query: list[float]) -> list[SearchItem]:
        """Candidates come from SQL (namespace range + filter), ranking from Python."""
        candidates = self._search(op._replace(limit=-1, offset=0))
        if not candidates:
            return []
        found: dict[tuple[str, str], list[list[float]]] = {}
        sql = "SELECT prefix, key, vector FROM store_vectors"
        params: list[Any] = []
        if op.namespace_prefix:
            sql += " WHERE prefix = ? OR (prefix >= ? AND prefix < ?)"
            params.extend(_prefix_bounds(op.namespace_prefix))
        for prefix, key, blob in self.conn.execute(sql, params):
            found.setdefault((prefix, key), []).append(array("d", blob).tolist())
        ranked = rank(
            [(item, found.get((_join_namespace(item.namespace), item.key), []))
             for item in candidates],
            query, op.offset, op.limit,
        )
        for item, score in ranked:
            item.score = score
        return [item for item, _score in ranked]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        sql = "SELECT DISTINCT prefix FROM store_items"
        params: list[str] = []
        literal = _literal_prefix(op.match_conditions)
        if literal:
            sql += " WHERE prefix = ? OR (prefix >= ? AND prefix < ?)"
            params.extend(_prefix_bounds(literal))
        rows = self.conn.execute(sql, params).fetchall()
        return _list_namespaces((_split_namespace(row[0]) for row in rows), op)


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that also works on connections the caller already uses.

    Idle connection: ``BEGIN IMMEDIATE`` (take the write lock up front, so two writers
    queue instead of deadlocking on lock upgrade) ... ``COMMIT``. Connection already inside
    a transaction: a savepoint, leaving the commit to the caller's transaction -- except in
    Python 3.12's ``autocommit=False`` mode, where a transaction is always open and the
    documented contract is that the user of the connection commits.
    """
    if conn.in_transaction:
        conn.execute("SAVEPOINT threadloom_store")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO threadloom_store")
            conn.execute("RELEASE threadloom_store")
            raise
        conn.execute("RELEASE threadloom_store")
        if getattr(conn, "autocommit", None) is False:
            conn.commit()
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _json_path(path: Sequence[str]) -> str:
    # Segments are validated ([A-Za-z0-9_-]+), so quoting them is always well formed;
    # the path is still bound as a parameter, never spliced into SQL.
    return "$" + "".join(f'."{segment}"' for segment in path)


def _compile_condition(condition: _Condition) -> tuple[str, list[Any]] | None:
    """SQL for one condition, or ``None`` when it must be evaluated in Python."""
    path = _json_path(condition.path)
    json_type = "json_type(value, ?)"
    extract = "json_extract(value, ?)"
    op, operand = condition.op, condition.operand
    if op == "$object":
        return f"({json_type} = 'object')", [path]
    if op in ("$eq", "$ne"):
        equal = _compile_equality(path, operand)
        if equal is None:
            return None
        sql, params = equal
        if op == "$eq":
            return sql, params
        # A missing field makes the equality NULL; $ne must then be true.
        return f"(NOT COALESCE({sql}, 0))", params
    comparator = _SQL_COMPARATORS[op]
    if isinstance(operand, str):
        return f"({json_type} = 'text' AND {extract} {comparator} ?)", [path, path, operand]
    if not _fits_int64(operand):
        return None
    return (
        f"({json_type} IN {_NUMBER_TYPES} AND {extract} {comparator} ?)",
        [path, path, operand],
    )


def _compile_equality(path: str, operand: Any) -> tuple[str, list[Any]] | None:
    json_type = "json_type(value, ?)"
    extract = "json_extract(value, ?)"
    if operand is None:
        return f"({json_type} = 'null')", [path]
    if operand is True:
        return f"({json_type} = 'true')", [path]
    if operand is False:
        return f"({json_type} = 'false')", [path]
    if isinstance(operand, str):
        return f"({json_type} = 'text' AND {extract} = ?)", [path, path, operand]
    if isinstance(operand, int | float) and _fits_int64(operand):
        return f"({json_type} IN {_NUMBER_TYPES} AND {extract} = ?)", [path, path, operand]
    return None  # lists, objects, huge integers: compare in Python


def _row_to_item(row: Sequence[Any], cls: type[Item]) -> Any:
    prefix, key, value, created_at, updated_at = row
    namespace = _split_namespace(prefix)
    created = datetime.fromisoformat(created_at)
    updated = datetime.fromisoformat(updated_at)
    if cls is SearchItem:
        return SearchItem(namespace, key, json.loads(value), created, updated)
    return Item(
        value=json.loads(value),
        key=key,
        namespace=namespace,
        created_at=created,
        updated_at=updated,
    )
