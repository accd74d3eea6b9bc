"""``AsyncPostgresSaver``: the Postgres saver for asyncio code, on psycopg's async API.

    async with AsyncPostgresSaver.from_conn_string("postgresql://user@host/db") as saver:
        await saver.setup()
        graph = builder.compile(checkpointer=saver)

Same storage, locking, round trips, run locks and conflict rule as ``PostgresSaver`` (the
operations are shared). Takes a ``psycopg.AsyncConnection`` (operations take turns on it)
or a ``psycopg_pool.AsyncConnectionPool``. The sync methods work only from a thread other
than the event loop's (see ``AsyncSqlSaver``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import psycopg
    from psycopg.pq import PipelineStatus, TransactionStatus
    from psycopg.rows import tuple_row
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "The Postgres savers need psycopg 3: pip install 'threadloom[postgres]'"
    ) from exc

from threadloom.checkpoint._sql import Batch, Op, Query, drive_async
from threadloom.checkpoint._sqlsaver import AsyncSqlSaver, RunGuard, thread_busy_error
from threadloom.checkpoint.base import SerializerProtocol
from threadloom.checkpoint.postgres import (
    DIALECT,
    MIGRATIONS,
    _flush_wal,
    _is_pool,
    in_caller_pipeline,
    lock_conninfo,
    pg_sql,
    run_lock_key,
)
from threadloom.checkpoint.postgres._fencing import RunLockHolders, session_up
from threadloom.checkpoint.postgres._runsession import (
    RUN_LOCK_SQL,
    RUN_UNLOCK_FLUSH_SQL,
    RUN_UNLOCK_SQL,
    SESSION_SQL,
)

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

__all__ = ["AsyncPostgresSaver"]

T = TypeVar("T")


async def _execute(cursor: psycopg.AsyncCursor[Any], query: Query) -> list[tuple[Any, ...]] | None:
    await cursor.execute(pg_sql(query.sql), query.params)
    return await cursor.fetchall() if query.fetch else None


async def _pipeline(conn: psycopg.AsyncConnection[Any], batch: Batch) -> list[Any]:
    """``postgres._pipeline`` for an async connection: one round trip, all or none."""
    if len(batch) == 1 and conn.pgconn.pipeline_status == PipelineStatus.OFF:
        # (on a connection the caller keeps in pipeline mode, a lone statement still needs
        # the Sync of a pipeline block of its own, or it is never sent nor committed)
        async with conn.cursor(row_factory=tuple_row) as cursor:
            return [await _execute(cursor, batch[0])]
    cursors: list[psycopg.AsyncCursor[Any]] = []
    try:
        async with conn.pipeline():
            for query in batch:
                cursor = conn.cursor(row_factory=tuple_row)
                cursors.append(cursor)
                await cursor.execute(pg_sql(query.sql), query.params)
        return [
            await c.fetchall() if q.fetch else None for c, q in zip(cursors, batch, strict=True)
        ]
    finally:
        for cursor in cursors:
            await cursor.close()


@asynccontextmanager
async def _in_pipeline(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[Any]:
    """``postgres._in_pipeline`` for an async connection."""
    cursors: list[psycopg.AsyncCursor[Any]] = []

    async def execute(query: Query) -> list[tuple[Any, ...]] | None:
        cursor = conn.cursor(row_factory=tuple_row)
        cursors.append(cursor)
        return await _execute(cursor, query)

    try:
        async with conn.pipeline():
            yield execute
    finally:
        for cursor in cursors:
            await cursor.close()


@asynccontextmanager
async def _autocommit(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    if conn.autocommit:
        yield
        return
    await conn.set_autocommit(True)
    try:
        yield
    finally:
        await conn.set_autocommit(False)


class AsyncPostgresSaver(AsyncSqlSaver):
    """A saver on a psycopg 3 ``AsyncConnection`` or ``AsyncConnectionPool``."""

    dialect = DIALECT

    def __init__(
        self,
        conn: psycopg.AsyncConnection[Any] | AsyncConnectionPool,
        *,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.conn = conn
        self._lock = asyncio.Lock()
        self._conninfo: str | None = None
        self._runs = RunGuard()
        self._lock_conn: psycopg.AsyncConnection[Any] | None = None
        self._lock_schema = ""
        self._lock_mutex = asyncio.Lock()
        # thread id -> the lock connection holding its run lock, and the lock's key
        self._holders: RunLockHolders[psycopg.AsyncConnection[Any]] = RunLockHolders()
        #: on a pool, keep the run-lock connection open between runs (instead of
        #: connecting for every run); its owner then calls ``aclose_run_locks`` before
        #: closing the pool (the server's storage does)
        self.keep_lock_connection = False
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls, conn_string: str, *, serde: SerializerProtocol | None = None
    ) -> AsyncIterator[AsyncPostgresSaver]:
        """Connect to ``conn_string`` (autocommit) and close the connection on exit.

        Call ``await saver.setup()`` once before first use.
        """
        async with await psycopg.AsyncConnection.connect(conn_string, autocommit=True) as conn:
            saver = cls(conn, serde=serde)
            saver._conninfo = conn_string
            try:
                yield saver
            finally:
                await saver.aclose_run_locks()

    async def setup(self) -> None:
        """Create or migrate the tables; idempotent and safe from concurrent processes."""
        self._remember_loop()
        await self._arun(self._core.migrate(MIGRATIONS), write=True)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if isinstance(self.conn, psycopg.AsyncConnection):
            async with self._lock:
                yield self.conn
        else:
            async with self.conn.connection() as conn:
                yield conn

    async def _arun(self, op: Op[T], *, write: bool, atomic: bool = True) -> T:
        async with self._connection() as conn:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                async with conn.transaction(), conn.cursor(row_factory=tuple_row) as cursor:
                    return await drive_async(op, lambda q: _execute(cursor, q))
            async with _autocommit(conn):
                # one implicit transaction (see PostgresSaver._run)
                if atomic or in_caller_pipeline(conn):
                    async with _in_pipeline(conn) as execute:
                        return await drive_async(op, execute)
                async with conn.cursor(row_factory=tuple_row) as cursor:
                    return await drive_async(
                        op, lambda q: _execute(cursor, q), lambda b: _pipeline(conn, b)
                    )

    # -- one run per thread ------------------------------------------------------------

    @asynccontextmanager
    async def alock_thread(self, thread_id: str) -> AsyncIterator[None]:
        """Hold ``thread_id`` for one run; raise ``CheckpointConflictError`` at once when
        another run holds it. See ``PostgresSaver.lock_thread``."""
        self._remember_loop()
        thread_id = str(thread_id)
        with self._runs.hold(thread_id):
            key = await self._take_run_lock(thread_id)
            try:
                yield
            finally:
                await self._give_run_lock(
                    thread_id,
                    key,
                    flush=self._runs.unflushed(thread_id),
                    last=self._runs.alone(thread_id),
                )

    @contextmanager
    def lock_thread(self, thread_id: str) -> Iterator[None]:
        """``alock_thread`` for sync runs (from a thread other than the event loop's)."""
        thread_id = str(thread_id)
        with self._runs.hold(thread_id):
            key = self._bridge(self._take_run_lock(thread_id))
            try:
                yield
            finally:
                flush = self._runs.unflushed(thread_id)
                last = self._runs.alone(thread_id)
                self._bridge(self._give_run_lock(thread_id, key, flush=flush, last=last))

    async def aclose_run_locks(self) -> None:
        """Close the run-lock connection (releasing any run locks it still holds)."""
        async with self._lock_mutex:
            conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            await conn.close()

    async def _lock_connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self._lock_conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        conninfo, kwargs = lock_conninfo(self.conn, self._conninfo)
        conn = await psycopg.AsyncConnection.connect(conninfo, **kwargs, autocommit=True)
        try:
            row = await (await conn.execute(SESSION_SQL)).fetchone()
        except BaseException:
            await conn.close()
            raise
        self._lock_schema = str(row[0]) if row else ""
        self._lock_conn = conn
        weakref.finalize(self, _close_quietly, conn)
        return conn

    async def _take_run_lock(self, thread_id: str) -> int:
        async with self._lock_mutex:
            for attempt in range(2):
                conn = await self._lock_connection()
                key = run_lock_key(self._lock_schema, thread_id)
                try:
                    row = await (await conn.execute(RUN_LOCK_SQL, (key,))).fetchone()
                    break
                except psycopg.OperationalError:
                    self._lock_conn = None
                    await conn.close()
                    if attempt:
                        raise
            if row and row[0]:
                self._holders.hold(thread_id, conn, key)
        if not (row and row[0]):
            raise thread_busy_error(thread_id)
        return key

    async def _afence(self, config: dict[str, Any], *, checkpoint: bool) -> None:
        """The fencing check before each write of a run holding its thread's run lock
        (see ``_fencing``, and ``PostgresSaver._fence``): if the connection holding the
        lock ended, the lock is taken again on a new one, or the run stops with
        ``RunLockLostError`` before writing anything more."""
        if not self._holders:
            return
        thread_id = str((config.get("configurable") or {}).get("thread_id"))
        async with self._lock_mutex:
            held = self._holders.get(thread_id)
            if held is None:
                return
            holder, key = held
            current = self._lock_conn
            if holder is current and session_up(holder):
                return
            if current is not None and not session_up(current):
                self._lock_conn = None
                await current.close()
            if holder is not self._lock_conn:
                await holder.close()
            try:
                conn = await self._lock_connection()
                row = await (await conn.execute(RUN_LOCK_SQL, (key,))).fetchone()
            except psycopg.Error as exc:
                raise self._holders.failed(thread_id, exc) from exc
            self._holders.retaken(thread_id, conn, key, bool(row and row[0]))

    async def _give_run_lock(
        self, thread_id: str, key: int, *, flush: bool = False, last: bool = False
    ) -> None:
        """Release the run lock; with ``flush``, also make the run's relaxed commits
        durable first (see ``PostgresSaver._give_run_lock``). ``last``: no other run of
        this saver holds a lock; a pool-backed saver then closes its run-lock connection,
        so closing the pool leaves nothing of the saver open."""
        async with self._lock_mutex:
            self._holders.drop(thread_id)
            conn = self._lock_conn
            if conn is not None and not conn.closed and not conn.broken:
                try:
                    await conn.execute(RUN_UNLOCK_FLUSH_SQL if flush else RUN_UNLOCK_SQL, (key,))
                    if last and _is_pool(self.conn) and not self.keep_lock_connection:
                        self._lock_conn = None
                        await conn.close()
                    return
                except psycopg.Error:
                    self._lock_conn = None
                    await conn.close()
        if flush:
            await self._arun(_flush_wal(), write=True, atomic=False)


def _close_quietly(conn: psycopg.AsyncConnection[Any]) -> None:
    """Drop the socket of an async connection without an event loop (at exit)."""
    try:
        if not conn.closed:
            conn.pgconn.finish()
    except Exception:
        pass
