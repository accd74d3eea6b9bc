"""``AsyncPostgresSaver``: the Postgres saver for asyncio code, on psycopg's async API.

    async with AsyncPostgresSaver.from_conn_string("postgresql://user@host/db") as saver:
        await saver.setup()
        graph = builder.compile(checkpointer=saver)

Same storage, locking and conflict rule as ``PostgresSaver`` (the operations are shared).
Takes a ``psycopg.AsyncConnection`` (operations take turns on it) or a
``psycopg_pool.AsyncConnectionPool``. The sync methods work only from a thread other than
the event loop's (see ``AsyncSqlSaver``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import psycopg
    from psycopg.rows import tuple_row
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "The Postgres savers need psycopg 3: pip install 'threadloom[postgres]'"
    ) from exc

from threadloom.checkpoint._sql import Op, Query, drive_async
from threadloom.checkpoint._sqlsaver import AsyncSqlSaver
from threadloom.checkpoint.base import SerializerProtocol
from threadloom.checkpoint.postgres import DIALECT, MIGRATIONS, pg_sql

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

__all__ = ["AsyncPostgresSaver"]

T = TypeVar("T")


async def _execute(cursor: psycopg.AsyncCursor[Any], query: Query) -> list[tuple[Any, ...]] | None:
    await cursor.execute(pg_sql(query.sql), query.params)
    return await cursor.fetchall() if query.fetch else None


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
            yield cls(conn, serde=serde)

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

    async def _arun(self, op: Op[T], *, write: bool) -> T:
        async with (
            self._connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cursor,
        ):
            return await drive_async(op, lambda q: _execute(cursor, q))
