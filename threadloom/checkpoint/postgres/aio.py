"""``AsyncPostgresSaver``: the Postgres saver for asyncio code, on psycopg's async API.

    async with AsyncPostgresSaver.from_conn_string("postgresql://user@host/db") as saver:
        await saver.setup()
        graph = builder.compile(checkpointer=saver)

Same storage, locking, round trips, run locks and conflict rule as ``PostgresSaver``: the
operations are shared (``_sql.core``), and so is the fast path (``_fastpath``: the head
read sent with the run lock, writes sent ahead with durability="async", prepared head
reads); this module only drives them on asyncio. Takes a ``psycopg.AsyncConnection``
(operations take turns on it) or a ``psycopg_pool.AsyncConnectionPool``. The sync methods
work only from a thread other than the event loop's (see ``AsyncSqlSaver``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

try:
    import psycopg
    from psycopg.pq import PipelineStatus, TransactionStatus
    from psycopg.rows import tuple_row
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "The Postgres savers need psycopg 3: pip install 'threadloom[postgres]'"
    ) from exc

from threadloom.checkpoint._sql.saver import AsyncSqlSaver, Durability, checked_durability
from threadloom.checkpoint._sql.statements import Batch, Op, Query, drive_async
from threadloom.checkpoint._sql.write import PreparedPut
from threadloom.checkpoint.base import CheckpointTuple, SerializerProtocol
from threadloom.checkpoint.postgres import (
    DIALECT,
    MIGRATIONS,
    NORMAL,
    in_caller_pipeline,
    pg_sql,
)
from threadloom.checkpoint.postgres._fastpath import (
    DataOp,
    FastPath,
    Steps,
    lock_conninfo,
)
from threadloom.checkpoint.postgres._runsession import (
    RunSession,
    Wait,
    ready_async,
    wait_async,
)
from threadloom.checkpoint.trace import Trace, traced_op

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


class AsyncPostgresSaver(FastPath, AsyncSqlSaver):
    """A saver on a psycopg 3 ``AsyncConnection`` or ``AsyncConnectionPool``.

    Its run session (run locks, writes sent ahead) is a connection of its own, opened
    in a worker thread and then used only through libpq's nonblocking calls, waited for
    on the event loop; see ``PostgresSaver`` for what the fast path does.
    """

    dialect = DIALECT

    def __init__(
        self,
        conn: psycopg.AsyncConnection[Any] | AsyncConnectionPool,
        *,
        serde: SerializerProtocol | None = None,
        durability: Durability = "normal",
        trace: Trace | None = None,
    ) -> None:
        self.durability = checked_durability(durability, NORMAL)
        super().__init__(serde=serde, trace=trace)
        self.conn = conn
        self._lock = asyncio.Lock()
        self._conninfo: str | None = None
        self._lock_mutex = asyncio.Lock()
        self._init_fast_path()
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        durability: Durability = "normal",
        trace: Trace | None = None,
    ) -> AsyncIterator[AsyncPostgresSaver]:
        """Connect to ``conn_string`` (autocommit) and close the connection on exit.
        ``durability``: see ``PostgresSaver``.

        Call ``await saver.setup()`` once before first use.
        """
        async with await psycopg.AsyncConnection.connect(conn_string, autocommit=True) as conn:
            saver = cls(conn, serde=serde, durability=durability, trace=trace)
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

    async def _arun(
        self,
        op: Op[T],
        *,
        write: bool,
        atomic: bool = True,
        meanwhile: Callable[[], None] | None = None,
    ) -> T:
        """Drive ``op`` on a data connection, once the writes sent ahead landed."""
        self._prefetched.clear()  # anything may change a thread: those reads are stale
        await self._adrain_sent()  # whatever runs next sees the writes sent ahead
        return await self._arun_data(op, write=write, atomic=atomic, meanwhile=meanwhile)

    async def _arun_data(
        self,
        op: Op[T],
        *,
        write: bool,
        atomic: bool = True,
        meanwhile: Callable[[], None] | None = None,
    ) -> T:
        """``PostgresSaver._run_data`` on asyncio."""
        if self.trace is not None:
            op = traced_op(op, self.trace)
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

                    async def execute(query: Query) -> Any:
                        nonlocal meanwhile
                        if meanwhile is not None:  # the first query, sent before the work
                            work, meanwhile = meanwhile, None
                            rows = await wait_async(self._reads.read(conn, query, work))
                            if rows is not None:
                                return rows
                        return await _execute(cursor, query)

                    return await drive_async(op, execute, lambda b: _pipeline(conn, b))

    # -- the fast path's steps, driven on asyncio -------------------------------------

    async def _alocked(self, steps: Steps[T]) -> T:
        async with self._lock_mutex:
            return await self._adrive(steps)

    async def _adrive(self, steps: Steps[T]) -> T:
        """Run ``steps`` (see ``_fastpath``): wait on sockets with the event loop, run
        data ops on a data connection, open run sessions in a worker thread; errors go
        back into the steps."""
        value: Any = None
        error: Exception | None = None
        while True:
            try:
                step = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as stop:
                return cast(T, stop.value)  # what a generator of T returns
            value = error = None
            try:
                if isinstance(step, Wait):
                    session = self._lock_session
                    if session is not None:  # the steps wait on nothing else
                        value = await session.ready_async(step)
                    else:
                        value = await ready_async(step)
                elif isinstance(step, DataOp):
                    value = await self._arun_data(step.op, write=True, atomic=False)
                else:
                    where = lock_conninfo(self.conn, self._conninfo)
                    value = await asyncio.to_thread(RunSession, *where)
            except Exception as exc:
                error = exc

    async def aget_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        self._remember_loop()
        head = self._head_read(config)
        if head is None:
            return await super().aget_tuple(config)
        if head.op is None:
            return head.value
        return await self._arun(head.op, write=False, atomic=False, meanwhile=head.meanwhile)

    async def _afence(self, config: dict[str, Any], *, checkpoint: bool) -> None:
        if self._holders:
            await self._alocked(self._fence_steps(config, checkpoint=checkpoint))

    async def _asend_ahead(
        self,
        thread_id: str,
        first: Query | Batch,
        op: Op[Any],
        again: Callable[[], Op[Any]],
        prepared: PreparedPut | None,
    ) -> bool:
        if not isinstance(first, tuple):
            return False
        self._prefetched.clear()  # a write: reads fetched ahead are stale
        return await self._alocked(
            self._send_ahead_steps(thread_id, first, op, again, prepared)
        )

    async def _adrain_sent(self) -> None:
        session = self._lock_session
        if session is not None and session.sent:
            await self._alocked(self._drain_steps())

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
                flush = self._runs.unflushed(thread_id)
                await self._give_run_lock(thread_id, key, flush=flush)

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
                self._bridge(self._give_run_lock(thread_id, key, flush=flush))

    async def aclose_run_locks(self) -> None:
        """Close the run-lock connection (releasing any run locks it still holds)."""
        async with self._lock_mutex:
            session = self._detach_session()
        if session is not None:
            session.close()

    async def _take_run_lock(self, thread_id: str) -> int:
        return await self._alocked(self._take_run_lock_steps(thread_id))

    async def _give_run_lock(self, thread_id: str, key: int, *, flush: bool = False) -> None:
        await self._alocked(self._give_run_lock_steps(thread_id, key, flush=flush))
