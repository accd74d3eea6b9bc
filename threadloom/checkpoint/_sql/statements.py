"""Vocabulary shared by the SQL savers: statements, drivers, dialects, table names.

Each saver operation (``read``, ``write``, ``housekeeping``) is a *generator* that yields
``Query`` objects and receives their rows, or yields a ``Batch`` (a tuple of queries that
do not depend on each other's results) and receives one result per query. A backend
"driver" runs it
(``drive_sync`` / ``drive_async``): either the whole operation in one transaction, or -
for the hot-path operations, whose every step is self-contained - each query or batch as
its own atomic unit, a batch in a single round trip (psycopg's pipeline mode: the queries
are sent together and run in one implicit transaction). The two databases differ only in
what ``Dialect`` holds (locking, JSON filtering, byte-length functions, casts); all SQL is
written with ``?`` placeholders (the Postgres driver rewrites them to ``%s``).

Hostile input never reaches SQL text: thread ids, namespaces, checkpoint ids and filter
values are parameters; filter keys are validated against ``FILTER_KEY_RE``
(``_stored.records``) before they are even turned into (parameterized) JSON paths. Table
names are constants.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar, cast

from threadloom.checkpoint._stored.records import PAGE_SIZE, canonical_json

__all__ = [
    "BLOBS",
    "CHECKPOINTS",
    "EXPIRE_BATCH",
    "LISTING_MIGRATION",
    "THREADS",
    "LONG_PAGE_SIZE",
    "MAX_PARAMS",
    "MIGRATIONS_TABLE",
    "WRITES",
    "Batch",
    "Dialect",
    "Op",
    "PostgresDialect",
    "Query",
    "SqliteDialect",
    "chunks",
    "drive_async",
    "drive_sync",
    "page_size",
    "resumed",
    "thread_refresh",
    "thread_upsert",
    "threads_migration",
    "values_cte",
]

CHECKPOINTS = "threadloom_checkpoints"
BLOBS = "threadloom_blobs"
WRITES = "threadloom_writes"
MIGRATIONS_TABLE = "threadloom_migrations"
THREADS = "threadloom_threads"

# Schema v3, both dialects: ``list`` pages walk an index in their order (newest checkpoint
# id first, keyset after the last row), within a thread or over all threads, so a page
# costs the same whatever the table holds (``list_threads`` and ``expire_paused`` read
# ``THREADS`` since v4: ``threads_migration``). ``IF NOT EXISTS``: an existing database
# gains them at its next ``setup()``.
LISTING_MIGRATION: tuple[str, ...] = (
    f"CREATE INDEX IF NOT EXISTS {CHECKPOINTS}_listed ON {CHECKPOINTS} "
    "(checkpoint_id, thread_id, checkpoint_ns)",
    f"CREATE INDEX IF NOT EXISTS {CHECKPOINTS}_thread_listed ON {CHECKPOINTS} "
    "(thread_id, checkpoint_id, checkpoint_ns)",
    f"CREATE INDEX IF NOT EXISTS {CHECKPOINTS}_recent ON {CHECKPOINTS} (created_at)",  # (to v4)
)


def threads_migration(key: str, time: str, options: str = "") -> tuple[str, ...]:
    """Schema v4: ``threadloom_threads``, one row per thread that has checkpoints - its
    newest ``created_at`` and newest checkpoint id (each the maximum over all of the
    thread's checkpoints, in every namespace) - and an index in the order
    ``list_threads`` returns threads. ``list_threads(limit=N)`` reads N index entries and
    each batch of ``expire_paused`` reads its own threads' entries, however many
    checkpoints the table or a thread holds. A database made before it gets the rows
    from its checkpoints, in the migration's transaction. ``key`` / ``time``: the
    dialect's column types of ids and of ``created_at``; ``options``, the table's (SQLite:
    ``WITHOUT ROWID``, one B-tree keyed by thread id instead of a rowid table and an
    index of its key). A put writes the row in place of
    v3's index of ``created_at`` on the checkpoints, which this drops: a put keeps as many
    indexes up to date as before."""
    return (
        f"CREATE TABLE IF NOT EXISTS {THREADS} (thread_id {key} PRIMARY KEY, "
        f"created_at {time} NOT NULL, checkpoint_id {key}){options}",
        f"CREATE INDEX IF NOT EXISTS {THREADS}_recent ON {THREADS} "
        "(created_at DESC, checkpoint_id DESC, thread_id)",
        f"INSERT INTO {THREADS} (thread_id, created_at, checkpoint_id) "
        f"SELECT thread_id, MAX(created_at), MAX(checkpoint_id) FROM {CHECKPOINTS} "
        f"WHERE thread_id NOT IN (SELECT thread_id FROM {THREADS}) GROUP BY thread_id",
        # v3's index for finding threads by time: nothing reads it now, and every put
        # would keep paying for it
        f"DROP INDEX IF EXISTS {CHECKPOINTS}_recent",
    )


EXPIRE_BATCH = 200  # threads deleted per transaction by ``expire_paused``
LONG_PAGE_SIZE = 1000  # checkpoints loaded by each round trip of ``list`` after the first


def page_size(first: bool, remaining: int | None, long_page: int = LONG_PAGE_SIZE) -> int:
    """Checkpoints to load by ``list``'s next round trip: a short first page
    (``PAGE_SIZE``: what ``limit=10``, a page of a UI, reads), then ``long_page`` ones
    (the dialect's ``long_page``: over a network, a listing read through pays one round
    trip, one query plan and one value-cache pass per 1,000 rows, not 100)."""
    size = PAGE_SIZE if first else long_page
    return size if remaining is None else min(size, remaining)


MAX_PARAMS = 999  # per statement: the lowest limit of any SQLite build still in use

T = TypeVar("T")
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Query:
    """One statement for a driver to run; ``fetch`` says whether rows are sent back."""

    sql: str
    params: Sequence[Any] = ()
    fetch: bool = False


Batch = tuple[Query, ...]
"""Queries sent together; none depends on another's result. The op receives a list with
one entry per query (its rows, or None). A batch is atomic: it runs in one transaction."""

Op = Generator[Query | Batch, Any, T]


@lru_cache(maxsize=16)
def thread_upsert(source: str = "") -> str:
    """The statement that keeps a thread's ``THREADS`` row up to date as a checkpoint is
    put: parameters thread id, ``created_at``, checkpoint id; each column keeps the
    larger value (rows may arrive in any order). ``source``: a ``FROM`` / ``WHERE`` tail
    that makes it conditional, as the put's other inserts are."""
    def newer(column: str) -> str:
        return (
            f"{column} = CASE WHEN excluded.{column} > {THREADS}.{column} "
            f"THEN excluded.{column} ELSE {THREADS}.{column} END"
        )

    return (
        f"INSERT INTO {THREADS} (thread_id, created_at, checkpoint_id) SELECT ?, ?, ?"
        f"{source} ON CONFLICT (thread_id) DO UPDATE SET {newer('created_at')}, "
        f"{newer('checkpoint_id')}"
    )


def thread_refresh(thread_id: str) -> Op[None]:
    """Recompute a thread's ``THREADS`` row from its checkpoints (none left: no row),
    after some of them were deleted or copied in."""
    yield Query(f"DELETE FROM {THREADS} WHERE thread_id = ?", (thread_id,))
    yield Query(
        f"INSERT INTO {THREADS} (thread_id, created_at, checkpoint_id) "
        f"SELECT thread_id, MAX(created_at), MAX(checkpoint_id) FROM {CHECKPOINTS} "
        "WHERE thread_id = ? GROUP BY thread_id",
        (thread_id,),
    )
    return None


def drive_sync(
    op: Op[T],
    execute: Callable[[Query], Rows | None],
    execute_batch: Callable[[Batch], list[Rows | None]] | None = None,
) -> T:
    """Run ``op`` to completion, executing each query it yields with ``execute`` and each
    batch with ``execute_batch`` (default: its queries one after the other)."""
    try:
        step = next(op)
        while True:
            if isinstance(step, Query):
                result: Any = execute(step)
            elif execute_batch is not None:
                result = execute_batch(step)
            else:
                result = [execute(q) for q in step]
            step = op.send(result)
    except StopIteration as stop:
        return cast(T, stop.value)  # what a generator of T returns
    finally:
        op.close()


def resumed(first: Query | Batch, op: Op[T]) -> Op[T]:
    """``op``, whose first step (``first``) was already taken, as an op to drive anew."""
    result = yield first
    while True:
        try:
            step = op.send(result)
        except StopIteration as stop:
            return cast(T, stop.value)  # what a generator of T returns
        result = yield step


async def drive_async(
    op: Op[T],
    execute: Callable[[Query], Any],
    execute_batch: Callable[[Batch], Any] | None = None,
) -> T:
    """``drive_sync`` for coroutine functions ``execute`` / ``execute_batch``."""
    try:
        step = next(op)
        while True:
            if isinstance(step, Query):
                result: Any = await execute(step)
            elif execute_batch is not None:
                result = await execute_batch(step)
            else:
                result = [await execute(q) for q in step]
            step = op.send(result)
    except StopIteration as stop:
        return cast(T, stop.value)  # what a generator of T returns
    finally:
        op.close()


def chunks(items: Sequence[T], width: int, reserve: int = 0) -> Iterator[Sequence[T]]:
    """Slices of ``items`` small enough for rows of ``width`` parameters each (plus
    ``reserve`` other parameters in the same statement)."""
    size = max(1, (MAX_PARAMS - reserve) // width)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def values_cte(name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Query:
    """``WITH name(cols) AS (VALUES (?, ...), ...)``: a parameterized key list to join on."""
    one = "(" + ", ".join("?" for _ in columns) + ")"
    sql = f"WITH {name}({', '.join(columns)}) AS (VALUES {', '.join(one for _ in rows)}) "
    return Query(sql, [v for row in rows for v in row])


# -- dialects ------------------------------------------------------------------------


@dataclass(frozen=True)
class Dialect:
    """What differs between the databases. SQL here uses ``?`` placeholders throughout."""

    name: str
    lock_thread: str | None  # takes the per-thread write lock; one parameter: thread_id
    lock_migrations: str | None
    metadata_param: str  # placeholder for a JSON metadata value
    blob_param: str  # placeholder for a bytes value whose type the database must not guess
    blob_len: str  # SQL function giving a blob's size in bytes
    metadata_len: str  # SQL expression giving the metadata column's size in bytes
    writable_ctes: bool = False  # INSERT inside WITH: a put can be a single statement
    # An SQL expression that makes the current transaction commit without waiting for its
    # flush (see RunGuard); an expression, so a write can fold it into its one statement
    relaxed_commit: str | None = None
    # an SQL expression giving the ``run_id`` of a checkpoint row's metadata, as text
    run_id_sql: str = "NULL"
    # LATERAL subqueries: a join of a few keys on a big table can be made to probe its
    # index per key (PostgreSQL would otherwise hash the whole table for a hundred keys
    # while its statistics undercount it); SQLite probes per key anyway
    lateral: bool = False
    # an SQL expression giving the rows the previous statement of the connection wrote,
    # where the database has one (a put's thread row then follows its checkpoint's
    # insert without evaluating the put's checks again)
    changes: str | None = None
    # checkpoints a page of ``list`` loads after the first (see ``page_size``)
    long_page: int = LONG_PAGE_SIZE
    # statements run in this process (SQLite): one may wait for the rows of the one before
    # at no round trip's cost (a page of ``list`` then reads its writes by the page's range)
    in_process: bool = False

    def probe(self, table: str, alias: str, keys: str, columns: Sequence[str], one: bool) -> str:
        """``FROM`` text joining the rows of ``keys`` (a CTE) to ``table`` (as ``alias``)
        on ``columns``, through the table's index once per key; ``one``: each key
        matches at most one row (its primary key)."""
        on = " AND ".join(f"{alias}.{c} = {keys}.{c}" for c in columns)
        if not self.lateral:
            return f"{table} {alias} JOIN {keys} ON {on}"
        # LIMIT / OFFSET keep the planner from pulling the subquery up into a hash join
        cap = "LIMIT 1" if one else "OFFSET 0"
        return f"{keys} CROSS JOIN LATERAL (SELECT * FROM {table} {alias} WHERE {on} {cap}) {alias}"

    def filter_sql(self, filter: dict[str, Any]) -> tuple[list[str], list[Any]]:
        raise NotImplementedError


class SqliteDialect(Dialect):
    def filter_sql(self, filter: dict[str, Any]) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for key, value in filter.items():
            path = f'$."{key}"'  # key already matched FILTER_KEY_RE; the path is a parameter
            if value is None:
                clauses.append("json_type(metadata, ?) = 'null'")
                params.append(path)
            elif isinstance(value, bool):
                clauses.append("json_type(metadata, ?) = ?")
                params += [path, "true" if value else "false"]
            elif isinstance(value, int | float):
                clauses.append(
                    "json_type(metadata, ?) IN ('integer', 'real') "
                    "AND json_extract(metadata, ?) = ?"
                )
                params += [path, path, value]
            elif isinstance(value, str):
                clauses.append("json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?")
                params += [path, path, value]
            else:  # dict / list: compare canonical JSON (metadata is stored key-sorted)
                clauses.append(
                    "json_type(metadata, ?) IN ('object', 'array') "
                    "AND json_extract(metadata, ?) = ?"
                )
                params += [path, path, canonical_json(value)]
        return clauses, params


class PostgresDialect(Dialect):
    def filter_sql(self, filter: dict[str, Any]) -> tuple[list[str], list[Any]]:
        # Containment finds candidates (and can use a GIN index); for dict/list values it
        # would also match supersets, so those are compared exactly as well.
        clauses, params = ["metadata @> ?::jsonb"], [canonical_json(filter)]
        for key, value in filter.items():
            if isinstance(value, dict | list):
                clauses.append("metadata -> ? = ?::jsonb")
                params += [key, canonical_json(value)]
        return clauses, params
