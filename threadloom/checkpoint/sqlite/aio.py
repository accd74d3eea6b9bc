"""``AsyncSqliteSaver``: the SQLite saver for asyncio code.

It runs the stdlib ``sqlite3`` driver in worker threads (``asyncio.to_thread``), so the
event loop never blocks on disk I/O and no extra dependency is needed. Its sync methods
work too (they are ``SqliteSaver``'s): that lets a sync graph share the saver, but called
from the event loop thread they block it, so prefer the ``a``-prefixed methods there.

    async with AsyncSqliteSaver.from_conn_string("checkpoints.db") as saver:
        graph = builder.compile(checkpointer=saver)
        await graph.ainvoke(inputs, config)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from threadloom.checkpoint.base import SerializerProtocol
from threadloom.checkpoint.sqlite import Durability, SqliteSaverBase, _connect
from threadloom.checkpoint.trace import Trace

__all__ = ["AsyncSqliteSaver"]


class AsyncSqliteSaver(SqliteSaverBase):
    """Same storage and behaviour as ``SqliteSaver``; ``setup`` and ``from_conn_string``
    are async, and every operation runs off the event loop."""

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        durability: Durability = "normal",
        trace: Trace | None = None,
    ) -> AsyncIterator[AsyncSqliteSaver]:
        """Open ``conn_string`` (path, ``":memory:"`` or ``file:`` URI), set up the schema,
        and close the connection on exit. ``durability``: see ``SqliteSaver``."""
        conn = await asyncio.to_thread(_connect, conn_string)
        try:
            saver = cls(conn, serde=serde, durability=durability, trace=trace)
            await saver.setup()
            yield saver
        finally:
            await asyncio.to_thread(conn.close)

    async def setup(self) -> None:
        """Create or migrate the tables (idempotent; safe from several processes at once)."""
        await asyncio.to_thread(self._setup_sync)
