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
* Metadata is ``jsonb``; ``list(filter=...)`` uses ``metadata @> %s::jsonb`` (plus an
  exact ``metadata -> key = value`` test for dict/list values, so filters mean equality
  on every saver). Strings in metadata cannot contain NUL characters (a ``jsonb`` limit),
  nor can thread ids or namespaces (a ``text`` limit).
* Values are stored once per channel version; list channels that only grew store just
  their new items (see ``threadloom.checkpoint._delta``).

Schema: the same three tables as the SQLite saver (``threadloom_checkpoints``,
``threadloom_blobs``, ``threadloom_writes``) with ``bytea``/``jsonb`` columns and ``"C"``
collation on keys, so ordering is by code point as everywhere else.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import psycopg
    from psycopg.conninfo import make_conninfo
    from psycopg.pq import PipelineStatus, TransactionStatus
    from psycopg.rows import tuple_row
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "The Postgres savers need psycopg 3: pip install 'threadloom[postgres]'"
    ) from exc

from threadloom.checkpoint._sql import (
    BLOBS,
    CHECKPOINTS,
    LISTING_MIGRATION,
    WRITES,
    Batch,
    Op,
    PostgresDialect,
    Query,
    drive_sync,
    resumed,
)
from threadloom.checkpoint._sqlaudit import POSTGRES_MIGRATION
from threadloom.checkpoint._sqlcore import PreparedPut
from threadloom.checkpoint._sqlsaver import RunGuard, SyncSqlSaver, thread_busy_error
from threadloom.checkpoint.base import CheckpointTuple, SerializerProtocol, get_checkpoint_id
from threadloom.checkpoint.postgres._fencing import RunLockHolders
from threadloom.checkpoint.postgres._runsession import (
    MAX_SENT,
    RUN_LOCK_SQL,
    RUN_UNLOCK_FLUSH_SQL,
    RUN_UNLOCK_SQL,
    PreparedReads,
    RunSession,
    Sent,
)

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


# -- run locks (one run per thread) --------------------------------------------------


def _flush_wal() -> Op[None]:
    """A synchronous commit: returns once all earlier WAL is on disk."""
    yield Query("SELECT txid_current()", (), fetch=True)
    return None


def run_lock_key(schema: str, thread_id: str) -> int:
    """The signed 64-bit ``pg_try_advisory_lock`` key of a thread's run lock."""
    digest = hashlib.sha256(f"threadloom-run\0{schema}\0{thread_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _batch(step: Query | Batch) -> Batch:
    return step if isinstance(step, tuple) else (step,)


@dataclass(slots=True)
class _Prefetch:
    """A head read sent with a run lock (``Sent.owner``)."""

    thread_id: str
    read: Op[Any]  # ``SqlCore.get_tuple``, its first query sent


@dataclass(slots=True)
class _Ahead:
    """A write sent ahead on the run session (``Sent.owner``): how to finish it."""

    thread_id: str  # whose run sent it
    op: Op[Any]  # its first step was sent; the rows go back into it
    again: Callable[[], Op[Any]]  # the write from scratch, to run it again
    prepared: PreparedPut | None  # a put's, for the caches


@dataclass(slots=True)
class _Failure:
    """A write sent ahead that failed, kept for its run (``PostgresSaver._settle``)."""

    error: Exception
    raised: bool = False  # the run has raised it already


def _is_pool(conn: Any) -> bool:
    """Whether the saver was given a connection pool (not a connection)."""
    return hasattr(conn, "getconn") and hasattr(conn, "putconn")


def lock_conninfo(conn: Any, conninfo: str | None) -> tuple[str, dict[str, Any]]:
    """Where to open the run-lock connection: ``conninfo`` when the saver was opened from
    a string, a pool's own conninfo and arguments, or a connection's parameters."""
    if conninfo is not None:
        return conninfo, {}
    if hasattr(conn, "pgconn"):  # a (sync or async) connection
        params = {
            o.keyword.decode(): o.val.decode()
            for o in conn.pgconn.info
            if o.val is not None and o.val != b""
        }
        return make_conninfo("", **params), {}
    kwargs = dict(getattr(conn, "kwargs", None) or {})
    kwargs.pop("autocommit", None)
    return str(conn.conninfo), kwargs


class PostgresSaver(SyncSqlSaver):
    """A saver on a psycopg 3 ``Connection`` or ``ConnectionPool``.

    ``lock_thread(thread_id)`` (the engine takes it around each run) holds a session-level
    advisory lock for the run on a dedicated connection, opened on first use from the
    same connection parameters (a pool's conninfo, or the connection's) and kept for
    later runs, so it neither costs a connect per run nor takes a pooled connection away
    from the run's own queries.
    """

    dialect = DIALECT

    def __init__(
        self,
        conn: psycopg.Connection[Any] | ConnectionPool,
        *,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.conn = conn
        self._lock = threading.Lock()
        self._conninfo: str | None = None
        self._runs = RunGuard()
        self._lock_session: RunSession | None = None
        # guards the run session, and settling what was sent on it (which re-enters)
        self._lock_mutex = threading.RLock()
        # thread id -> the first failed write its run sent ahead (see ``_settle``)
        self._failures: dict[str, _Failure] = {}
        self._reads = PreparedReads()  # head reads, prepared on the data connections
        # thread id -> (its head read, the rows of that read's first query), fetched with
        # the run lock and taken by the run's first get_tuple
        self._prefetched: dict[str, tuple[Op[Any], Any]] = {}
        # thread id -> the run session holding its run lock, and the lock's key
        self._holders: RunLockHolders[RunSession] = RunLockHolders()

    @classmethod
    @contextmanager
    def from_conn_string(
        cls, conn_string: str, *, serde: SerializerProtocol | None = None
    ) -> Iterator[PostgresSaver]:
        """Connect to ``conn_string`` (autocommit) and close the connection on exit.

        Call ``setup()`` once before first use (this does not, so read-only roles work).
        """
        with psycopg.Connection.connect(conn_string, autocommit=True) as conn:
            saver = cls(conn, serde=serde)
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
                self._prefetched.pop(thread_id, None)
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
                self._prefetched.pop(thread_id, None)
                flush = self._runs.unflushed(thread_id)
                await asyncio.to_thread(self._give_run_lock, thread_id, key, flush=flush)

    def close_run_locks(self) -> None:
        """Close the run-lock connection (releasing any run locks it still holds)."""
        with self._lock_mutex:
            session, self._lock_session = self._lock_session, None
        if session is not None:
            session.close()

    def _session(self) -> RunSession:
        session = self._lock_session
        if session is not None and session.alive:
            return session
        if session is not None:
            session.close()
        session = RunSession(*lock_conninfo(self.conn, self._conninfo))
        self._lock_session = session
        weakref.finalize(self, session.close)
        return session

    def _lost(self, session: RunSession) -> list[Sent]:
        """Close a run session that failed; the writes it had sent ahead (their fate is
        unknown: the caller runs them again)."""
        if self._lock_session is session:
            self._lock_session = None
        session.close()
        return session.sent

    def _take_run_lock(self, thread_id: str) -> int:
        """Take the run lock - and, in the same round trip, read the thread's newest
        checkpoint, which is what a run reads first (``get_tuple`` takes it from there)."""
        head = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        with self._lock_mutex:
            self._failures.pop(thread_id, None)  # a new run starts clean
            lost: list[Sent] = []
            for attempt in range(2):
                session = self._session()
                key = run_lock_key(session.schema, thread_id)
                read = self._core.get_tuple(head)
                first = next(read)
                then = session.sendable(_batch(first), _Prefetch(thread_id, read))
                try:
                    got, done = session.call(RUN_LOCK_SQL, key, then=then)
                    break
                except psycopg.OperationalError:  # the session died: its locks went too
                    lost += self._lost(session)
                    if attempt:
                        self._settle([], lost)
                        raise
            for item in done:
                if isinstance(item.owner, _Prefetch) and got and item.error is None:
                    self._prefetched[thread_id] = (item.owner.read, item.results[0])
            if got:
                self._holders.hold(thread_id, session, key)
            self._settle(done, lost)
        if not got:
            raise thread_busy_error(thread_id)
        return key

    def _give_run_lock(self, thread_id: str, key: int, *, flush: bool = False) -> None:
        """Release the run lock; with ``flush``, also make the run's relaxed commits
        durable first (if the run session is gone, through the data connection).

        Writes the run sent ahead are settled in the same round trip: the release goes
        after them on the run session, and its reply after theirs. If one of them failed
        and the run has not raised that yet, it raises now."""
        done: list[Sent] = []
        lost: list[Sent] = []
        with self._lock_mutex:
            self._holders.drop(thread_id)
            session = self._lock_session
            if session is not None and session.alive:
                try:
                    _, done = session.call(RUN_UNLOCK_FLUSH_SQL if flush else RUN_UNLOCK_SQL, key)
                    flush = False
                except psycopg.Error:
                    lost = self._lost(session)
            # the session ended, and its locks with it; the flush must still happen
            self._settle(done, lost, flush=flush)
            failure = self._failures.pop(thread_id, None)
            session = self._lock_session
            if (
                session is not None
                and _is_pool(self.conn)
                and self._runs.alone(thread_id)
                and not session.sent
            ):
                # the last run ended: a pool-backed saver keeps no connection of its own
                # between runs, so closing the pool leaves nothing of it open
                self.close_run_locks()
        if failure is not None and not failure.raised:
            raise failure.error

    def get_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        conf = config.get("configurable") or {}
        if self._prefetched and "thread_id" in conf:
            stash = self._prefetched.pop(str(conf["thread_id"]), None)
            if (
                stash is not None
                and not conf.get("checkpoint_ns")
                and get_checkpoint_id(config) is None
            ):
                read, rows = stash
                try:
                    step = read.send(rows)
                except StopIteration as stop:
                    return stop.value
                return self._run(resumed(step, read), write=False, atomic=False)
        if get_checkpoint_id(config) is None:
            keys = self._core.ahead_keys(config)
            if keys:
                return self._read_ahead(config, keys)
        return super().get_tuple(config)

    def _read_ahead(self, config: dict[str, Any], keys: list[Any]) -> CheckpointTuple | None:
        """A head read that thaws the values it most likely needs (``keys``: those of the
        head this process knows) while its query is on the wire, so the round trip and
        the thaw overlap instead of adding up; a guess that misses costs one wasted thaw."""
        ready: dict[Any, Any] = {}

        def thaw() -> None:
            ready.update(self._core.values.thawed(keys))

        op = self._core.get_tuple(config, ready)
        return self._run(op, write=False, atomic=False, meanwhile=thaw)

    def _fence(self, config: dict[str, Any], *, checkpoint: bool) -> None:
        """The checks before each write of a run holding its thread's run lock.

        A checkpoint ends a step: the writes sent ahead during it (and the previous
        checkpoint) must have landed before the next step starts, so they are waited
        for here - before this checkpoint is planned on them - and a failed one stops
        the run now, not at its end. Their replies have mostly arrived while the step
        ran: this rarely waits.

        Then the fencing check (see ``_fencing``): if the session holding the lock
        ended, the lock is taken again on a new session, or the run stops with
        ``RunLockLostError`` before writing anything more.
        """
        if not self._holders:
            return
        thread_id = str((config.get("configurable") or {}).get("thread_id"))
        with self._lock_mutex:
            held = self._holders.get(thread_id)
            if held is None:
                return
            if checkpoint:
                self._drain_sent()
                self._raise_failure(thread_id)
            holder, key = held
            if holder is self._lock_session and holder.check_alive():
                return
            if self._lock_session is not None and not self._lock_session.check_alive():
                self._settle([], self._lost(self._lock_session))
            if holder is not self._lock_session:
                holder.close()
            try:
                session = self._session()
                got, done = session.call(RUN_LOCK_SQL, key)
            except psycopg.Error as exc:
                raise self._holders.failed(thread_id, exc) from exc
            self._settle(done, [])
            self._holders.retaken(thread_id, session, key, got)

    # -- writes sent ahead (durability="async") -------------------------------------------

    def _send_ahead(
        self,
        thread_id: str,
        first: Batch,
        op: Op[Any],
        again: Callable[[], Op[Any]],
        prepared: PreparedPut | None,
    ) -> bool:
        """Send a relaxed write's first batch on the run session and return at once (see
        ``_runsession``); False if it cannot go that way (then nothing was sent). Raises
        the error of an earlier write of this run that failed, before sending."""
        if not isinstance(first, tuple):
            return False
        self._prefetched.clear()  # a write: reads fetched ahead are stale
        with self._lock_mutex:
            self._raise_failure(thread_id)
            session = self._lock_session
            if session is not None and len(session.sent) >= MAX_SENT:
                self._drain_sent()  # never more than MAX_SENT writes in flight
                self._raise_failure(thread_id)
                session = self._lock_session
            if session is None or not session.alive:
                return False
            try:
                return session.send(first, _Ahead(thread_id, op, again, prepared)) is not None
            except psycopg.Error:
                self._settle([], self._lost(session))
                return False

    def _drain_sent(self) -> None:
        """Wait for the writes sent ahead and settle them, so that what comes next sees
        them. Their failures are kept for the runs they belong to (``_failures``)."""
        if self._lock_session is None or not self._lock_session.sent:
            return
        with self._lock_mutex:
            session = self._lock_session
            if session is None or not session.sent:
                return
            try:
                done, lost = session.drain(), []
            except psycopg.Error:
                done, lost = [], self._lost(session)
            self._settle(done, lost)

    def _raise_failure(self, thread_id: str) -> None:
        """Raise the first failed write of ``thread_id``'s run, once."""
        failure = self._failures.get(thread_id)
        if failure is not None and not failure.raised:
            failure.raised = True
            raise failure.error

    def _settle(self, done: list[Sent], lost: list[Sent], *, flush: bool = False) -> None:
        """Finish writes sent ahead, in order (``_lock_mutex`` held): their rows go back
        into their ops.

        One session carries the writes of every run of this saver, so whoever drains it
        settles them all; an error is therefore not raised here but kept for the run it
        belongs to (``_failures``), which raises it at its next write or at its end. The
        caches are cleared: they assumed every write would land.

        A write that must retry (its delta base was gone) is finished on the data
        connection, and its run's later writes run again from scratch (their head checks
        saw the gap), storing their lists whole (the delta chains they were planned on
        changed shape). ``lost`` writes, whose fate is unknown, run again too (a write
        is idempotent). Whatever ran here is made durable before this returns."""
        retried: set[str] = set()  # runs whose later writes run again
        redo: list[_Ahead] = []
        for item in done:
            ahead = item.owner
            if not isinstance(ahead, _Ahead) or ahead.thread_id in self._failures:
                continue  # a read fetched ahead, or a write of a run that already failed
            if ahead.thread_id in retried:
                redo.append(ahead)
                continue
            try:
                if item.error is not None:
                    raise item.error
                try:
                    step = ahead.op.send(item.results)
                except StopIteration:
                    continue
                self._run(resumed(step, ahead.op), write=True, atomic=False)
                retried.add(ahead.thread_id)
                flush = True
            except Exception as exc:
                self._fail(ahead.thread_id, exc)
        redo += [item.owner for item in lost if isinstance(item.owner, _Ahead)]
        for ahead in redo:
            if ahead.thread_id in self._failures:
                continue
            try:
                if ahead.thread_id in retried and ahead.prepared is not None:
                    self._core.store_whole(ahead.prepared)
                self._run(ahead.again(), write=True, atomic=False)
                self._remember(ahead)
                flush = True
            except Exception as exc:
                self._fail(ahead.thread_id, exc)
        if retried:
            # the caches learned the writes as they were planned, not as they landed
            self.clear_cache()
        if flush:
            self._run(_flush_wal(), write=True, atomic=False)

    def _fail(self, thread_id: str, error: Exception) -> None:
        self._failures.setdefault(thread_id, _Failure(error))
        self.clear_cache()

    def _remember(self, ahead: _Ahead) -> None:
        if ahead.prepared is not None:
            self._core.remember_put(ahead.prepared)

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
        """Drive ``op`` on a data connection. ``meanwhile``: work to do while the op's
        first query is on the wire - that query then goes as a prepared read
        (``PreparedReads``), where it can (a non-atomic op on an idle connection)."""
        self._prefetched.clear()  # anything may change a thread: those reads are stale
        self._drain_sent()  # whatever runs next sees the writes sent ahead
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
                            rows = self._reads.read(conn, query, work)
                            if rows is not None:
                                return rows
                        return _execute(cursor, query)

                    return drive_sync(op, execute, lambda b: _pipeline(conn, b))
