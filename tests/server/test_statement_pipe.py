"""The PostgreSQL server storage's statement pipe (``_statement_pipe.StatementPipe``):
many coroutines' single statements pipelined on a few connections, each statement its
own transaction - what callers get back, and the unhappy paths: a failing statement
among others, a large value among small ones, a connection killed mid-statement or
while idle, a prepared statement gone stale, a caller that stops waiting, closing."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest

from threadloom.server.storage import _statement_pipe
from threadloom.server.storage._statement_pipe import StatementPipe, pipeable


@pytest.fixture
def on_pipe(postgres_schema_url: str) -> Callable[[Callable[[StatementPipe], Awaitable[Any]]], Any]:
    """Run a scenario with a pipe on this test's schema; the pipe is closed after."""

    def run(scenario: Callable[[StatementPipe], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            pipe = StatementPipe(postgres_schema_url)
            try:
                return await asyncio.wait_for(scenario(pipe), 120)
            finally:
                await pipe.close()

        return asyncio.run(main())

    return run


def test_concurrent_statements_each_get_their_own_rows_as_psycopg_gives_them(on_pipe) -> None:
    async def scenario(pipe: StatementPipe) -> None:
        results = await asyncio.gather(*(
            pipe.rows("SELECT %s::int * 2, %s, %s::text[]", (i, f"t{i}", [str(i)]))
            for i in range(500)
        ))
        assert results == [[(2 * i, f"t{i}", [str(i)])] for i in range(500)]
        [(when, doc, nothing, raw, ok)] = await pipe.rows(
            "SELECT now(), %s::jsonb, %s::text, %s::bytea, %s = ANY(%s)",
            ('{"a": [1]}', None, b"\x00\xff", 2, [1, 2]),
        )
        assert isinstance(when, datetime.datetime) and when.tzinfo is not None
        assert (doc, nothing, raw, ok) == ({"a": [1]}, None, b"\x00\xff", True)
        # a statement returning no rows, or none at all
        await pipe.rows("CREATE TABLE t (k text PRIMARY KEY, v text)")
        assert await pipe.rows("INSERT INTO t VALUES (%s, %s)", ("a", "1")) == []
        assert await pipe.rows("SELECT * FROM t WHERE k = %s", ("zzz",)) == []
        assert len(pipe._lanes) <= pipe.lanes

    on_pipe(scenario)


def test_a_failing_statement_fails_alone_and_commits_nothing(on_pipe) -> None:
    async def scenario(pipe: StatementPipe) -> None:
        await pipe.rows("CREATE TABLE t (k text PRIMARY KEY)")
        await pipe.rows("INSERT INTO t VALUES ('taken')")
        outcomes = await asyncio.gather(
            pipe.rows("INSERT INTO t VALUES (%s) RETURNING k", ("one",)),
            # its own transaction: the row it inserts first is not kept
            pipe.rows("WITH a AS (INSERT INTO t VALUES ('lost') RETURNING 1) "
                      "INSERT INTO t SELECT 'taken' FROM a"),
            pipe.rows("SELECT 1 / %s", (0,)),
            pipe.rows("INSERT INTO t VALUES (%s) RETURNING k", ("two",)),
            return_exceptions=True,
        )
        assert outcomes[0] == [("one",)] and outcomes[3] == [("two",)]
        assert isinstance(outcomes[1], psycopg.errors.UniqueViolation)
        assert isinstance(outcomes[2], psycopg.errors.DivisionByZero)
        rows = await pipe.rows("SELECT k FROM t ORDER BY k")
        assert rows == [("one",), ("taken",), ("two",)]
        # a transaction-local setting ends with its statement
        await pipe.rows("SELECT set_config('synchronous_commit', 'off', true)")
        assert await pipe.rows("SHOW synchronous_commit") == [("on",)]
        # a statement that failed as it was prepared (its second use) works once fixed
        for _ in range(3):
            with pytest.raises(psycopg.errors.UndefinedTable):
                await pipe.rows("SELECT count(*) FROM later")
        await pipe.rows("CREATE TABLE later (x int)")
        assert await pipe.rows("SELECT count(*) FROM later") == [(0,)]

    on_pipe(scenario)


def test_a_large_value_goes_through_among_small_statements(on_pipe) -> None:
    """A value far larger than the socket's buffers is sent while the replies of the
    statements around it come back (nothing waits on the other forever), and read back
    whole."""
    big = "x" * (48 * 1024 * 1024)

    async def scenario(pipe: StatementPipe) -> None:
        await pipe.rows("CREATE TABLE big (k int PRIMARY KEY, v text)")
        small = [pipe.rows("SELECT %s::int", (i,)) for i in range(200)]
        results = await asyncio.gather(
            *small[:100],
            pipe.rows("INSERT INTO big VALUES (1, %s) RETURNING length(v)", (big,)),
            *small[100:],
        )
        assert results[100] == [(len(big),)]
        assert results[:100] + results[101:] == [[(i,)] for i in range(200)]
        [(back,)] = await pipe.rows("SELECT v FROM big WHERE k = 1")
        assert back == big

    on_pipe(scenario)


def test_a_killed_connection_fails_what_was_in_flight_and_the_next_statement_reconnects(
    on_pipe, postgres_schema_url: str,
) -> None:
    async def scenario(pipe: StatementPipe) -> None:
        [(pid,)] = await pipe.rows("SELECT pg_backend_pid()")
        slow = asyncio.ensure_future(pipe.rows("SELECT pg_sleep(30)"))
        await asyncio.sleep(0.3)
        async with await psycopg.AsyncConnection.connect(postgres_schema_url,
                                                         autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            await slow
        [(again,)] = await pipe.rows("SELECT pg_backend_pid()")
        assert again != pid
        assert await pipe.rows("SELECT %s::int", (7,)) == [(7,)]

    on_pipe(scenario)


def test_a_connection_dropped_while_idle_loses_no_statement(postgres_schema_url: str) -> None:
    """The server drops the pipe's idle connections (a database restart, every backend
    terminated) and the event loop has not run since: the statements sent next find
    them dropped before anything goes out, and go on new connections - none fails.
    (Before: the first statement on each such connection failed.)"""
    import time

    async def scenario() -> None:
        pipe = StatementPipe(postgres_schema_url, lanes=2)
        try:
            pids = {row[0] for rows in await asyncio.gather(
                *(pipe.rows("SELECT pg_backend_pid() FROM pg_sleep(0.05)") for _ in range(4)))
                    for row in rows}
            assert len(pids) == 2  # both connections open, both idle now
            with psycopg.connect(postgres_schema_url, autocommit=True) as admin:
                for pid in pids:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                # (blocking: the pipe's reader callbacks cannot run meanwhile)
                while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = "
                                    "ANY(%s)", (list(pids),)).fetchone() != (0,):
                    time.sleep(0.01)
            rows = await asyncio.gather(*(pipe.rows("SELECT %s::int, pg_backend_pid()", (i,))
                                          for i in range(10)))
            assert [r[0][0] for r in rows] == list(range(10))
            assert not {r[0][1] for r in rows} & pids
        finally:
            await pipe.close()

    asyncio.run(scenario())


def test_a_statement_failing_as_it_runs_stays_prepared_once(postgres_schema_url: str) -> None:
    """A statement prepared fine whose runs fail (a unique violation, each time) is not
    prepared again and again: the server holds it once."""
    async def scenario() -> None:
        pipe = StatementPipe(postgres_schema_url, lanes=1)
        try:
            await pipe.rows("CREATE TABLE t (k text PRIMARY KEY)")
            await pipe.rows("INSERT INTO t VALUES ('taken')")
            for _ in range(6):
                with pytest.raises(psycopg.errors.UniqueViolation):
                    await pipe.rows("INSERT INTO t VALUES (%s)", ("taken",))
            [(held,)] = await pipe.rows("SELECT count(*) FROM pg_prepared_statements "
                                        "WHERE statement LIKE %s", ("INSERT INTO t %",))
            assert held == 1
        finally:
            await pipe.close()

    asyncio.run(scenario())


def test_a_prepared_statement_whose_table_changed_is_prepared_again(on_pipe) -> None:
    async def scenario(pipe: StatementPipe) -> None:
        await pipe.rows("CREATE TABLE t (a int)")
        await pipe.rows("INSERT INTO t VALUES (1)")
        for _ in range(3):  # prepared at its second use
            assert await pipe.rows("SELECT * FROM t") == [(1,)]
        await pipe.rows("ALTER TABLE t ADD COLUMN b text DEFAULT 'new'")
        assert await pipe.rows("SELECT * FROM t") == [(1, "new")]
        await pipe.rows("DEALLOCATE ALL")  # the server forgot them all
        assert await pipe.rows("SELECT * FROM t") == [(1, "new")]

    on_pipe(scenario)


def test_a_caller_that_stops_waiting_leaves_the_others_their_replies(on_pipe) -> None:
    async def scenario(pipe: StatementPipe) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pipe.rows("SELECT pg_sleep(0.5), 'late'"), 0.1)
        # the reply it left still comes, and goes to nobody
        assert await pipe.rows("SELECT %s", ("mine",)) == [("mine",)]
        results = await asyncio.gather(*(pipe.rows("SELECT %s::int", (i,)) for i in range(50)))
        assert results == [[(i,)] for i in range(50)]

    on_pipe(scenario)


def test_more_statements_than_it_prepares_still_run(on_pipe, monkeypatch) -> None:
    monkeypatch.setattr(_statement_pipe, "PREPARED_MAX", 3)

    async def scenario(pipe: StatementPipe) -> None:
        for _ in range(3):
            for i in range(10):
                assert await pipe.rows(f"SELECT {i} + %s::int", (1,)) == [(i + 1,)]
        assert all(len(lane.prepared) <= 3 for lane in pipe._lanes)

    on_pipe(scenario)


def test_what_it_refuses_and_a_closed_pipe(on_pipe) -> None:
    assert pipeable("SELECT %s") and not pipeable("SELECT '100%%'")
    assert not pipeable("SELECT %(name)s") and pipeable("SELECT %s, %b")

    async def scenario(pipe: StatementPipe) -> None:
        with pytest.raises(ValueError, match="only %s and %b placeholders"):
            await pipe.rows("SELECT %(name)s", {"name": 1})  # type: ignore[arg-type]
        with pytest.raises(psycopg.ProgrammingError):  # a value psycopg cannot adapt
            await pipe.rows("SELECT %s", (object(),))
        assert await pipe.rows("SELECT 1") == [(1,)]
        # %b: binary, as psycopg's cursors send it (bytes inside an array too)
        raw = [bytes(range(256)), b"", b"\\x00"]
        assert await pipe.rows("SELECT %b::bytea[], %s::text", (raw, "a%b")) == [(raw, "a%b")]
        slow = asyncio.ensure_future(pipe.rows("SELECT pg_sleep(30)"))
        await asyncio.sleep(0.2)
        await pipe.close()
        with pytest.raises(psycopg.OperationalError, match="closed"):
            await slow
        with pytest.raises(psycopg.OperationalError, match="closed"):
            await pipe.rows("SELECT 1")

    on_pipe(scenario)
