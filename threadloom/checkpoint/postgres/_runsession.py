"""The Postgres savers' own connection for runs: run locks, and writes sent ahead.

A run (``lock_thread``) holds a session-level advisory lock on this connection, which
the saver opens itself, so the lock never takes a pooled connection away from queries
and dies with the process. Taking or releasing a lock is one lean round trip through
psycopg's low-level ``pq`` API.

With durability="async" a run's writes need not be waited for: the engine goes on to
the next step while the database commits them. ``send`` puts such a write on this
connection in pipeline mode - its statements and a Sync, each write its own transaction -
and ``flush`` sends them to the server at once, without reading the reply. The server
runs it right away, in order; the replies are read by ``drain``, which the saver calls
before anything that must see those writes (any read, and the release of the run lock,
whose reply arrives after all of theirs: one round trip for the whole run's writes).

The I/O is sans-I/O, as in psycopg 3: whatever waits on the socket is a generator
(``PgIO``) that yields a ``Wait`` and is resumed once the socket is ready. ``ready`` /
``wait`` serve it with ``select`` for the sync saver, ``ready_async`` / ``wait_async``
with the event loop for the asyncio one (see ``_fastpath``); everything else - the
pipeline, the prepared statements, the replies - is shared. The session's connection is
a sync psycopg connection for both savers (the asyncio one opens it in a worker thread):
after connecting it is only used through these nonblocking ``pq`` calls.
"""

from __future__ import annotations

import asyncio
import itertools
import select
import struct
import threading
import weakref
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar, cast

import psycopg
from psycopg import pq

from threadloom.checkpoint._sql.statements import Query
from threadloom.checkpoint.postgres._fencing import connection_up, session_up
from threadloom.checkpoint.trace import Trace, TraceEvent

__all__ = [
    "PgIO",
    "RUN_LOCK_SQL",
    "RUN_UNLOCK_FLUSH_SQL",
    "RUN_UNLOCK_SQL",
    "PreparedReads",
    "RunSession",
    "STALE_STATEMENT",
    "Sent",
    "SocketReader",
    "Wait",
    "flush_all",
    "next_result",
    "result_error",
    "ready",
    "ready_async",
    "wait",
    "wait_async",
]

RUN_LOCK_SQL = "SELECT pg_try_advisory_lock(%s)"
RUN_UNLOCK_SQL = "SELECT pg_advisory_unlock(%s)"
# Release plus durability barrier: txid_current() makes this a transaction that commits
# synchronously, and a synchronous commit flushes all earlier WAL - including the relaxed
# commits of the run (see RunGuard) - before the reply comes back.
RUN_UNLOCK_FLUSH_SQL = "SELECT pg_advisory_unlock(%s), txid_current()"
# The session asks the server to notice a vanished client (host down, cable cut) within
# about a minute; a killed process closes its socket and is noticed at once.
SESSION_SQL = (
    "SELECT COALESCE(current_schema(), ''), set_config('tcp_keepalives_idle', '30', false), "
    "set_config('tcp_keepalives_interval', '10', false), "
    "set_config('tcp_keepalives_count', '3', false)"
)
MAX_SENT = 64  # writes sent ahead before the saver waits for their replies

_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)

T = TypeVar("T")


class Wait(NamedTuple):
    """What a ``PgIO`` step waits for: ``fileno`` readable (or, with ``write``, readable
    or writable). It is resumed with whether the socket is readable."""

    fileno: int
    write: bool = False


PgIO = Generator[Wait, bool, T]
"""Work on a libpq connection that waits on its socket only by yielding a ``Wait``."""


def ready(step: Wait) -> bool:
    """Block until ``step``'s socket is ready (``select``, without holding the GIL);
    whether it is readable."""
    sock = step.fileno
    readable, _, _ = select.select([sock], [sock] if step.write else [], [])
    return bool(readable)


async def ready_async(step: Wait) -> bool:
    """``ready`` on the running event loop (its reader / writer callbacks)."""
    loop = asyncio.get_running_loop()
    sock = step.fileno
    done: asyncio.Future[bool] = loop.create_future()

    def wake(readable: bool) -> None:
        if not done.done():
            done.set_result(readable)

    loop.add_reader(sock, wake, True)
    if step.write:
        loop.add_writer(sock, wake, False)
    try:
        return await done
    finally:
        loop.remove_reader(sock)
        if step.write:
            loop.remove_writer(sock)


class SocketReader:
    """A run session's socket watched by one event loop from one wait to the next.

    ``ready_async`` registers a reader callback for each wait and removes it after: two
    ``epoll_ctl`` calls and a handle, about two thirds of what an async wait costs beside
    a ``select`` (about 12 µs against 4 µs, measured on this project's machines), paid
    some ten times per approval cycle. Nothing but its saver touches a run session's
    socket, so the reader stays registered while waits follow one another, and goes when
    the socket turns readable with nobody waiting, before a wait for writing (which
    ``ready_async`` serves), or when the session closes (``RunSession.close``), so a
    closed socket's number is never left registered for another socket to inherit."""

    __slots__ = ("fd", "loop", "registered", "thread", "waiter")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = 0  # the loop's thread: the only one that may change its readers
        self.registered = False
        self.waiter: asyncio.Future[bool] | None = None

    async def wait(self) -> bool:
        """Until the socket is readable (always True, as ``ready_async``'s answer)."""
        loop = asyncio.get_running_loop()
        if loop is not self.loop:
            self.release()
            self.loop, self.thread = loop, threading.get_ident()
        if not self.registered:
            loop.add_reader(self.fd, self._readable)
            self.registered = True
        waiter: asyncio.Future[bool] = loop.create_future()
        self.waiter = waiter
        try:
            return await waiter
        finally:
            self.waiter = None

    def _readable(self) -> None:
        waiter = self.waiter
        if waiter is None:
            self.release()  # a reply nobody waits for yet: watch again at the next wait
        elif not waiter.done():
            waiter.set_result(True)

    def release(self) -> None:
        """Stop watching the socket (on the loop's thread, or handed to it)."""
        loop = self.loop
        if not self.registered or loop is None:
            return
        self.registered = False
        if loop.is_closed():
            return  # its selector went with it
        if threading.get_ident() == self.thread:
            loop.remove_reader(self.fd)
        else:
            try:
                loop.call_soon_threadsafe(loop.remove_reader, self.fd)
            except RuntimeError:  # closed meanwhile
                pass


def wait(io: PgIO[T]) -> T:
    """Drive ``io`` blocking."""
    try:
        step = next(io)
        while True:
            step = io.send(ready(step))
    except StopIteration as stop:
        return cast(T, stop.value)  # what a generator of T returns


async def wait_async(io: PgIO[T]) -> T:
    """Drive ``io`` on the running event loop."""
    try:
        step = next(io)
        while True:
            step = io.send(await ready_async(step))
    except StopIteration as stop:
        return cast(T, stop.value)  # what a generator of T returns


@lru_cache(maxsize=512)
def _numbered(sql: str) -> bytes:
    """``?`` placeholders (the shared core's; it writes no literal ``?``) to ``$1..$n``."""
    parts = sql.split("?")
    out = [f"{part}${i}" for i, part in enumerate(parts[:-1], 1)]
    out.append(parts[-1])
    return "".join(out).encode()


def _pq(sql: str) -> bytes:
    """A run-lock statement (``%s``, one parameter) for the ``pq`` calls."""
    return sql.replace("%s", "$1").encode()


class _Unsendable(TypeError):
    """A parameter this module does not know how to send; the write goes the usual way."""


def _dump(params: Sequence[Any]) -> tuple[list[bytes | None], list[int], list[int]]:
    """Parameters as libpq wants them: values, type oids, formats (0 text, 1 binary)."""
    values: list[bytes | None] = []
    oids: list[int] = []
    formats: list[int] = []
    for value in params:
        sent: bytes | None
        if value is None:
            sent, oid, fmt = None, 0, 0
        elif isinstance(value, str):
            sent, oid, fmt = value.encode(), 25, 0
        elif isinstance(value, bool):
            sent, oid, fmt = (b"t" if value else b"f"), 16, 0
        elif isinstance(value, int):
            sent, oid, fmt = str(value).encode(), 20, 0
        elif isinstance(value, float):
            sent, oid, fmt = repr(value).encode(), 701, 0
        elif isinstance(value, bytes | bytearray | memoryview):
            sent, oid, fmt = bytes(value), 17, 1
        else:
            raise _Unsendable(type(value).__name__)
        values.append(sent)
        oids.append(oid)
        formats.append(fmt)
    return values, oids, formats


def _int(raw: bytes) -> int:
    return int.from_bytes(raw, "big", signed=True)


# Binary-format results: the column types the saver's statements return.
_DECODE: dict[int, Callable[[bytes], Any]] = {
    16: lambda raw: raw == b"\x01",  # bool
    20: _int,  # int8
    21: _int,  # int2
    23: _int,  # int4
    25: bytes.decode,  # text
    1043: bytes.decode,  # varchar
    17: bytes,  # bytea
    701: lambda raw: struct.unpack(">d", raw)[0],  # float8
    3802: lambda raw: raw[1:],  # jsonb: a version byte, then the JSON text
    114: bytes,  # json
}


def _rows(res: pq.abc.PGresult) -> list[tuple[Any, ...]]:
    """The rows of a binary-format result, as psycopg's tuple rows would have them
    (except ``jsonb``, left as its JSON text: the saver parses metadata itself)."""
    decoders = []
    for col in range(res.nfields):
        oid = res.ftype(col)
        if oid not in _DECODE:
            raise psycopg.NotSupportedError(f"no decoder for type oid {oid} (column {col})")
        decoders.append(_DECODE[oid])
    rows: list[tuple[Any, ...]] = []
    get = res.get_value
    for row in range(res.ntuples):
        rows.append(
            tuple(
                None if (raw := get(row, col)) is None else decode(raw)
                for col, decode in enumerate(decoders)
            )
        )
    return rows


@dataclass(slots=True)
class Sent:
    """A write sent ahead: its statements, and once drained their rows or its error."""

    queries: tuple[Query, ...]
    owner: Any = None  # whatever the saver needs to finish the write (see PostgresSaver)
    results: list[Any] = field(default_factory=list)
    error: psycopg.Error | None = None
    # the replies to read: per statement, a prepare's (the first time) and its run's
    replies: list[tuple[Query, bool]] = field(default_factory=list)


class RunSession:
    """The saver's run connection (private to the saver, used behind its mutex)."""

    def __init__(self, conninfo: str, kwargs: dict[str, Any]) -> None:
        self.conn = psycopg.Connection.connect(conninfo, **kwargs, autocommit=True)
        try:
            row = self.conn.execute(SESSION_SQL).fetchone()
        except BaseException:
            self.conn.close()
            raise
        self.schema = str(row[0]) if row else ""
        self.sent: list[Sent] = []
        self._prepared: dict[tuple[str, tuple[int, ...]], bytes] = {}
        self.trace: Trace | None = None  # the saver's (``threadloom.checkpoint.trace``)
        self._fileno = self.conn.pgconn.socket
        self._reader: SocketReader | None = None  # the asyncio saver's (``ready_async``)

    async def ready_async(self, step: Wait) -> bool:
        """``ready_async`` for a wait on this session's socket, whose reader stays
        registered from one wait to the next (``SocketReader``)."""
        if step.fileno != self._fileno:
            return await ready_async(step)
        reader = self._reader
        if step.write:
            if reader is not None:
                reader.release()  # ready_async's own reader and writer take the socket
            return await ready_async(step)
        if reader is None:
            reader = self._reader = SocketReader(step.fileno)
        return await reader.wait()

    @property
    def alive(self) -> bool:
        return connection_up(self.conn)

    def check_alive(self) -> bool:
        """Whether the session is still up, checked without a round trip (see
        ``_fencing.session_up``); replies already there are kept for ``drain``."""
        return session_up(self.conn)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.release()  # before the socket's number can go to another socket
        self.conn.close()

    # -- run locks -----------------------------------------------------------------------

    def call(
        self, sql: str, key: int, *, then: Sent | None = None
    ) -> PgIO[tuple[bool, list[Sent]]]:
        """Run a run-lock statement; whether it answered true, and what was drained with
        it: the writes sent ahead of it (it goes after them) and ``then``, a read sent
        after it - all in one round trip."""
        if self.sent or then is not None:
            query = Query(sql.replace("%s", "?"), (key,), fetch=True)
            # ``then`` goes in the lock's own transaction (one Sync: one transaction, one
            # send, one reply for the server to make); a lock is a session's, which no
            # rollback undoes
            lock = Sent((query,) if then is None else (query, *then.queries))
            self._send(lock)
            done = yield from self.drain()
            if not lock.results:  # (the lock's own statement failed)
                assert lock.error is not None
                raise lock.error
            got = bool(lock.results[0] and lock.results[0][0][0])
            done = [item for item in done if item is not lock]
            if then is not None:
                then.results, then.error = lock.results[1:], lock.error
                done.append(then)
            return got, done
        pgconn = self.conn.pgconn
        if self.trace is not None:
            self.trace(TraceEvent("run", "statement", (sql,)))
        pgconn.send_query_params(_pq(sql), [str(key).encode()])
        res = yield from _reply(pgconn)
        if res is None or res.status != pq.ExecStatus.TUPLES_OK:
            why = _message(res, pgconn) if res is not None else "no reply"
            raise psycopg.OperationalError(f"run lock query failed: {why}")
        return res.get_value(0, 0) == b"t", []

    # -- writes sent ahead ---------------------------------------------------------------

    def send(self, queries: tuple[Query, ...], owner: Any) -> Sent | None:
        """Queue statements as one transaction in libpq's buffer; None (nothing queued)
        if a parameter cannot be sent this way. ``flush`` then sends them, and returns
        without waiting for the replies."""
        item = Sent(queries, owner)
        try:
            self._send(item)
        except _Unsendable:
            return None
        if self.trace is not None:
            self.trace(TraceEvent("run", "send", tuple(q.sql for q in queries)))
        return item

    def flush(self) -> PgIO[None]:
        """Send what is queued (``send``), however large (see ``flush_all``)."""
        return flush_all(self.conn.pgconn)

    def sendable(self, queries: tuple[Query, ...], owner: Any) -> Sent | None:
        """``queries`` as an item to send later (``call(then=...)``); None if a parameter
        cannot be sent this way."""
        try:
            for query in queries:
                _dump(query.params)
        except _Unsendable:
            return None
        return Sent(queries, owner)

    def _send(self, item: Sent) -> None:
        dumped = [_dump(query.params) for query in item.queries]  # may refuse: nothing sent
        pgconn = self.conn.pgconn
        if pgconn.pipeline_status == pq.PipelineStatus.OFF:
            pgconn.enter_pipeline_mode()
        for query, (values, oids, formats) in zip(item.queries, dumped, strict=True):
            key = (query.sql, tuple(oids))
            name = self._prepared.get(key)
            if name is None:
                name = self._prepared[key] = f"_tl_{len(self._prepared)}".encode()
                pgconn.send_prepare(name, _numbered(query.sql), oids)
                item.replies.append((query, True))
            pgconn.send_query_prepared(name, values, formats, result_format=pq.Format.BINARY)
            item.replies.append((query, False))
        pgconn.pipeline_sync()
        self.sent.append(item)

    def drain(self) -> PgIO[list[Sent]]:
        """Read the replies of everything sent ahead, in order; the writes, each with its
        rows or its error. Raises ``psycopg.Error`` if the connection failed; then
        ``sent`` still lists them all, and which of them committed is unknown."""
        sent = self.sent
        if not sent:
            return sent
        if self.trace is not None:
            sql = tuple(q.sql for item in sent for q in item.queries)
            self.trace(TraceEvent("run", "pipeline", sql, len(sent)))
        pgconn = self.conn.pgconn
        yield from flush_all(pgconn)
        for item in sent:
            for query, is_prepare in item.replies:
                res = yield from next_result(pgconn)
                if res is None:
                    raise psycopg.OperationalError("the run connection sent no reply")
                yield from next_result(pgconn)  # the end of this statement's results
                if res.status in _OK:
                    if not is_prepare:
                        item.results.append(_rows(res) if query.fetch else None)
                elif item.error is None:
                    if is_prepare:
                        self._forget(query)
                    item.error = result_error(res, self.conn.info.encoding)
            sync = yield from next_result(pgconn)
            if sync is None or sync.status != pq.ExecStatus.PIPELINE_SYNC:
                raise psycopg.OperationalError("the run connection lost its place in the pipeline")
        pgconn.exit_pipeline_mode()
        self.sent = []
        return sent

    def _forget(self, query: Query) -> None:
        for key in [k for k in self._prepared if k[0] == query.sql]:
            del self._prepared[key]


def flush_all(pgconn: pq.abc.PGconn) -> PgIO[None]:
    """Send everything libpq holds for the server, however large.

    The connection is nonblocking (psycopg's), so one ``flush`` sends what the socket
    takes and reports the rest: a value larger than the socket buffer needs many. While
    waiting to send, replies the server already wrote are read into libpq's buffer (kept
    for ``get_result``): a server blocked on writing its output stops reading ours, and
    neither side would move again."""
    while pgconn.flush():
        if (yield Wait(pgconn.socket, write=True)):
            pgconn.consume_input()


def next_result(pgconn: pq.abc.PGconn) -> PgIO[pq.abc.PGresult | None]:
    """The next result, waiting for the socket when libpq has none complete.

    What the server already sent is read first (a nonblocking read): a reply that came
    while the caller was busy elsewhere - a node running, a write sent ahead - is taken
    without a wait, which costs a ``poll`` on a blocking driver and a turn of the event
    loop on asyncio."""
    if pgconn.is_busy():
        pgconn.consume_input()
        while pgconn.is_busy():
            yield Wait(pgconn.socket)
            pgconn.consume_input()
    return pgconn.get_result()


def _reply(pgconn: pq.abc.PGconn) -> PgIO[pq.abc.PGresult | None]:
    """Flush a statement sent outside pipeline mode and read its one result (and the
    end of its results)."""
    yield from flush_all(pgconn)
    res = yield from next_result(pgconn)
    while (yield from next_result(pgconn)) is not None:
        pass
    return res


#: InvalidSqlStatementName (a DISCARD ALL or DEALLOCATE dropped it), FeatureNotSupported
#: ("cached plan must not change result type": the table changed under it)
STALE_STATEMENT = {"26000", "0A000"}


class PreparedReads:
    """A hot read sent as a prepared statement of its own on a data connection, without
    psycopg's per-query machinery (about 40 µs less per read here), its reply read once
    the caller has done what it can meanwhile (``read(..., meanwhile=...)``).

    The connection must be idle (autocommit, no transaction) and held by the caller.
    Statements are prepared once per connection (names ``_tl_read_N``, unique in the
    process and apart from psycopg's ``_pg3_N``); one that the server no longer has, or
    whose plan no longer fits its table, is dropped and prepared again.
    """

    def __init__(self) -> None:
        self._names: weakref.WeakKeyDictionary[Any, dict[str, bytes]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def read(
        self, conn: Any, query: Query, meanwhile: Callable[[], None]
    ) -> PgIO[list[tuple[Any, ...]] | None]:
        """The rows of ``query`` (``None``: it cannot be sent this way, nothing was sent);
        ``meanwhile`` runs while the server works on it. ``conn``: a sync or async psycopg
        connection. One whose ``prepare_threshold`` is None (e.g. behind PgBouncer in
        transaction mode, where a prepared statement may be gone at the next query) is
        left alone, and so is one the caller put in pipeline mode (its results are the
        caller's)."""
        if (
            conn.prepare_threshold is None
            or conn.pgconn.pipeline_status != pq.PipelineStatus.OFF
        ):
            return None
        try:
            values, oids, formats = _dump(query.params)
        except _Unsendable:
            return None
        pgconn = conn.pgconn
        for attempt in range(2):
            name = yield from self._prepare(conn, query.sql, oids)
            pgconn.send_query_prepared(name, values, formats, result_format=pq.Format.BINARY)
            yield from flush_all(pgconn)
            if attempt == 0:
                meanwhile()
            res = yield from next_result(pgconn)
            while (yield from next_result(pgconn)) is not None:  # the end of its results
                pass
            if res is not None and res.status == pq.ExecStatus.TUPLES_OK:
                return _rows(res)
            error = result_error(res, conn.info.encoding) if res is not None else None
            if error is None:
                raise psycopg.OperationalError("the connection sent no reply")
            if attempt or error.sqlstate not in STALE_STATEMENT:
                raise error
            yield from self._drop(conn, query.sql, name)
        raise AssertionError("unreachable")  # pragma: no cover

    def _prepare(self, conn: Any, sql: str, oids: list[int]) -> PgIO[bytes]:
        with self._lock:
            name = self._names.setdefault(conn, {}).get(sql)
        if name is not None:
            return name
        name = f"_tl_read_{next(_statement_numbers)}".encode()
        conn.pgconn.send_prepare(name, _numbered(sql), oids)
        res = yield from _reply(conn.pgconn)
        if res is None:
            raise psycopg.OperationalError("the connection sent no reply")
        if res.status != pq.ExecStatus.COMMAND_OK:
            raise result_error(res, conn.info.encoding)
        with self._lock:
            self._names.setdefault(conn, {})[sql] = name
        return name

    def _drop(self, conn: Any, sql: str, name: bytes) -> PgIO[None]:
        """Forget a stale statement, and deallocate it if the server still has it."""
        with self._lock:
            self._names.get(conn, {}).pop(sql, None)
        conn.pgconn.send_query(b'DEALLOCATE "' + name + b'"')
        yield from _reply(conn.pgconn)  # an error here is harmless


_statement_numbers = itertools.count()


def _message(res: pq.abc.PGresult, pgconn: pq.abc.PGconn) -> str:
    return (res.error_message or pgconn.error_message or b"").decode(errors="replace").strip()


def result_error(res: pq.abc.PGresult, encoding: str) -> psycopg.Error:
    """The error a failed result stands for (``PipelineAborted`` for a statement skipped
    after an earlier one of its pipeline sync failed)."""
    if res.status == pq.ExecStatus.PIPELINE_ABORTED:
        return psycopg.errors.PipelineAborted("an earlier statement of this write failed")
    return psycopg.errors.error_from_result(res, encoding=encoding)
