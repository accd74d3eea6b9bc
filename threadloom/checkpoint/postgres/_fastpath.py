"""The PostgreSQL savers' fast path, written once for ``PostgresSaver`` and
``AsyncPostgresSaver``: run locks with the head read in the same round trip, writes sent
ahead on the run session (durability="async"), and settling their replies.

As in psycopg 3, the logic is a set of generators that do no I/O themselves. They yield
``Steps``: a ``Wait`` on the run session's socket (``_runsession``), a ``DataOp`` (run
an op of the shared core on a data connection) or ``Connect`` (open a new run session);
each saver's driver (``PostgresSaver._drive``: blocking, ``AsyncPostgresSaver._adrive``:
asyncio) does the step and resumes the generator with its result, or throws its error
in. The drivers also hold the saver's lock mutex around a whole generator; everything
else - which write goes where, what a failure means, when to flush - lives here.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import make_conninfo

from threadloom.checkpoint._sql.core import SqlCore
from threadloom.checkpoint._sql.saver import RunGuard, thread_busy_error
from threadloom.checkpoint._sql.statements import Batch, Op, Query, resumed
from threadloom.checkpoint._sql.write import PreparedPut
from threadloom.checkpoint.base import CheckpointTuple, get_checkpoint_id
from threadloom.checkpoint.postgres._fencing import RunLockHolders
from threadloom.checkpoint.postgres._runsession import (
    MAX_SENT,
    RUN_LOCK_SQL,
    RUN_UNLOCK_FLUSH_SQL,
    RUN_UNLOCK_SQL,
    PreparedReads,
    RunSession,
    Sent,
    Wait,
)
from threadloom.checkpoint.trace import Trace

__all__ = [
    "Connect",
    "DataOp",
    "FastPath",
    "HeadRead",
    "Steps",
    "flush_wal",
    "is_pool",
    "lock_conninfo",
    "run_lock_key",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DataOp:
    """Run ``op`` (its steps each atomic) on a data connection; resumed with its result."""

    op: Op[Any]


@dataclass(frozen=True, slots=True)
class Connect:
    """Open a new run session; resumed with the ``RunSession``."""


Steps = Generator[Wait | DataOp | Connect, Any, T]


def flush_wal() -> Op[None]:
    """A synchronous commit: returns once all earlier WAL is on disk."""
    yield Query("SELECT txid_current()", (), fetch=True)
    return None


def run_lock_key(schema: str, thread_id: str) -> int:
    """The signed 64-bit ``pg_try_advisory_lock`` key of a thread's run lock."""
    digest = hashlib.sha256(f"threadloom-run\0{schema}\0{thread_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def is_pool(conn: Any) -> bool:
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
    """A write sent ahead that failed, kept for its run (``FastPath._settle``)."""

    error: Exception
    raised: bool = False  # the run has raised it already


@dataclass(frozen=True, slots=True)
class HeadRead:
    """How ``get_tuple`` reads a head (``FastPath._head_read``): ``op`` on a data
    connection, with ``meanwhile`` run while its first query is on the wire - or, when
    the rows fetched with the run lock answered it all, ``value`` (and ``op`` is None)."""

    op: Op[CheckpointTuple | None] | None
    meanwhile: Callable[[], None] | None = None
    value: CheckpointTuple | None = None


class FastPath:
    """State and steps of the fast path, mixed into both PostgreSQL savers.

    The saver supplies ``conn``, ``_conninfo``, ``_core``, ``clear_cache``, a lock mutex
    and a driver for ``Steps``. Every ``*_steps`` generator runs with the mutex held.
    """

    conn: Any
    _conninfo: str | None
    trace: Trace | None
    _core: SqlCore
    clear_cache: Callable[[], None]

    def _init_fast_path(self) -> None:
        self._runs = RunGuard()
        self._lock_session: RunSession | None = None
        # thread id -> the first failed write its run sent ahead (see ``_settle``)
        self._failures: dict[str, _Failure] = {}
        self._reads = PreparedReads()  # head reads, prepared on the data connections
        # thread id -> (its head read, the rows of that read's first query), fetched with
        # the run lock and taken by the run's first get_tuple
        self._prefetched: dict[str, tuple[Op[Any], Any]] = {}
        # thread id -> the run session holding its run lock, and the lock's key
        self._holders: RunLockHolders[RunSession] = RunLockHolders()
        #: on a pool, keep the run-lock connection open between runs (instead of
        #: connecting for every run); its owner then closes the run locks before closing
        #: the pool (the server's storage does)
        self.keep_lock_connection = False

    # -- the run session -----------------------------------------------------------------

    def _session(self) -> Steps[RunSession]:
        session = self._lock_session
        if session is not None and session.alive:
            return session
        if session is not None:
            session.close()
        fresh: RunSession = yield Connect()  # the drivers answer a Connect with one
        fresh.trace = self.trace
        self._lock_session = fresh
        weakref.finalize(self, fresh.close)
        return fresh

    def _lost(self, session: RunSession) -> list[Sent]:
        """Close a run session that failed; the writes it had sent ahead (their fate is
        unknown: they run again)."""
        if self._lock_session is session:
            self._lock_session = None
        session.close()
        return session.sent

    def _detach_session(self) -> RunSession | None:
        session, self._lock_session = self._lock_session, None
        return session

    # -- run locks -----------------------------------------------------------------------

    def _take_run_lock_steps(self, thread_id: str) -> Steps[int]:
        """Take the run lock - and, in the same round trip, read the thread's newest
        checkpoint, which is what a run reads first (``get_tuple`` takes it from there)."""
        head = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        self._failures.pop(thread_id, None)  # a new run starts clean
        lost: list[Sent] = []
        for attempt in range(2):
            session = yield from self._session()
            key = run_lock_key(session.schema, thread_id)
            read = self._core.get_tuple(head)
            first = next(read)
            then = session.sendable(_batch(first), _Prefetch(thread_id, read))
            try:
                got, done = yield from session.call(RUN_LOCK_SQL, key, then=then)
                break
            except psycopg.OperationalError:  # the session died: its locks went too
                lost += self._lost(session)
                if attempt:
                    yield from self._settle([], lost)
                    raise
        for item in done:
            if isinstance(item.owner, _Prefetch) and got and item.error is None:
                self._prefetched[thread_id] = (item.owner.read, item.results[0])
        if got:
            self._holders.hold(thread_id, session, key)
        yield from self._settle(done, lost)
        if not got:
            raise thread_busy_error(thread_id)
        return key

    def _give_run_lock_steps(self, thread_id: str, key: int, *, flush: bool) -> Steps[None]:
        """Release the run lock; with ``flush``, also make the run's relaxed commits
        durable first (if the run session is gone, through a data connection).

        Writes the run sent ahead are settled in the same round trip: the release goes
        after them on the run session, and its reply after theirs. If one of them failed
        and the run has not raised that yet, it raises now. A pool-backed saver keeps no
        connection of its own once its last run ended (unless ``keep_lock_connection``),
        so closing the pool leaves nothing of it open."""
        self._prefetched.pop(thread_id, None)
        done: list[Sent] = []
        lost: list[Sent] = []
        self._holders.drop(thread_id)
        session = self._lock_session
        if session is not None and session.alive:
            try:
                sql = RUN_UNLOCK_FLUSH_SQL if flush else RUN_UNLOCK_SQL
                _, done = yield from session.call(sql, key)
                flush = False
            except psycopg.Error:
                lost = self._lost(session)
        # the session ended, and its locks with it; the flush must still happen
        yield from self._settle(done, lost, flush=flush)
        failure = self._failures.pop(thread_id, None)
        session = self._lock_session
        if (
            session is not None
            and is_pool(self.conn)
            and not self.keep_lock_connection
            and self._runs.alone(thread_id)
            and not session.sent
        ):
            self._lost(session)
        if failure is not None and not failure.raised:
            raise failure.error

    def _fence_steps(self, config: dict[str, Any], *, checkpoint: bool) -> Steps[None]:
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
        thread_id = str((config.get("configurable") or {}).get("thread_id"))
        held = self._holders.get(thread_id)
        if held is None:
            return
        if checkpoint:
            yield from self._drain_steps()
            self._raise_failure(thread_id)
        holder, key = held
        if holder is self._lock_session and holder.check_alive():
            return
        if self._lock_session is not None and not self._lock_session.check_alive():
            yield from self._settle([], self._lost(self._lock_session))
        if holder is not self._lock_session:
            holder.close()
        try:
            session = yield from self._session()
            got, done = yield from session.call(RUN_LOCK_SQL, key)
        except psycopg.Error as exc:
            raise self._holders.failed(thread_id, exc) from exc
        yield from self._settle(done, [])
        self._holders.retaken(thread_id, session, key, got)

    # -- reads ---------------------------------------------------------------------------

    def _head_read(self, config: dict[str, Any]) -> HeadRead | None:
        """How to read ``config``'s checkpoint faster than the shared core alone (None:
        the usual way): from the rows fetched with the run lock, or - for a head this
        process knows - thawing its values while the query is on the wire, so the round
        trip and the thaw overlap instead of adding up (a guess that misses costs one
        wasted thaw)."""
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
                    return HeadRead(None, value=stop.value)
                return HeadRead(resumed(step, read))
        if get_checkpoint_id(config) is not None:
            return None
        keys = self._core.ahead_keys(config)
        if not keys:
            return None
        ready: dict[Any, Any] = {}

        def thaw() -> None:
            ready.update(self._core.values.thawed(keys))

        return HeadRead(self._core.get_tuple(config, ready), thaw)

    # -- writes sent ahead (durability="async") -------------------------------------------

    def _send_ahead_steps(
        self,
        thread_id: str,
        first: Batch,
        op: Op[Any],
        again: Callable[[], Op[Any]],
        prepared: PreparedPut | None,
    ) -> Steps[bool]:
        """Send a relaxed write's first batch on the run session and return at once (see
        ``_runsession``); False if it cannot go that way (then nothing was sent). Raises
        the error of an earlier write of this run that failed, before sending."""
        self._raise_failure(thread_id)
        session = self._lock_session
        if session is not None and len(session.sent) >= MAX_SENT:
            yield from self._drain_steps()  # never more than MAX_SENT writes in flight
            self._raise_failure(thread_id)
            session = self._lock_session
        if session is None or not session.alive:
            return False
        try:
            if session.send(first, _Ahead(thread_id, op, again, prepared)) is None:
                return False
            yield from session.flush()
        except psycopg.Error:
            yield from self._settle([], self._lost(session))
            return False
        return True

    def _drain_steps(self) -> Steps[None]:
        """Wait for the writes sent ahead and settle them, so that what comes next sees
        them. Their failures are kept for the runs they belong to (``_failures``)."""
        session = self._lock_session
        if session is None or not session.sent:
            return
        try:
            done, lost = (yield from session.drain()), []
        except psycopg.Error:
            done, lost = [], self._lost(session)
        yield from self._settle(done, lost)

    def _raise_failure(self, thread_id: str) -> None:
        """Raise the first failed write of ``thread_id``'s run, once."""
        failure = self._failures.get(thread_id)
        if failure is not None and not failure.raised:
            failure.raised = True
            raise failure.error

    def _settle(self, done: list[Sent], lost: list[Sent], *, flush: bool = False) -> Steps[None]:
        """Finish writes sent ahead, in order: their rows go back into their ops.

        One session carries the writes of every run of this saver, so whoever drains it
        settles them all; an error is therefore not raised here but kept for the run it
        belongs to (``_failures``), which raises it at its next write or at its end. The
        caches are cleared: they assumed every write would land.

        A write that must retry (its delta base was gone) is finished on a data
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
                yield DataOp(resumed(step, ahead.op))
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
                yield DataOp(ahead.again())
                if ahead.prepared is not None:
                    self._core.remember_put(ahead.prepared)
                flush = True
            except Exception as exc:
                self._fail(ahead.thread_id, exc)
        if retried:
            # the caches learned the writes as they were planned, not as they landed
            self.clear_cache()
        if flush:
            yield DataOp(flush_wal())

    def _fail(self, thread_id: str, error: Exception) -> None:
        self._failures.setdefault(thread_id, _Failure(error))
        self.clear_cache()
