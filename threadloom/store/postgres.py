"""``PostgresStore`` / ``AsyncPostgresStore``: the shared store for many workers.

Values live in a ``JSONB`` column of ``store_items``; namespaces are stored joined with
"." in a ``COLLATE "C"`` text column so "namespace starts with prefix" is an index range
scan. Filters become ``jsonb`` operator expressions (``value -> %s::text ...``) with every
user-supplied piece bound as a parameter -- field names, operands, namespaces and keys are
never spliced into SQL.

Schema changes are versioned in ``store_migrations`` and applied by ``setup()`` inside one
transaction that first takes a PostgreSQL advisory lock, so any number of workers may
call ``setup()`` concurrently at start-up. ``setup()`` also runs automatically on first use.

Connections: pass an ``autocommit=True`` connection (what ``from_conn_string`` opens) or a
``psycopg_pool`` pool (``from_conn_string(..., pool_config={...})`` opens one). Every batch
runs in ``conn.transaction()``; on a connection the caller left inside an open transaction
that becomes a savepoint and committing is up to the caller. With ``pipeline=True`` a
batch's statements go out together in psycopg pipeline mode (one round trip per batch
instead of one per operation).

Values must be JSON; PostgreSQL's ``jsonb`` additionally rejects the NUL character
(``"\\u0000"``) inside strings, and does not preserve object key order.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any, TypedDict

import psycopg
from psycopg.rows import tuple_row

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
    SemanticSearchNotSupportedError,
    _Condition,
    _dumps_value,
    _join_namespace,
    _list_namespaces,
    _literal_prefix,
    _now,
    _parse_filter,
    _prefix_bounds,
    _run_in_thread,
    _split_namespace,
    _validate_ops,
)

__all__ = ["AsyncPostgresStore", "PostgresStore"]

# Advisory lock id guarding store migrations: the first 8 bytes of
# sha256(b"threadloom.store") as a signed big-endian int64, so it cannot collide with a
# lock id chosen the same way for another component (e.g. the checkpoint savers).
MIGRATION_LOCK_ID = -1376717965152800263

# Each entry is one schema version; never edit a released entry, append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE IF NOT EXISTS store_items (
            seq BIGINT GENERATED ALWAYS AS IDENTITY,
            prefix TEXT COLLATE "C" NOT NULL,
            key TEXT NOT NULL,
            value JSONB NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (prefix, key)
        )
        """,
        "CREATE INDEX IF NOT EXISTS store_items_seq_idx ON store_items (seq)",
    ),
)

_SELECT_ITEM = "SELECT prefix, key, value::text, created_at, updated_at FROM store_items"
_SQL_COMPARATORS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}

_Plan = tuple[str, Sequence[Any], Callable[[list[tuple[Any, ...]]], Result]]


# --------------------------------------------------------------------------------------
# SQL planning, shared by the sync and async stores
# --------------------------------------------------------------------------------------


def _migration_steps(current: int) -> Iterator[tuple[str, Sequence[Any]]]:
    for version, statements in enumerate(MIGRATIONS):
        if version <= current:
            continue
        for statement in statements:
            yield statement, ()
        yield "INSERT INTO store_migrations (v) VALUES (%s)", (version,)


_SETUP_PREAMBLE: tuple[tuple[str, Sequence[Any]], ...] = (
    ("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,)),
    ("CREATE TABLE IF NOT EXISTS store_migrations (v INTEGER PRIMARY KEY)", ()),
)
_CURRENT_VERSION = "SELECT max(v) FROM store_migrations"


def _version_of(row: Sequence[Any] | None) -> int:
    return -1 if row is None or row[0] is None else int(row[0])


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _decode_item(row: Sequence[Any]) -> Item:
    prefix, key, value, created_at, updated_at = row
    return Item(
        value=json.loads(value),
        key=key,
        namespace=_split_namespace(prefix),
        created_at=_aware(created_at),
        updated_at=_aware(updated_at),
    )


def _decode_search_item(row: Sequence[Any]) -> SearchItem:
    prefix, key, value, created_at, updated_at = row
    return SearchItem(
        _split_namespace(prefix), key, json.loads(value), _aware(created_at), _aware(updated_at)
    )


def _path_expr(path: Sequence[str]) -> tuple[str, list[str]]:
    """``value -> %s::text -> ...``: object-key steps only (never array indices)."""
    return "(value" + " -> %s::text" * len(path) + ")", list(path)


def _compile_condition(condition: _Condition) -> tuple[str, list[Any]]:
    field, path_params = _path_expr(condition.path)
    op, operand = condition.op, condition.operand
    if op == "$object":
        return f"(jsonb_typeof({field}) = 'object')", path_params
    if op == "$eq":
        # jsonb equality: deep, numbers by value, booleans distinct from numbers.
        return f"({field} = %s::jsonb)", [*path_params, json.dumps(operand)]
    if op == "$ne":
        # A missing field is SQL NULL (not JSON null) and counts as "not equal".
        return (
            f"({field} IS NULL OR {field} <> %s::jsonb)",
            [*path_params, *path_params, json.dumps(operand)],
        )
    comparator = _SQL_COMPARATORS[op]
    if isinstance(operand, str):
        # COLLATE "C": code-point order, the same on every server and in Python.
        return (
            f"(jsonb_typeof({field}) = 'string' AND "
            f"({field} #>> '{{}}') COLLATE \"C\" {comparator} %s::text)",
            [*path_params, *path_params, operand],
        )
    return (
        f"(jsonb_typeof({field}) = 'number' AND {field} {comparator} %s::jsonb)",
        [*path_params, *path_params, json.dumps(operand)],
    )


def _plan(op: Op, payload: str | None, now: datetime) -> _Plan:
    """One SQL statement, its parameters and how to turn its rows into the op's result."""
    if isinstance(op, GetOp):
        return (
            f"{_SELECT_ITEM} WHERE prefix = %s AND key = %s",
            (_join_namespace(op.namespace), op.key),
            lambda rows: _decode_item(rows[0]) if rows else None,
        )
    if isinstance(op, PutOp):
        prefix = _join_namespace(op.namespace)
        if payload is None:
            return (
                "DELETE FROM store_items WHERE prefix = %s AND key = %s",
                (prefix, op.key),
                lambda rows: None,
            )
        # On conflict the row keeps its seq (insertion order) and created_at.
        return (
            "INSERT INTO store_items (prefix, key, value, created_at, updated_at) "
            "VALUES (%s, %s, %s::jsonb, %s, %s) "
            "ON CONFLICT (prefix, key) DO UPDATE "
            "SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
            (prefix, op.key, payload, now, now),
            lambda rows: None,
        )
    if isinstance(op, SearchOp):
        where: list[str] = []
        params: list[Any] = []
        if op.namespace_prefix:
            where.append("(prefix = %s OR (prefix >= %s AND prefix < %s))")
            params.extend(_prefix_bounds(op.namespace_prefix))
        for condition in _parse_filter(op.filter):
            sql, condition_params = _compile_condition(condition)
            where.append(sql)
            params.extend(condition_params)
        sql = _SELECT_ITEM
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq LIMIT %s OFFSET %s"
        params.extend((op.limit, op.offset))
        return sql, params, lambda rows: [_decode_search_item(row) for row in rows]
    if isinstance(op, ListNamespacesOp):
        sql = "SELECT DISTINCT prefix FROM store_items"
        list_params: list[str] = []
        literal = _literal_prefix(op.match_conditions)
        if literal:
            sql += " WHERE prefix = %s OR (prefix >= %s AND prefix < %s)"
            list_params.extend(_prefix_bounds(literal))
        return (
            sql,
            list_params,
            lambda rows: _list_namespaces((_split_namespace(row[0]) for row in rows), op),
        )
    raise TypeError(f"Unknown store operation: {op!r}")  # pragma: no cover


def _prepare(ops: Iterable[Op]) -> list[tuple[Op, str | None]]:
    """Validate every op and serialize values up front, so a bad batch touches nothing."""
    checked = _validate_ops(ops)
    return [
        (op, _dumps_value(op.value, op.key))
        if isinstance(op, PutOp) and op.value is not None
        else (op, None)
        for op in checked
    ]


# --------------------------------------------------------------------------------------
# Sync store
# --------------------------------------------------------------------------------------


class PostgresStore(BaseStore):
    """A :class:`BaseStore` in PostgreSQL, used from synchronous code.

    ``conn`` is a ``psycopg.Connection`` (shared behind a lock) or a
    ``psycopg_pool.ConnectionPool`` (one pooled connection per batch, so threads run in
    parallel). Async methods run the sync code in a worker thread; use
    :class:`AsyncPostgresStore` in async applications.
    """

    def __init__(self, conn: Any, *, pipeline: bool = False, index: Any = None) -> None:
        _reject_index(type(self).__name__, index)
        self.conn = conn
        self.pipeline = pipeline
        self._lock = threading.RLock()
        self._is_setup = False

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str,
        *,
        pipeline: bool = False,
        pool_config: PoolConfig | None = None,
        index: Any = None,
    ) -> Iterator[PostgresStore]:
        """Connect to ``conn_string``, yield a set-up store, then disconnect.

        By default one autocommit connection; ``pool_config`` (``min_size``, ``max_size``,
        ``kwargs`` for each connection) opens a ``psycopg_pool.ConnectionPool`` instead.
        ``pipeline=True`` sends each batch's statements in one round trip.
        """
        _reject_index(cls.__name__, index)
        if pool_config is not None:
            from psycopg_pool import ConnectionPool

            with ConnectionPool(conn_string, open=True, **_pool_args(pool_config)) as pool:
                store = cls(pool, pipeline=pipeline)
                store.setup()
                yield store
            return
        with psycopg.Connection.connect(conn_string, autocommit=True) as conn:
            store = cls(conn, pipeline=pipeline)
            store.setup()
            yield store

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if isinstance(self.conn, psycopg.Connection):
            with self._lock:
                yield self.conn
        else:
            with self.conn.connection() as conn:
                yield conn

    def setup(self) -> None:
        """Create or upgrade the tables; idempotent and safe to run from many workers."""
        with self._connection() as conn:
            self._setup(conn)

    def _setup(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            for sql, params in _SETUP_PREAMBLE:
                cur.execute(sql, params)
            current = _version_of(cur.execute(_CURRENT_VERSION).fetchone())
            for sql, params in _migration_steps(current):
                cur.execute(sql, params)
        self._is_setup = True

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Validate every op, then run them in order in one transaction."""
        prepared = _prepare(ops)
        now = _now()
        with self._connection() as conn:
            if not self._is_setup:
                self._setup(conn)
            pending: list[tuple[psycopg.Cursor[Any], Callable[[list[Any]], Result]]] = []
            with _sending(conn, self.pipeline) as flush, conn.transaction():
                # One cursor per op, every statement sent before any result is read: in
                # pipeline mode the whole batch is one round trip.
                for op, payload in prepared:
                    sql, params, decode = _plan(op, payload, now)
                    cur = conn.cursor(row_factory=tuple_row)
                    cur.execute(sql, params)
                    pending.append((cur, decode))
                flush()
                return [decode(_rows(cur)) for cur, decode in pending]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run :meth:`batch` in a worker thread so the event loop never blocks."""
        return await _run_in_thread(self.batch, list(ops))


# --------------------------------------------------------------------------------------
# Async store
# --------------------------------------------------------------------------------------


class AsyncPostgresStore(BaseStore):
    """A :class:`BaseStore` in PostgreSQL for asyncio applications.

    ``conn`` is a ``psycopg.AsyncConnection`` or a ``psycopg_pool.AsyncConnectionPool``.
    The sync methods (``get``, ``put``, ...) exist for code that runs in worker threads
    (e.g. sync graph nodes): they submit the work to the store's event loop and wait.
    Calling them *on* that loop would deadlock, so that raises
    ``asyncio.InvalidStateError`` instead.
    """

    def __init__(self, conn: Any, *, pipeline: bool = False, index: Any = None) -> None:
        _reject_index(type(self).__name__, index)
        self.conn = conn
        self.pipeline = pipeline
        self._lock: asyncio.Lock | None = None
        self._is_setup = False
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        pipeline: bool = False,
        pool_config: PoolConfig | None = None,
        index: Any = None,
    ) -> AsyncIterator[AsyncPostgresStore]:
        """Connect to ``conn_string``, yield a set-up store, then disconnect.

        The same options as :meth:`PostgresStore.from_conn_string`; ``pool_config`` opens a
        ``psycopg_pool.AsyncConnectionPool``.
        """
        _reject_index(cls.__name__, index)
        if pool_config is not None:
            from psycopg_pool import AsyncConnectionPool

            async with AsyncConnectionPool(
                conn_string, open=False, **_pool_args(pool_config)
            ) as pool:
                store = cls(pool, pipeline=pipeline)
                await store.setup()
                yield store
            return
        async with await psycopg.AsyncConnection.connect(conn_string, autocommit=True) as conn:
            store = cls(conn, pipeline=pipeline)
            await store.setup()
            yield store

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        if isinstance(self.conn, psycopg.AsyncConnection):
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                yield self.conn
        else:
            async with self.conn.connection() as conn:
                yield conn

    async def setup(self) -> None:
        """Create or upgrade the tables; idempotent and safe to run from many workers."""
        async with self._connection() as conn:
            await self._setup(conn)

    async def _setup(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            for sql, params in _SETUP_PREAMBLE:
                await cur.execute(sql, params)
            await cur.execute(_CURRENT_VERSION)
            current = _version_of(await cur.fetchone())
            for sql, params in _migration_steps(current):
                await cur.execute(sql, params)
        self._is_setup = True

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Validate every op, then run them in order in one transaction."""
        prepared = _prepare(ops)
        now = _now()
        async with self._connection() as conn:
            if not self._is_setup:
                await self._setup(conn)
            pending: list[tuple[psycopg.AsyncCursor[Any], Callable[[list[Any]], Result]]] = []
            async with _asending(conn, self.pipeline) as flush, conn.transaction():
                for op, payload in prepared:
                    sql, params, decode = _plan(op, payload, now)
                    cur = conn.cursor(row_factory=tuple_row)
                    await cur.execute(sql, params)
                    pending.append((cur, decode))
                await flush()
                return [decode(await _arows(cur)) for cur, decode in pending]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run :meth:`abatch` on the store's event loop from another thread and wait."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self.loop is None:
            raise RuntimeError(
                "AsyncPostgresStore has no event loop yet: create it inside a running loop "
                "(or await one of its async methods first) before calling sync methods"
            )
        if running is self.loop:
            raise asyncio.InvalidStateError(
                "Synchronous AsyncPostgresStore calls from the event loop thread would "
                "deadlock; use the async methods (aget, aput, asearch, ...) instead"
            )
        ops = list(ops)
        _prepare(ops)  # fail fast in the caller's thread on invalid input
        return asyncio.run_coroutine_threadsafe(self.abatch(ops), self.loop).result()


class PoolConfig(TypedDict, total=False):
    """Connection-pool options for ``from_conn_string(..., pool_config=...)``."""

    min_size: int
    max_size: int
    kwargs: dict[str, Any]


def _pool_args(config: PoolConfig) -> dict[str, Any]:
    """``psycopg_pool`` arguments: autocommit connections, plus the caller's options."""
    unknown = set(config) - set(PoolConfig.__annotations__)
    if unknown:
        raise ValueError(
            f"pool_config has unknown keys {sorted(unknown)}; expected min_size, max_size, kwargs"
        )
    return {
        "min_size": config.get("min_size", 1),
        "max_size": config.get("max_size", 4),
        "kwargs": {"autocommit": True, **config.get("kwargs", {})},
    }


@contextmanager
def _sending(conn: psycopg.Connection[Any], pipeline: bool) -> Iterator[Callable[[], None]]:
    """Pipeline mode for one batch when asked; yields the call that gets every result in."""
    if not pipeline:
        yield lambda: None
        return
    with conn.pipeline() as pipe:
        yield pipe.sync


@asynccontextmanager
async def _asending(
    conn: psycopg.AsyncConnection[Any], pipeline: bool
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """:func:`_sending` for an async connection."""
    if not pipeline:

        async def nothing() -> None:
            return None

        yield nothing
        return
    async with conn.pipeline() as pipe:
        yield pipe.sync


def _rows(cur: psycopg.Cursor[Any]) -> list[Any]:
    """All rows of ``cur``'s statement (results already in), or ``[]`` when it has none."""
    with cur:
        return cur.fetchall() if cur.description else []


async def _arows(cur: psycopg.AsyncCursor[Any]) -> list[Any]:
    """:func:`_rows` for an async cursor."""
    async with cur:
        return await cur.fetchall() if cur.description else []


def _reject_index(store_name: str, index: Any) -> None:
    """The PostgreSQL stores keep no vectors yet: say so at construction, not at search."""
    if index is not None:
        raise SemanticSearchNotSupportedError(
            f"{store_name}(index=...) asks for semantic search, which {store_name} does not "
            "support yet; use InMemoryStore or SqliteStore with index=, or create the store "
            "without index="
        )
