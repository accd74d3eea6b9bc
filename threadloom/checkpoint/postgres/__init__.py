"""``PostgresSaver``: checkpoints in PostgreSQL, for production and for many workers.

    with PostgresSaver.from_conn_string("postgresql://user@host/db") as saver:
        saver.setup()  # once, e.g. at deploy time; idempotent
        graph = builder.compile(checkpointer=saver)

Takes a ``psycopg.Connection`` (shared between threads behind a lock) or a
``psycopg_pool.ConnectionPool`` (one pooled connection per operation).

Round trips: reading a checkpoint is one statement (plus one to fetch values the saver's
value cache does not hold); ``put`` and ``put_writes`` are one round trip each - their
statements go out together in pipeline mode and run as one implicit transaction (the
connection is switched to autocommit for the moment if it is idle). Housekeeping
operations are one explicit transaction each, and when the caller already has a
transaction open, every operation joins it through a savepoint.

* ``setup()`` applies the versioned migrations in ``threadloom_migrations`` behind an
  advisory transaction lock, so several processes may call it at once, and it may run
  inside the caller's transaction.
* Writers of one thread take turns on an advisory transaction lock keyed by the thread
  id. A run's ``loop`` checkpoint whose parent is no longer the newest checkpoint of its
  (thread, namespace) - the thread was changed outside the run - raises
  ``CheckpointConflictError``.
* One run per thread, enforced before anything runs: ``lock_thread`` takes a
  session-level ``pg_try_advisory_lock`` keyed by (schema, thread id) on a dedicated
  connection of the saver's own (the run session, ``_runsession``), and reads the
  thread's head in the same round trip. The server drops the lock when that session
  ends, so a process that dies (even by SIGKILL) never leaves a thread held.
* Runs with durability="async" (the default) do not wait for their writes: each is sent
  on the run session as its own relaxed-commit transaction and the run goes on; the
  release of the run lock reads all their replies and flushes the WAL in one round
  trip, so ``invoke`` returns only once the run's writes are durable. A write that
  failed fails its own run (at its next write, at the latest when it ends).
  ``PostgresSaver(conn, durability="full")`` (``"normal"`` is the default) commits every
  write with ``synchronous_commit`` on instead - a WAL flush per commit, as a saver that
  leaves the server's default does - and waits for each.
* Metadata is ``jsonb``; ``list(filter=...)`` uses ``metadata @> %s::jsonb`` (plus an
  exact ``metadata -> key = value`` test for dict/list values, so filters mean equality
  on every saver). Strings in metadata cannot contain NUL characters (a ``jsonb`` limit),
  nor can thread ids or namespaces (a ``text`` limit).
* Values are stored once per channel version; list channels that only grew store just
  their new items (see ``threadloom.checkpoint._values.delta``).

Schema: the same tables as the SQLite saver (``threadloom_checkpoints``,
``threadloom_blobs``, ``threadloom_writes``, ``threadloom_threads``) with
``bytea``/``jsonb`` columns and ``"C"`` collation on keys, so ordering is by code point as
everywhere else.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar, cast

try:
    import psycopg
    from psycopg.pq import PipelineStatus, TransactionStatus
    from psycopg.rows import tuple_row
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "The Postgres savers need psycopg 3: pip install 'threadloom[postgres]'"
    ) from exc

from threadloom.checkpoint._sql.audit import POSTGRES_MIGRATION
from threadloom.checkpoint._sql.saver import Durability, SyncSqlSaver, checked_durability
from threadloom.checkpoint._sql.statements import (
    BLOBS,
    CHECKPOINTS,
    LISTING_MIGRATION,
    WRITES,
    Batch,
    Op,
    PostgresDialect,
    Query,
    drive_sync,
    threads_migration,
)
from threadloom.checkpoint._sql.write import PreparedPut
from threadloom.checkpoint.base import CheckpointTuple, SerializerProtocol
from threadloom.checkpoint.postgres._fastpath import (
    DataOp,
    FastPath,
    Steps,
    lock_conninfo,
)
from threadloom.checkpoint.postgres._runsession import RunSession, Wait, ready, wait
from threadloom.checkpoint.trace import Trace, traced_op

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

__all__ = ["MIGRATIONS", "PostgresSaver"]

T = TypeVar("T")

# Advisory lock classes (first key of the two-int form): "tlth" = thread, "tlmg" = migrations.
_THREAD_LOCK = 0x746C7468
_MIGRATION_LOCK = 0x746C6D67

DIALECT = PostgresDialect(
    name="postgres",
    lock_thread=f"SELECT pg_advisory_xact_lock({_THREAD_LOCK}, hashtext(?))",
    lock_migrations=(
        f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK}, hashtext(COALESCE(current_schema(), '')))"
    ),
    metadata_param="?::jsonb",
    blob_param="?::bytea",
    blob_len="octet_length",
    metadata_len="octet_length(metadata::text)",
    writable_ctes=True,
    lateral=True,
    # not ``SET LOCAL``: outside an explicit BEGIN (a pipeline's implicit transaction) that
    # works too, but the server logs a WARNING for every write
    relaxed_commit="set_config('synchronous_commit', 'off', true)",
    run_id_sql="(metadata ->> 'run_id')",
)

# what durability="normal" allows (see the module's docstring)
NORMAL = "a run with durability='async' commits relaxed and flushes once, at its end"

_KEY = 'TEXT COLLATE "C" NOT NULL'

MIGRATIONS: list[tuple[str, ...]] = [
    (
        f"""CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
            thread_id {_KEY},
            checkpoint_ns {_KEY} DEFAULT '',
            checkpoint_id {_KEY},
            parent_checkpoint_id TEXT COLLATE "C",
            type TEXT NOT NULL,
            checkpoint BYTEA NOT NULL,
            metadata JSONB NOT NULL DEFAULT '{{}}',
            created_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {BLOBS} (
            thread_id {_KEY},
            checkpoint_ns {_KEY} DEFAULT '',
            channel {_KEY},
            version {_KEY},
            type TEXT NOT NULL,
            blob BYTEA,
            base_version TEXT COLLATE "C",
            root_version TEXT COLLATE "C",
            PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {WRITES} (
            thread_id {_KEY},
            checkpoint_ns {_KEY} DEFAULT '',
            checkpoint_id {_KEY},
            task_id {_KEY},
            idx INTEGER NOT NULL,
            channel TEXT NOT NULL,
            type TEXT NOT NULL,
            blob BYTEA,
            task_path {_KEY} DEFAULT '',
            PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
        )""",
    ),
    (
        f"CREATE INDEX IF NOT EXISTS {BLOBS}_root ON {BLOBS} "
        "(thread_id, checkpoint_ns, channel, root_version) WHERE root_version IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS {CHECKPOINTS}_created ON {CHECKPOINTS} "
        "(thread_id, created_at)",
    ),
    POSTGRES_MIGRATION,  # v2: threadloom_audit_log, the decisions of people (threadloom.hitl)
    LISTING_MIGRATION,  # v3: indexes that keep list pages and thread listings O(page)
    threads_migration(_KEY, "DOUBLE PRECISION"),  # v4: each thread's newest checkpoint, indexed
]
"""Append only: each entry is one schema version, applied once, in order."""


@lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """The shared core writes ``?`` placeholders; psycopg wants ``%s``.

    Safe because no statement of the core contains a literal ``?`` or ``%``.
    """
    return sql.replace("?", "%s")


def _execute(cursor: psycopg.Cursor[Any], query: Query) -> list[tuple[Any, ...]] | None:
    cursor.execute(pg_sql(query.sql), query.params)
    return cursor.fetchall() if query.fetch else None


def _pipeline(conn: psycopg.Connection[Any], batch: Batch) -> list[Any]:
    """Run ``batch`` in one round trip: sent together in pipeline mode, one ``Sync``.

    On an autocommit connection the statements form one implicit transaction: all or none.
    """
    if len(batch) == 1 and conn.pgconn.pipeline_status == PipelineStatus.OFF:
        # (on a connection the caller keeps in pipeline mode, a lone statement still needs
        # the Sync of a pipeline block of its own, or it is never sent nor committed)
        with conn.cursor(row_factory=tuple_row) as cursor:
            return [_execute(cursor, batch[0])]
    cursors: list[psycopg.Cursor[Any]] = []
    try:
        with conn.pipeline():
            for query in batch:
                cursor = conn.cursor(row_factory=tuple_row)
                cursors.append(cursor)
                cursor.execute(pg_sql(query.sql), query.params)
        return [c.fetchall() if q.fetch else None for c, q in zip(cursors, batch, strict=True)]
    finally:
        for cursor in cursors:
            cursor.close()


@contextmanager
def _in_pipeline(conn: psycopg.Connection[Any]) -> Iterator[Any]:
    """A pipeline for a whole op (one implicit transaction, ended by its Sync).

    Yields ``execute(query)``: each query gets a cursor of its own (a cursor shared by
    queued statements could hand back an earlier statement's rows); a query whose rows
    are needed is waited for, the others are only queued.
    """
    cursors: list[psycopg.Cursor[Any]] = []

    def execute(query: Query) -> list[tuple[Any, ...]] | None:
        cursor = conn.cursor(row_factory=tuple_row)
        cursors.append(cursor)
        return _execute(cursor, query)

    try:
        with conn.pipeline():
            yield execute
    finally:
        for cursor in cursors:
            cursor.close()


def in_caller_pipeline(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether the caller put ``conn`` in pipeline mode (``with conn.pipeline():`` around
    its use of the saver). A statement sent there only lands when a Sync follows, so the
    saver then runs each whole op in a pipeline of its own (nested: its exit sends the
    Sync that commits the op and reports its errors) instead of one bare statement."""
    return conn.pgconn.pipeline_status != PipelineStatus.OFF


@contextmanager
def _autocommit(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Autocommit for the moment (no round trip: the connection is idle)."""
    if conn.autocommit:
        yield
        return
    conn.autocommit = True
    try:
        yield
    finally:
        conn.autocommit = False


class PostgresSaver(FastPath, SyncSqlSaver):
    """A saver on a psycopg 3 ``Connection`` or ``ConnectionPool``.

    ``lock_thread(thread_id)`` (the engine takes it around each run) holds a session-level
    advisory lock for the run on a dedicated connection, opened on first use from the
    same connection parameters (a pool's conninfo, or the connection's) and kept for
    later runs, so it neither costs a connect per run nor takes a pooled connection away
    from the run's own queries. The fast path (``_fastpath``) is shared with
    ``AsyncPostgresSaver``; this class only drives its steps, blocking.
    """

    dialect = DIALECT

    def __init__(
        self,
        conn: psycopg.Connection[Any] | ConnectionPool,
        *,
        serde: SerializerProtocol | None = None,
        durability: Durability = "normal",
        trace: Trace | None = None,
    ) -> None:
        self.durability = checked_durability(durability, NORMAL)
        super().__init__(serde=serde, trace=trace)
        self.conn = conn
        self._lock = threading.Lock()
        self._conninfo: str | None = None
        # guards the run session, and settling what was sent on it (which re-enters)
        self._lock_mutex = threading.RLock()
        self._init_fast_path()

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        durability: Durability = "normal",
        trace: Trace | None = None,
    ) -> Iterator[PostgresSaver]:
        """Connect to ``conn_string`` (autocommit) and close the connection on exit.
        ``durability``: "normal" or "full" (see the module).

        Call ``setup()`` once before first use (this does not, so read-only roles work).
        """
        with psycopg.Connection.connect(conn_string, autocommit=True) as conn:
            saver = cls(conn, serde=serde, durability=durability, trace=trace)
            saver._conninfo = conn_string
            try:
                yield saver
            finally:
                saver.close_run_locks()

    def setup(self) -> None:
        """Create or migrate the tables; idempotent and safe from concurrent processes."""
        self._run(self._core.migrate(MIGRATIONS), write=True)

    # -- one run per thread ------------------------------------------------------------

    @contextmanager
    def lock_thread(self, thread_id: str) -> Iterator[None]:
        """Hold ``thread_id`` for one run; raise ``CheckpointConflictError`` at once when
        another run - in this process or any other - holds it.

        ``pg_try_advisory_lock(key)`` on the saver's run-lock connection (session level,
        so it outlives transactions; the server drops it when the session ends, e.g. when
        the holding process is killed), released with ``pg_advisory_unlock``. The key is
        64 bits of sha256 over the schema and the thread id.
        """
        thread_id = str(thread_id)
        with self._runs.hold(thread_id):  # advisory locks re-enter within one session
            key = self._take_run_lock(thread_id)
            try:
                yield
            finally:
                self._give_run_lock(thread_id, key, flush=self._runs.unflushed(thread_id))

    @asynccontextmanager
    async def alock_thread(self, thread_id: str) -> AsyncIterator[None]:
        """``lock_thread`` for async runs (the lock's round trips run in a worker thread)."""
        thread_id = str(thread_id)
        with self._runs.hold(thread_id):
            key = await asyncio.to_thread(self._take_run_lock, thread_id)
            try:
                yield
            finally:
                flush = self._runs.unflushed(thread_id)
                await asyncio.to_thread(self._give_run_lock, thread_id, key, flush=flush)

    def close_run_locks(self) -> None:
        """Close the run-lock connection (releasing any run locks it still holds)."""
        with self._lock_mutex:
            session = self._detach_session()
        if session is not None:
            session.close()

    def _take_run_lock(self, thread_id: str) -> int:
        return self._locked(self._take_run_lock_steps(thread_id))

    def _give_run_lock(self, thread_id: str, key: int, *, flush: bool = False) -> None:
        self._locked(self._give_run_lock_steps(thread_id, key, flush=flush))

    # -- the fast path's steps, driven blocking ---------------------------------------

    def _locked(self, steps: Steps[T]) -> T:
        with self._lock_mutex:
            return self._drive(steps)

    def _drive(self, steps: Steps[T]) -> T:
        """Run ``steps`` (see ``_fastpath``): wait on sockets with ``select``, run data
        ops on a data connection, open run sessions; errors go back into the steps."""
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
                    value = ready(step)
                elif isinstance(step, DataOp):
                    value = self._run_data(step.op, write=True, atomic=False)
                else:
                    value = RunSession(*lock_conninfo(self.conn, self._conninfo))
            except Exception as exc:
                error = exc

    def get_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        head = self._head_read(config)
        if head is None:
            return super().get_tuple(config)
        if head.op is None:
            return head.value
        return self._run(head.op, write=False, atomic=False, meanwhile=head.meanwhile)

    def _fence(self, config: dict[str, Any], *, checkpoint: bool) -> None:
        if self._holders:
            self._locked(self._fence_steps(config, checkpoint=checkpoint))

    def _send_ahead(
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
        return self._locked(self._send_ahead_steps(thread_id, first, op, again, prepared))

    def _drain_sent(self) -> None:
        session = self._lock_session
        if session is not None and session.sent:
            self._locked(self._drain_steps())

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if isinstance(self.conn, psycopg.Connection):
            with self._lock:
                yield self.conn
        else:
            with self.conn.connection() as conn:
                yield conn

    def _run(
        self,
        op: Op[T],
        *,
        write: bool,
        atomic: bool = True,
        meanwhile: Callable[[], None] | None = None,
    ) -> T:
        """Drive ``op`` on a data connection, once the writes sent ahead landed."""
        self._prefetched.clear()  # anything may change a thread: those reads are stale
        self._drain_sent()  # whatever runs next sees the writes sent ahead
        return self._run_data(op, write=write, atomic=atomic, meanwhile=meanwhile)

    def _run_data(
        self,
        op: Op[T],
        *,
        write: bool,
        atomic: bool = True,
        meanwhile: Callable[[], None] | None = None,
    ) -> T:
        """Drive ``op`` on a data connection. ``meanwhile``: work to do while the op's
        first query is on the wire - that query then goes as a prepared read
        (``PreparedReads``), where it can (a non-atomic op on an idle connection)."""
        if self.trace is not None:
            op = traced_op(op, self.trace)
        with self._connection() as conn:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                # the caller's transaction is open: join it (a savepoint)
                with conn.transaction(), conn.cursor(row_factory=tuple_row) as cursor:
                    return drive_sync(op, lambda q: _execute(cursor, q))
            with _autocommit(conn):
                if atomic or in_caller_pipeline(conn):
                    # The whole op in one pipeline: one implicit transaction, ended by the
                    # pipeline's Sync; a round trip per query whose rows it needs, plus one.
                    with _in_pipeline(conn) as execute:
                        return drive_sync(op, execute)
                # each statement or batch of ``op`` is atomic on its own: one round trip each
                with conn.cursor(row_factory=tuple_row) as cursor:

                    def execute(query: Query) -> Any:
                        nonlocal meanwhile
                        if meanwhile is not None:  # the first query, sent before the work
                            work, meanwhile = meanwhile, None
                            rows = wait(self._reads.read(conn, query, work))
                            if rows is not None:
                                return rows
                        return _execute(cursor, query)

                    return drive_sync(op, execute, lambda b: _pipeline(conn, b))
