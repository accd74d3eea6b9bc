"""``StatementPipe``: a process's single statements, from all its coroutines, pipelined
on a few connections of the storage's own.

Most of what the server asks PostgreSQL is one statement in a transaction of its own:
create a thread, read a thread and its assistant, queue a run, claim runs, end a run.
Through psycopg's pool, each cost this machine about 170 µs of the asking process's
CPU (the pool's checkout and return, a cursor, and two changes of the event loop's
readers per wait), and the API process spent some 45% of its CPU there in an approval
round trip. A pipe sends each statement at once in libpq's pipeline mode, followed by
a Sync - so it is its own transaction, committed when it ends, as in autocommit - and
one reader callback, registered with the event loop as long as the connection lives,
reads the replies as they come and hands each to its caller, in the order sent.
Statements of concurrent requests do not wait for each other's replies: about 15-50 µs
each (``bench/RESULTS.md``).

Parameters and rows go through psycopg's own adapters (``Transformer``), so a caller
gets what ``cursor.execute`` would have given it. A statement used twice is prepared
(a name per connection; at most ``PREPARED_MAX`` of them, later ones go unnamed); one
the server no longer has, or whose plan no longer fits its table, is prepared again.

What may go through a pipe: a single statement (psycopg's ``%s`` and ``%b``
placeholders) that needs no transaction around it. Statements on one connection run one
after another, so one waiting for a row lock delays those behind it on that connection -
never for ever: what it waits for is a transaction on another connection, and the
storage never waits for a pipe while it holds a transaction open. Each statement goes to
the connection with the fewest in flight (``lanes`` connections at most, opened as
needed). A connection that fails fails the statements in flight on it with
``psycopg.OperationalError`` (whether each committed is unknown, as for any statement
whose connection dropped) and is replaced at the next statement; a statement that finds
its connection dropped before it went out is sent again on a new one.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import deque
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

from threadloom.checkpoint.postgres._runsession import STALE_STATEMENT, result_error

__all__ = ["PREPARED_MAX", "StatementPipe", "pipeable"]

#: the most statements a connection of a pipe prepares (others are sent unnamed)
PREPARED_MAX = 128

_TEXT = pq.Format.TEXT
_BINARY = pq.Format.BINARY
_SYNC = pq.ExecStatus.PIPELINE_SYNC
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
_PLACEHOLDER = re.compile(r"%[sb]")
_Key = tuple[bytes, tuple[int, ...]]  # a prepared statement's: its SQL, its parameter types


@lru_cache(maxsize=1024)
def _numbered(sql: str) -> tuple[bytes, list[PyFormat]] | None:
    """``%s`` / ``%b`` placeholders to ``$1..$n``, and each one's format (as psycopg's:
    ``%b`` binary, ``%s`` the type's choice); None when the statement uses any other
    ``%`` form (``%%``, ``%(name)s``...), which only psycopg itself parses."""
    parts = _PLACEHOLDER.split(sql)
    if any("%" in part for part in parts):
        return None
    formats = [PyFormat.BINARY if mark == "%b" else PyFormat.AUTO
               for mark in _PLACEHOLDER.findall(sql)]
    out = [f"{part}${i}" for i, part in enumerate(parts[:-1], 1)]
    out.append(parts[-1])
    return "".join(out).encode(), formats


def pipeable(sql: str) -> bool:
    """Whether ``sql`` can go through a pipe (its placeholders are all ``%s`` or
    ``%b``)."""
    return _numbered(sql) is not None


class _Pending:
    """A statement sent: its caller's future, and the results read for it so far."""

    __slots__ = ("future", "key", "prepared_now", "results")

    def __init__(self, future: asyncio.Future[list[tuple[Any, ...]]], key: _Key | None,
                 prepared_now: bool) -> None:
        self.future = future
        self.key = key  # its prepared statement's key (None: sent unnamed)
        self.prepared_now = prepared_now  # its Prepare went with it
        self.results: list[pq.abc.PGresult] = []


class _Lane:
    """One connection of a pipe, in pipeline mode, read by its reader callback."""

    def __init__(self, conn: psycopg.AsyncConnection, loop: asyncio.AbstractEventLoop
                 ) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self.loop = loop
        self.fd = self.pgconn.socket
        self.encoding = conn.info.encoding
        self.dumper = Transformer.from_context(conn)
        self.loader = Transformer.from_context(conn)
        self.prepared: dict[_Key, bytes] = {}
        self.names = itertools.count()
        self.seen: dict[_Key, None] = {}  # statements used once (not prepared yet)
        self.queue: deque[_Pending] = deque()
        self.writing = False
        self.failed: BaseException | None = None
        self.closing: str | None = None  # (``_notice``)
        conn.add_notice_handler(self._notice)
        self.pgconn.nonblocking = 1
        self.pgconn.enter_pipeline_mode()
        loop.add_reader(self.fd, self._readable)

    def __len__(self) -> int:
        return len(self.queue)

    # -- sending -----------------------------------------------------------------------

    def send(self, sql: bytes, placeholders: list[PyFormat], params: Sequence[Any],
             result_format: pq.Format = _TEXT) -> asyncio.Future[list[tuple[Any, ...]]]:
        """Send one statement with its Sync; the future of its rows (``placeholders``:
        each parameter's format, see ``_numbered``). Raises
        ``OperationalError`` with nothing sent when the connection has failed - also
        when, idle, it finds the server dropped it (before the event loop said so)."""
        if not self.queue and self.failed is None:
            self._readable()  # (one nonblocking read: what came since, if anything)
        if self.failed is not None:
            raise psycopg.OperationalError(f"the connection failed: {self.failed}")
        values = self.dumper.dump_sequence(params, placeholders)
        types = tuple(self.dumper.types or ())
        formats = list(self.dumper.formats or ())
        key = (sql, types)
        name = self.prepared.get(key)
        prepared_now = False
        pgconn = self.pgconn
        if name is None and key in self.seen and len(self.prepared) < PREPARED_MAX:
            del self.seen[key]
            name = self.prepared[key] = f"_tl_pipe_{next(self.names)}".encode()
            prepared_now = True
        try:
            if name is not None and prepared_now:
                pgconn.send_prepare(name, sql, types)
            if name is None:
                self.seen[key] = None
                while len(self.seen) > 4 * PREPARED_MAX:
                    del self.seen[next(iter(self.seen))]
                pgconn.send_query_params(sql, values, types, formats, result_format)
            else:
                pgconn.send_query_prepared(name, values, formats, result_format)
            pgconn.pipeline_sync()
        except psycopg.Error as exc:  # the connection failed
            self.fail(exc)
            raise
        future: asyncio.Future[list[tuple[Any, ...]]] = self.loop.create_future()
        self.queue.append(_Pending(future, None if name is None else key, prepared_now))
        self._flush()
        return future

    def forget(self, key: _Key | None) -> None:
        """Prepare ``key`` again at its next use (the server no longer has it as it was)."""
        if key is not None:
            self.prepared.pop(key, None)

    def _flush(self) -> None:
        try:
            more = self.pgconn.flush()
        except psycopg.Error as exc:
            self.fail(exc)
            return
        if more and not self.writing:
            self.loop.add_writer(self.fd, self._flush)
            self.writing = True
        elif not more and self.writing:
            self.loop.remove_writer(self.fd)
            self.writing = False
        # (a flush that could not send everything reads what the server sent meanwhile,
        # so replies may be waiting in libpq's buffer with nothing left on the socket)
        self._take()

    # -- receiving ---------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            self.pgconn.consume_input()
            if not self.queue:  # idle: parse what came anyway (a FATAL notice)
                self.pgconn.is_busy()
        except psycopg.Error as exc:
            self.fail(exc)
            return
        if self.closing is not None:  # the server is closing the connection
            self.fail(psycopg.OperationalError(self.closing))
            return
        self._take()

    def _notice(self, diag: psycopg.errors.Diagnostic) -> None:
        """psycopg's notice handler: a FATAL message to an idle connection is the server
        closing it (a backend terminated, the database shutting down) - the statements
        sent next would be lost with it."""
        if diag.severity_nonlocalized in ("FATAL", "PANIC"):
            self.closing = diag.message_primary or "the server closed the connection"

    def _take(self) -> None:
        """Hand out the replies libpq has complete."""
        pgconn = self.pgconn
        ended = False  # the last result read ended a statement's results
        while self.queue and not pgconn.is_busy():
            res = pgconn.get_result()
            if res is None:
                if ended:
                    break  # nothing more complete: wait for the socket
                ended = True
                continue
            ended = False
            pending = self.queue[0]
            if res.status == _SYNC:
                self.queue.popleft()
                self._finish(pending)
            else:
                pending.results.append(res)

    def _finish(self, pending: _Pending) -> None:
        error = None
        for index, res in enumerate(pending.results):
            if res.status not in _OK:
                error = result_error(res, self.encoding)
                # not prepared after all (its Prepare failed), or no longer as it was
                if (pending.prepared_now and index == 0) or error.sqlstate in STALE_STATEMENT:
                    self.forget(pending.key)
                break
        if pending.future.done():  # its caller gave up waiting
            return
        if error is not None:
            pending.future.set_exception(error)
            return
        last = pending.results[-1] if pending.results else None
        if last is None or last.status != pq.ExecStatus.TUPLES_OK:
            pending.future.set_result([])
            return
        try:
            self.loader.set_pgresult(last)
            rows = self.loader.load_rows(0, last.ntuples, tuple)
        except Exception as exc:  # a value psycopg cannot load
            pending.future.set_exception(exc)
            return
        pending.future.set_result(rows)

    # -- ending ------------------------------------------------------------------------

    def fail(self, error: BaseException) -> None:
        """Close the connection; the statements in flight fail with ``error``."""
        if self.failed is None:
            self.failed = error
        self._unregister()
        if not self.conn.closed:
            self.conn.pgconn.finish()
        queue, self.queue = self.queue, deque()
        for pending in queue:
            if not pending.future.done():
                pending.future.set_exception(
                    psycopg.OperationalError(f"the connection failed: {error}")
                )

    def _unregister(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.remove_reader(self.fd)
        if self.writing:
            self.loop.remove_writer(self.fd)
            self.writing = False


class StatementPipe:
    """Single statements, each its own transaction, pipelined on up to ``lanes``
    connections to ``url`` (see the module's documentation)."""

    def __init__(self, url: str, *, lanes: int = 2) -> None:
        self.url = url
        self.lanes = max(1, int(lanes))
        self._lanes: list[_Lane] = []
        self._opening = asyncio.Lock()
        self._opening_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def rows(self, sql: str, params: Sequence[Any] = (), *, binary: bool = False
                   ) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` (``[]`` for a statement returning none), run with
        ``params`` as its own transaction. ``sql``: see ``pipeable``. ``binary``: the
        rows come in binary (``bytea`` as it is, not as hex text to decode: for rows
        carrying large values)."""
        numbered = _numbered(sql)
        if numbered is None:
            raise ValueError(
                f"not a statement a pipe can send (only %s and %b placeholders): {sql!r}")
        text, formats = numbered
        params = tuple(params)
        unsent = 0
        stale = False
        while True:
            lane = await self._lane()
            try:
                future = lane.send(text, formats, params, _BINARY if binary else _TEXT)
            except psycopg.OperationalError:
                # the connection was found dropped before the statement and its Sync went
                # out (a database restarted, a backend terminated): none of it ran, so it
                # goes on another connection (each of those open may be found dropped
                # too; a new one is opened after them)
                unsent += 1
                if unsent > self.lanes:
                    raise
                continue
            try:
                return await future
            except psycopg.Error as exc:
                if stale or exc.sqlstate not in STALE_STATEMENT:
                    raise
                stale = True

    async def _lane(self) -> _Lane:
        """The open connection with the fewest statements in flight; another is opened
        while there are fewer than ``lanes`` and each has some."""
        loop = asyncio.get_running_loop()
        lane = self._pick(loop)
        if lane is not None:
            return lane
        if self._opening_loop is not loop:  # (a lock serves one event loop)
            self._opening, self._opening_loop = asyncio.Lock(), loop
        async with self._opening:
            lane = self._pick(loop)  # (another caller may have opened one meanwhile)
            if lane is not None:
                return lane
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            if self._closed:
                await conn.close()
                raise psycopg.OperationalError("the storage is closed")
            lane = _Lane(conn, loop)
            self._lanes.append(lane)
            return lane

    def _pick(self, loop: asyncio.AbstractEventLoop) -> _Lane | None:
        """The lane to use, or None to open one."""
        if self._closed:
            raise psycopg.OperationalError("the storage is closed")
        live = []
        for lane in self._lanes:
            if lane.failed is None and lane.loop is not loop:
                lane.fail(psycopg.OperationalError("its event loop is not running"))
            if lane.failed is None:
                live.append(lane)
        self._lanes = live
        best = min(live, key=len, default=None)
        if best is not None and (len(best) == 0 or len(live) >= self.lanes):
            return best
        return None

    async def close(self) -> None:
        """Close the connections; statements still in flight fail."""
        self._closed = True
        lanes, self._lanes = self._lanes, []
        for lane in lanes:
            lane.fail(psycopg.OperationalError("the storage is closed"))
