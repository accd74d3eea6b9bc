"""``SqliteSaver``: checkpoints in one SQLite file - the embedded, zero-setup durable saver.

Use it when one machine runs the graph: a laptop, a single server, a desktop app. A paused
thread survives restarts; several processes may share the file (WAL mode; writers take
turns through an ``flock`` queue on ``<database>-writer.lock`` around ``BEGIN IMMEDIATE``,
see ``threadloom.checkpoint.sqlite._writers``). For many machines use ``PostgresSaver``.

    with SqliteSaver.from_conn_string("checkpoints.db") as saver:
        graph = builder.compile(checkpointer=saver)

Storage grows with what changed: values are stored once per channel version, and list
channels that only grew store just their new items (see ``threadloom.checkpoint._values.delta``).
One run at a time per thread is enforced before anything runs by ``lock_thread`` (a lock
on one byte of ``<database>-runs.lock`` named by the thread id's hash, which the kernel
releases when the holder dies, however it dies); a run's ``loop`` checkpoint whose parent is no
longer the newest (the thread was changed outside the run) raises
``CheckpointConflictError``.

Durability: by default (``durability="normal"``) a file database runs in WAL mode with
``PRAGMA synchronous=NORMAL``: a commit is not flushed to disk on its own. Every committed
checkpoint survives the process crashing or being killed; only an operating-system crash
or a power loss can lose the last transactions committed before it (never corrupting the
file). ``durability="full"`` keeps ``synchronous=FULL``: every commit is flushed, at the
cost of an fsync per checkpoint.

Schema (created by ``setup()``, which every method runs on first use; versioned in
``threadloom_migrations``):

* ``threadloom_checkpoints(thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
  type, checkpoint, metadata JSON, created_at)`` - the checkpoint without its values.
* ``threadloom_blobs(thread_id, checkpoint_ns, channel, version, type, blob, base_version,
  root_version)`` - one value per channel version; ``base_version`` set means ``blob``
  holds only the items appended to that version's list.
* ``threadloom_writes(thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type,
  blob, task_path)`` - pending writes.
* ``threadloom_threads(thread_id, created_at, checkpoint_id)`` - each thread's newest
  checkpoint time and id, kept by the writes that change them, indexed in the order
  ``list_threads`` returns threads (so it and ``expire_paused`` read O(page) rows).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from threadloom.checkpoint._sql.audit import SQLITE_MIGRATION
from threadloom.checkpoint._sql.saver import (
    DURABILITIES,
    Durability,
    RunGuard,
    SyncSqlSaver,
    checked_durability,
    thread_busy_error,
)
from threadloom.checkpoint._sql.statements import (
    BLOBS,
    CHECKPOINTS,
    LISTING_MIGRATION,
    WRITES,
    Op,
    Query,
    SqliteDialect,
    drive_sync,
    threads_migration,
)
from threadloom.checkpoint._stored.records import PAGE_SIZE
from threadloom.checkpoint.base import CheckpointTuple, SerializerProtocol
from threadloom.checkpoint.sqlite import _locks
from threadloom.checkpoint.sqlite._writers import WriterLock, writer_lock_path
from threadloom.checkpoint.trace import Trace, traced_op

__all__ = ["SqliteSaver", "MIGRATIONS"]

T = TypeVar("T")
__all__ += ["DURABILITIES", "Durability"]  # (defined with the SQL savers)

DIALECT = SqliteDialect(
    name="sqlite",
    lock_thread=None,  # BEGIN IMMEDIATE already serializes every writer of the file
    lock_migrations=None,
    metadata_param="?",
    blob_param="?",
    blob_len="length",
    metadata_len="length(CAST(metadata AS BLOB))",
    run_id_sql="json_extract(metadata, '$.run_id')",
    changes="changes()",
    # Pages of 100 throughout: in-process there is no round trip to save, and a page's
    # decoded checkpoints stay alive until the page is handed out. At 1,000 rows they
    # outnumbered the collector's young-generation threshold (700) several times a page:
    # ~136 young passes a listing of 30,000 rows, each promoting what was alive, and every
    # other listing a full collection of the heap (~2.5 us a row, against the listing's own
    # ~6.5); at 100 rows, about one young pass a listing and no full ones.
    long_page=PAGE_SIZE,
    in_process=True,
)

MIGRATIONS: list[tuple[str, ...]] = [
    (
        f"""CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
            thread_id TEXT NOT NULL,
            checkpoint_ns TEXT NOT NULL DEFAULT '',
            checkpoint_id TEXT NOT NULL,
            parent_checkpoint_id TEXT,
            type TEXT NOT NULL,
            checkpoint BLOB NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{{}}',
            created_at REAL NOT NULL,
            PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {BLOBS} (
            thread_id TEXT NOT NULL,
            checkpoint_ns TEXT NOT NULL DEFAULT '',
            channel TEXT NOT NULL,
            version TEXT NOT NULL,
            type TEXT NOT NULL,
            blob BLOB,
            base_version TEXT,
            root_version TEXT,
            PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {WRITES} (
            thread_id TEXT NOT NULL,
            checkpoint_ns TEXT NOT NULL DEFAULT '',
            checkpoint_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            channel TEXT NOT NULL,
            type TEXT NOT NULL,
            blob BLOB,
            task_path TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
        )""",
    ),
    (
        f"CREATE INDEX IF NOT EXISTS {BLOBS}_root ON {BLOBS} "
        "(thread_id, checkpoint_ns, channel, root_version) WHERE root_version IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS {CHECKPOINTS}_created ON {CHECKPOINTS} "
        "(thread_id, created_at)",
    ),
    SQLITE_MIGRATION,  # v2: threadloom_audit_log, the decisions of people (threadloom.hitl)
    LISTING_MIGRATION,  # v3: indexes that keep list pages and thread listings O(page)
    # v4: each thread's newest checkpoint, indexed
    threads_migration("TEXT NOT NULL", "REAL", " WITHOUT ROWID"),
]
"""Append only: each entry is one schema version, applied once, in order."""


def _connect(conn_string: str) -> sqlite3.Connection:
    """A connection usable from any thread (the saver serializes access itself)."""
    return sqlite3.connect(
        conn_string,
        check_same_thread=False,
        isolation_level=None,  # we issue BEGIN/COMMIT ourselves
        timeout=30.0,  # wait for other processes' write transactions instead of failing
        uri=conn_string.startswith("file:"),
    )


def _enable_wal(conn: sqlite3.Connection, timeout: float = 30.0) -> None:
    """Switch a file database to WAL, retrying while another process holds a lock.

    Changing the journal mode needs an exclusive lock, and SQLite answers "database is
    locked" at once (without waiting) when waiting could deadlock, e.g. while another
    process runs ``setup()`` at the same moment: so retry here, with backoff.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def _database_file(conn: sqlite3.Connection) -> str:
    """The main database's file path ("" for in-memory and temporary databases)."""
    for _seq, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(file or "")
    return ""


def _set_synchronous(conn: sqlite3.Connection, durability: str) -> None:
    """``synchronous=NORMAL`` in WAL mode (``FULL`` for ``durability="full"``)."""
    if conn.in_transaction:  # SQLite refuses to change it inside a transaction
        return
    if durability == "full":
        conn.execute("PRAGMA synchronous=FULL")
        return
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() == "wal":  # NORMAL without WAL could corrupt on power loss
        conn.execute("PRAGMA synchronous=NORMAL")


class _SqliteRunner:
    """Runs one operation in one transaction on a connection shared between threads.

    A write transaction of a file database is taken in turn with the file's other
    threadloom writers, in any process (``writers``, set at setup: see
    ``threadloom.checkpoint.sqlite._writers``); ``may_wait()`` False (a caller on an event
    loop) makes it fail at once with "database is locked" instead of waiting its turn."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.lock = threading.RLock()
        self.writers: WriterLock | None = None
        self.may_wait: Callable[[], bool] = lambda: True

    def run(self, op: Op[T], *, write: bool, atomic: bool = True) -> T:
        """One transaction - except for a non-atomic read, whose every statement is a read
        transaction of its own (a single-statement read needs no BEGIN/COMMIT)."""
        with self.lock:
            conn = self.conn
            nested = conn.in_transaction  # the caller's own transaction: use a savepoint
            if not write and not atomic and not nested:
                cursor = conn.cursor()
                return drive_sync(op, lambda q: _execute(cursor, q))
            writers = self.writers if write and not nested else None
            if writers is not None:
                writers.acquire(blocking=self.may_wait())
            try:
                return self._transaction(op, write=write, nested=nested)
            finally:
                if writers is not None:
                    writers.release()

    def _transaction(self, op: Op[T], *, write: bool, nested: bool) -> T:
        conn = self.conn
        conn.execute("SAVEPOINT threadloom" if nested else "BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            cursor = conn.cursor()
            result = drive_sync(op, lambda q: _execute(cursor, q))
        except BaseException:
            if conn.in_transaction:
                if nested:
                    conn.execute("ROLLBACK TO threadloom")
                    conn.execute("RELEASE threadloom")
                else:
                    conn.execute("ROLLBACK")
            raise
        conn.execute("RELEASE threadloom" if nested else "COMMIT")
        return result


def _execute(cursor: sqlite3.Cursor, query: Query) -> list[tuple[Any, ...]] | None:
    cursor.execute(query.sql, query.params)
    return cursor.fetchall() if query.fetch else None


class SqliteSaverBase(SyncSqlSaver):
    """What the sync and the async SQLite savers share: connection, lock, lazy setup,
    durability and the run locks."""

    dialect = DIALECT

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        serde: SerializerProtocol | None = None,
        durability: Durability = "normal",
        trace: Trace | None = None,
    ) -> None:
        self.durability = checked_durability(
            durability, "WAL + synchronous=NORMAL: safe against process crashes"
        )
        super().__init__(serde=serde, trace=trace)
        self.conn = conn
        self.is_setup = False
        self._runner = _SqliteRunner(conn)
        self._runs = RunGuard()
        self._run_locks: _locks.RunLocks | None | bool = False  # False: not looked up yet
        self._reads_never_wait = False  # known at setup

    def _setup_sync(self) -> None:
        with self._runner.lock:
            if self.is_setup:
                return
            database = _database_file(self.conn)
            if database and not self.conn.in_transaction:
                _enable_wal(self.conn)
            if database and self._runner.writers is None:
                busy_ms = self.conn.execute("PRAGMA busy_timeout").fetchone()[0]
                self._runner.writers = WriterLock(
                    writer_lock_path(database), timeout=int(busy_ms) / 1000
                )
            mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
            # WAL (or a private in-memory database): a read never waits for a writer
            self._reads_never_wait = str(mode).lower() in ("wal", "memory")
            _set_synchronous(self.conn, self.durability)
            migrate = self._core.migrate(MIGRATIONS)
            if self.trace is not None:
                migrate = traced_op(migrate, self.trace)
            self._runner.run(migrate, write=True)
            self.is_setup = True

    def _run(self, op: Op[T], *, write: bool, atomic: bool = True) -> T:
        if not self.is_setup:
            self._setup_sync()
        if self.trace is not None:
            op = traced_op(op, self.trace)
        return self._runner.run(op, write=write, atomic=atomic)

    # -- one run per thread ------------------------------------------------------------

    def _locks(self) -> _locks.RunLocks | None:
        if self._run_locks is False:
            with self._runner.lock:
                path = _database_file(self.conn)
            self._run_locks = _locks.RunLocks(path) if path else None
        return self._run_locks  # type: ignore[return-value]

    @contextmanager
    def lock_thread(self, thread_id: str) -> Iterator[None]:
        """Hold ``thread_id`` for one run; raise ``CheckpointConflictError`` at once when
        another run - in any process - holds it.

        A file database locks one byte of ``<database>-runs.lock`` (an open-file lock,
        ``F_OFD_SETLK``; where the platform has none, a file per thread id: see
        ``threadloom.checkpoint.sqlite._locks``): released when the run ends, or by the
        kernel when the process dies (even by SIGKILL). In-memory databases, private to
        this process, use an in-process lock.
        """
        thread_id = str(thread_id)
        locks = self._locks()
        with self._runs.hold(thread_id):  # what this process holds (the conflict rule)
            if locks is None:
                yield
                return
            token = locks.acquire(thread_id, lambda: thread_busy_error(thread_id))
            try:
                yield
            finally:
                locks.release(token)

    @asynccontextmanager
    async def alock_thread(self, thread_id: str) -> AsyncIterator[None]:
        """``lock_thread`` for async runs (taking it never blocks)."""
        with self.lock_thread(thread_id):
            yield


class SqliteSaver(SqliteSaverBase):
    """A saver on one ``sqlite3.Connection``, safe to share between threads.

    Pass a connection opened with ``check_same_thread=False`` (``from_conn_string`` does
    it for you). The async methods run the sync ones in a worker thread; in asyncio code
    ``AsyncSqliteSaver`` offers the same with an async ``setup``/``from_conn_string``.

    Durability (``SqliteSaver(conn, durability=...)``): ``"normal"`` (the default) puts a
    file database in WAL mode with ``PRAGMA synchronous=NORMAL`` - commits are not
    fsynced one by one, so checkpoints survive any crash of the *process* (including
    SIGKILL), but an operating-system crash or power loss may lose the last few committed
    transactions (the file stays consistent). ``"full"`` sets ``synchronous=FULL``: each
    commit is on disk before ``put`` returns, at the cost of an fsync per checkpoint.
    Both are set when the schema is set up (``setup()`` or first use).

    ``lock_thread(thread_id)`` / ``alock_thread`` (taken by the engine around each run)
    let one run at a time continue a thread, across processes: see ``lock_thread``.
    """

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        durability: Durability = "normal",
        trace: Trace | None = None,
    ) -> Iterator[SqliteSaver]:
        """Open ``conn_string`` (a file path, ``":memory:"`` or a ``file:`` URI), set up the
        schema, and close the connection on exit. ``durability``: see the module;
        ``trace``: see ``threadloom.checkpoint.trace``."""
        conn = _connect(conn_string)
        try:
            saver = cls(conn, serde=serde, durability=durability, trace=trace)
            saver.setup()
            yield saver
        finally:
            conn.close()

    def setup(self) -> None:
        """Create or migrate the tables (idempotent; safe from several processes at once).

        Runs automatically on first use; call it to migrate at deploy time instead.
        """
        self._setup_sync()

    async def aget_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        """``get_tuple`` - right in the calling thread when the connection is free and
        reads never wait (WAL): cheaper than a hop to a worker thread and back."""
        if self.is_setup and self._reads_never_wait and self._runner.lock.acquire(
            blocking=False
        ):
            try:
                return self.get_tuple(config)
            finally:
                self._runner.lock.release()
        return await super().aget_tuple(config)
