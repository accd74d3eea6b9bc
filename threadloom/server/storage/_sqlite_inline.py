"""Blocking SQLite calls of the embedded server run right on the event loop when they
cannot wait.

A call handed to a worker thread costs a hop there and back (a future, a wake-up of the
loop, and the GIL changing hands twice, which under load waits for the running thread's
switch interval) - more than the point lookups and small writes a run makes. So
``Inline.run`` calls it right here when:

* the database never makes a reader wait for a writer (WAL, or a private in-memory
  database), and
* the connection is free: its lock (shared by the saver, the store and the server's
  records) is taken without waiting; if another thread holds it, the caller hops as
  before - the event loop never waits for a lock;
* no other connection (another process) holds a lock the call needs: on the loop the
  connection's busy timeout is 0 (``ConnectionLock``), so ``BEGIN IMMEDIATE`` while
  another process writes fails at once instead of waiting; the call then runs again in
  a thread, where the connection's own timeout applies.

The caller then still lets the other tasks run once (``asyncio.sleep(0)``), as it did
while its call was in the thread: a task that loops over such calls must not starve
the rest of the loop (the approval feed's tests toggle a thread's status in one task
while another looks at the pending approvals in a loop).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from threadloom.checkpoint.base import (
    AuditRecord,
    ChannelVersions,
    Checkpoint,
    CheckpointTuple,
)
from threadloom.checkpoint.base import CheckpointMetadata as Metadata
from threadloom.checkpoint.sqlite import SqliteSaver

__all__ = ["BUSY", "ConnectionLock", "Inline", "LoopSqliteSaver"]

T = TypeVar("T")

#: what ``Inline.run`` returns when the call has to go to a thread instead
BUSY: Any = object()


class ConnectionLock:
    """The connection's re-entrant lock (the saver's, the store's and the records'),
    which also keeps the connection's busy timeout right for whoever holds it: 0 while
    a call runs on the event loop (``try_on_loop``; SQLite answers "locked" at once
    instead of making the loop wait), the connection's own timeout for every other
    holder. The timeout is changed (a ``PRAGMA``) only when the kind of holder changes,
    so a server whose statements all run on the loop never changes it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._lock = threading.RLock()
        self._depth = 0  # how many times the holder holds it (changed only by the holder)
        self._no_wait = False  # the busy timeout is 0 now
        self._timeout_ms = 0  # the connection's own busy timeout, read at the first switch

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not self._lock.acquire(blocking, timeout):
            return False
        self._depth += 1
        if self._depth == 1 and self._no_wait:
            self._set_timeout(self._timeout_ms)
            self._no_wait = False
        return True

    def try_on_loop(self) -> bool:
        """Take the lock if it is free, with the busy timeout at 0; False if taken."""
        if not self._lock.acquire(blocking=False):
            return False
        self._depth += 1
        if self._depth == 1 and not self._no_wait:
            if not self._timeout_ms:
                self._timeout_ms = int(self.conn.execute("PRAGMA busy_timeout").fetchone()[0])
            self._set_timeout(0)
            self._no_wait = True
        return True

    def release(self) -> None:
        self._depth -= 1
        self._lock.release()

    def may_wait(self) -> bool:
        """Whether the holder may wait for other writers (False on the event loop)."""
        return not self._no_wait

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _set_timeout(self, ms: int) -> None:
        self.conn.execute(f"PRAGMA busy_timeout = {int(ms)}")


class Inline:
    """Runs a call on the connection in the calling thread when that cannot wait (see
    the module docstring); ``ready()`` says whether the database is set up and never
    makes readers wait."""

    def __init__(self, conn: sqlite3.Connection, lock: ConnectionLock,
                 ready: Callable[[], bool]) -> None:
        self.conn = conn
        self.lock = lock
        self.ready = ready

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, or ``BUSY`` (nothing done) when it would have to wait."""
        if not self.ready() or not self.lock.try_on_loop():
            return cast(T, BUSY)
        try:
            return fn(*args)
        except sqlite3.OperationalError as exc:
            # another connection holds a lock the call needs: its transaction (begun
            # or not) was rolled back; the caller runs it again in a thread, waiting
            if "locked" in str(exc) and not self.conn.in_transaction:
                return cast(T, BUSY)
            raise
        finally:
            self.lock.release()


class LoopSqliteSaver(SqliteSaver):
    """The server's ``SqliteSaver``: its writes during a run, and the audit log's reads
    and writes, run in the calling thread too when the connection is free (``Inline``);
    else in a worker thread, as ``SqliteSaver``'s do."""

    def __init__(self, conn: sqlite3.Connection, **kwargs: Any) -> None:
        super().__init__(conn, **kwargs)
        self._runner.lock = self.lock = ConnectionLock(conn)  # type: ignore[assignment]
        self._runner.may_wait = self.lock.may_wait  # the loop never waits for the writer lock
        self.inline = Inline(conn, self.lock, lambda: self.is_setup and self._reads_never_wait)

    async def _here(self, fn: Callable[..., T], *args: Any) -> T:
        done = self.inline.run(fn, *args)
        if done is BUSY:
            return await asyncio.to_thread(fn, *args)
        await asyncio.sleep(0)  # other tasks run meanwhile, as they would during a hop
        return done

    async def aput(self, config: dict[str, Any], checkpoint: Checkpoint, metadata: Metadata,
                   new_versions: ChannelVersions) -> dict[str, Any]:
        return await self._here(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: dict[str, Any], writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        await self._here(self.put_writes, config, writes, task_id, task_path)

    async def aput_with_writes(
        self, config: dict[str, Any], checkpoint: Checkpoint, metadata: Metadata,
        new_versions: ChannelVersions, writes: Sequence[tuple[str, Any]], task_id: str,
        task_path: str = "",
    ) -> dict[str, Any]:
        return await self._here(self.put_with_writes, config, checkpoint, metadata,
                                new_versions, writes, task_id, task_path)

    async def asettle(self, config: dict[str, Any]) -> None:
        await self._here(self.settle, config)

    async def aput_audit(self, thread_id: str, records: Sequence[AuditRecord]
                         ) -> list[AuditRecord]:
        return await self._here(self.put_audit, thread_id, records)

    async def alist_audit(self, thread_id: str) -> list[AuditRecord]:
        return await self._here(self.list_audit, thread_id)

    async def aget_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        return await self._here(self.get_tuple, config)
