"""The sync Postgres saver's run session: writes sent ahead, and what happens when they
fail, when the session dies, when a run reads mid-way, when a run writes many steps.

See ``threadloom.checkpoint.postgres._runsession``. These run against a real server
(``THREADLOOM_TEST_POSTGRES_URL``); under CI=true they must not skip.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from helpers import POSTGRES_URL, require_postgres

from threadloom.checkpoint.postgres import PostgresSaver
from threadloom.checkpoint.postgres._runsession import MAX_SENT, _dump, _numbered, _Unsendable
from threadloom.checkpoint.trace import TraceEvent
from threadloom.errors import CheckpointConflictError
from threadloom.graph import END, START, StateGraph


class Log(TypedDict):
    items: Annotated[list[str], operator.add]


@pytest.fixture
def saver(pg_schemas: Callable[[], str]) -> Iterator[PostgresSaver]:
    """A set-up sync Postgres saver in a schema of its own (its URL: ``_conninfo``)."""
    require_postgres()
    with PostgresSaver.from_conn_string(pg_schemas()) as saver:
        saver.setup()
        yield saver


def _chain(saver: PostgresSaver, names: list[str], hooks: dict[str, Callable[[], None]]) -> Any:
    """START -> names[0] -> ... -> END; each node appends its name (after its hook)."""

    def node(name: str) -> Callable[[Log], dict[str, list[str]]]:
        def run(state: Log) -> dict[str, list[str]]:
            if name in hooks:
                hooks[name]()
            return {"items": [name]}

        return run

    builder = StateGraph(Log)
    for name in names:
        builder.add_node(name, node(name))
    for a, b in zip([START, *names], [*names, END], strict=True):
        builder.add_edge(a, b)
    return builder.compile(checkpointer=saver)


def _once(hook: Callable[[], None]) -> Callable[[], None]:
    """``hook`` on the first call only (a later run of the same graph runs plainly)."""
    calls: list[None] = []

    def run() -> None:
        if not calls:
            calls.append(None)
            hook()

    return run


def _history(graph: Any, config: dict[str, Any]) -> list[list[str]]:
    return [s.values.get("items", []) for s in graph.get_state_history(config)]


def test_a_run_reading_its_thread_mid_way_sees_the_writes_sent_ahead(saver: PostgresSaver) -> None:
    config = {"configurable": {"thread_id": "t"}}
    seen: list[list[str]] = []
    graph = _chain(saver, ["a", "b", "c"], {"c": lambda: seen.append(read())})

    def read() -> list[str]:
        return list(graph.get_state(config).values["items"])

    assert graph.invoke({"items": []}, config) == {"items": ["a", "b", "c"]}
    assert seen == [["a", "b"]]  # what b's checkpoint holds, read while c runs
    assert _history(graph, config) == [["a", "b", "c"], ["a", "b"], ["a"], [], []]


def test_a_stale_delta_base_is_retried_and_later_writes_run_again(saver: PostgresSaver) -> None:
    """Mid-run, another process deletes the stored values the next write's delta builds
    on. That write fails its base check when its reply is read; it is retried whole, and
    the writes sent after it (whose head check saw the gap) run again."""
    config = {"configurable": {"thread_id": "t"}}

    def drop_values() -> None:
        saver.get_tuple(config)  # wait for the writes sent so far
        with psycopg.connect(saver._conninfo or "", autocommit=True) as other:
            other.execute("DELETE FROM threadloom_blobs WHERE channel = 'items'")

    graph = _chain(saver, ["a", "b", "c", "d"], {"c": drop_values})
    assert graph.invoke({"items": []}, config) == {"items": ["a", "b", "c", "d"]}
    saver.clear_cache()  # read what the database holds, not what this process cached
    assert graph.get_state(config).values == {"items": ["a", "b", "c", "d"]}
    assert not saver._lock_session.sent  # type: ignore[union-attr]


def test_a_write_that_fails_when_its_reply_is_read_fails_the_run(saver: PostgresSaver) -> None:
    """The thread is deleted by someone else mid-run: the next checkpoint's head check
    fails. The run raises (when the reply is read, at the latest when it ends), the run
    lock is released and the caches no longer claim the lost writes."""
    config = {"configurable": {"thread_id": "t"}}
    with PostgresSaver.from_conn_string(saver._conninfo or "") as other:

        def delete() -> None:
            saver.get_tuple(config)
            other.delete_thread("t")

        graph = _chain(saver, ["a", "b", "c"], {"b": _once(delete)})
        with pytest.raises(CheckpointConflictError, match="moved on"):
            graph.invoke({"items": []}, config)
    assert graph.get_state(config).values == {}  # the run's later writes did not land
    assert graph.invoke({"items": []}, config) == {"items": ["a", "b", "c"]}  # not held


def test_a_failed_write_fails_its_own_run_not_the_run_that_read_its_reply(
    saver: PostgresSaver,
) -> None:
    """Two runs share the saver's run session. Run 1's write fails on the server; run 2,
    starting in another thread, reads that reply (its run lock goes after the write).
    Run 2 goes on untouched; run 1 raises at its next write."""
    one = {"configurable": {"thread_id": "one"}}
    two = {"configurable": {"thread_id": "two"}}
    second = _chain(saver, ["x", "y"], {})
    results: list[Any] = []
    with PostgresSaver.from_conn_string(saver._conninfo or "") as other:

        def delete() -> None:  # the checkpoint after b will fail its head check
            saver.get_tuple(one)
            other.delete_thread("one")

        def run_two() -> None:
            worker = threading.Thread(
                target=lambda: results.append(second.invoke({"items": []}, two))
            )
            worker.start()
            worker.join()

        first = _chain(saver, ["a", "b", "c"], {"b": _once(delete), "c": _once(run_two)})
        with pytest.raises(CheckpointConflictError, match="moved on"):
            first.invoke({"items": []}, one)
    assert results == [{"items": ["x", "y"]}]
    saver.clear_cache()
    assert _history(second, two) == [["x", "y"], ["x"], [], []]
    assert first.get_state(one).values == {}
    assert first.invoke({"items": []}, one) == {"items": ["a", "b", "c"]}  # not held


def test_writes_sent_ahead_survive_the_run_session_dying(saver: PostgresSaver) -> None:
    """The run session's connection dies with writes sent on it: their fate is unknown,
    so they run again on the data connection (a write is idempotent)."""
    config = {"configurable": {"thread_id": "t"}}

    def kill() -> None:
        session = saver._lock_session
        assert session is not None and session.sent  # the checkpoint before b's
        session.conn.pgconn.finish()  # the socket closes; the server drops its locks

    graph = _chain(saver, ["a", "b", "c"], {"b": kill})
    assert graph.invoke({"items": []}, config) == {"items": ["a", "b", "c"]}
    saver.clear_cache()
    assert _history(graph, config) == [["a", "b", "c"], ["a", "b"], ["a"], [], []]
    assert graph.invoke(None, config) == {"items": ["a", "b", "c"]}  # a new session


def test_a_long_run_waits_for_its_writes_at_each_step(saver: PostgresSaver) -> None:
    """Each checkpoint waits for the writes sent before it (so a failed write stops the
    run before the next step starts): while a node runs, only the checkpoint before it
    is in flight."""
    names = [f"n{i}" for i in range(MAX_SENT + 6)]
    most = 0

    def count() -> None:
        nonlocal most
        most = max(most, len(saver._lock_session.sent))  # type: ignore[union-attr]

    graph = _chain(saver, names, {name: count for name in names})
    config = {"configurable": {"thread_id": "t"}}
    assert graph.invoke({"items": []}, config)["items"] == names
    assert most == 1
    saver.clear_cache()
    assert len(_history(graph, config)) == len(names) + 2


def test_a_wide_step_waits_for_its_writes_every_max_sent(
    pg_schemas: Callable[[], str],
) -> None:
    in_flight = most = 0

    def trace(event: TraceEvent) -> None:  # writes sent ahead, until a wait drains them
        nonlocal in_flight, most
        if event.kind == "send":
            in_flight += 1
            most = max(most, in_flight)
        elif event.kind == "pipeline":
            in_flight = 0

    require_postgres()
    with PostgresSaver.from_conn_string(pg_schemas(), trace=trace) as saver:
        saver.setup()
        _run_a_wide_step(saver)
    assert most == MAX_SENT  # never more in flight


def _run_a_wide_step(saver: PostgresSaver) -> None:
    names = [f"n{i}" for i in range(MAX_SENT + 6)]
    builder = StateGraph(Log)
    for name in names:
        builder.add_node(name, lambda state, name=name: {"items": [name]})
        builder.add_edge(START, name)
        builder.add_edge(name, END)
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}}
    assert sorted(graph.invoke({"items": []}, config)["items"]) == sorted(names)


def test_the_session_sends_what_the_core_writes() -> None:
    assert _numbered("SELECT ? WHERE a = ? AND b = ?") == b"SELECT $1 WHERE a = $2 AND b = $3"
    values, oids, formats = _dump(["t", None, 3, 1.5, b"\x00\x01", True])
    assert values == [b"t", None, b"3", b"1.5", b"\x00\x01", b"t"]
    assert oids == [25, 0, 20, 701, 17, 16] and formats == [0, 0, 0, 0, 1, 0]
    with pytest.raises(_Unsendable):
        _dump([object()])


def test_a_head_read_thaws_the_values_it_expects_while_its_query_runs(saver: PostgresSaver) -> None:
    graph = _chain(saver, ["a", "b"], {})
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"items": []}, config)
    thawed: list[Any] = []
    real = saver._core.values.thawed

    def spy(keys: Any) -> Any:
        got = real(keys)
        thawed.append(sorted(k[2] for k in got))
        return got

    saver._core.values.thawed = spy  # type: ignore[method-assign]
    first, second = graph.get_state(config), graph.get_state(config)
    assert first.values == second.values == {"items": ["a", "b"]}
    # the first read froze what it decoded; the second thawed it ahead
    assert thawed[0] == [] and "items" in thawed[1]
    first.values["items"].append("mine")  # each read is the reader's own
    assert graph.get_state(config).values == {"items": ["a", "b"]}


def test_a_head_read_whose_guess_misses_reads_what_is_stored(saver: PostgresSaver) -> None:
    """Another process moved the thread on: the values thawed ahead are those of the
    head this process knew, and the read uses what the query found instead."""
    config = {"configurable": {"thread_id": "t"}}
    _chain(saver, ["a", "b"], {}).invoke({"items": []}, config)
    with PostgresSaver.from_conn_string(saver._conninfo or "") as other:
        _chain(other, ["c"], {}).invoke({"items": ["x"]}, config)
    tup = saver.get_tuple(config)
    assert tup is not None
    assert tup.checkpoint["channel_values"]["items"] == ["a", "b", "x", "c"]


def test_a_head_read_survives_its_prepared_statement_being_dropped(saver: PostgresSaver) -> None:
    graph = _chain(saver, ["a"], {})
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"items": []}, config)
    assert graph.get_state(config).values == {"items": ["a"]}
    saver.conn.execute("DEALLOCATE ALL")  # as a pool's reset with DISCARD ALL would
    assert graph.get_state(config).values == {"items": ["a"]}
    with saver.conn.transaction():  # inside the caller's transaction: joined
        assert graph.get_state(config).values == {"items": ["a"]}


def test_a_connection_that_must_not_prepare_is_read_the_usual_way(saver: PostgresSaver) -> None:
    saver.conn.prepare_threshold = None  # as for PgBouncer in transaction mode
    graph = _chain(saver, ["a"], {})
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"items": []}, config)
    for _ in range(3):
        assert graph.get_state(config).values == {"items": ["a"]}
    names = saver.conn.execute("SELECT name FROM pg_prepared_statements").fetchall()
    assert not [n for (n,) in names if n.startswith("_tl_read")]


def _lock_prober(conninfo: str, held: list[bool]) -> Callable[[], None]:
    """A hook that tries thread "t"'s run lock from another saver: appends whether some
    run held it."""

    def probe() -> None:
        with PostgresSaver.from_conn_string(conninfo) as other:
            try:
                with other.lock_thread("t"):
                    held.append(False)
            except CheckpointConflictError:
                held.append(True)

    return probe


def _terminate(*pids: int) -> None:
    """``pg_terminate_backend`` each of ``pids``, and wait until their sessions are gone
    (the terminate is asynchronous)."""
    import time

    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),)
            ).fetchone()
            if row is not None and row[0] == 0:
                break
            time.sleep(0.01)
    time.sleep(0.05)  # the end of the stream reaches the client


def test_a_failed_write_stops_the_run_before_the_step_after_next(saver: PostgresSaver) -> None:
    """durability="async" (the default): the checkpoint written after b fails on the
    server (someone deleted the thread). c runs while that write is in flight (what
    async allows), but the run stops before d starts; before, it ran every node to its
    end and failed only then, and every node ran again on resume."""
    config = {"configurable": {"thread_id": "t"}}
    ran: list[str] = []
    with PostgresSaver.from_conn_string(saver._conninfo or "") as other:

        def delete() -> None:
            ran.append("b")
            saver.get_tuple(config)
            other.delete_thread("t")

        hooks = {name: (lambda name=name: ran.append(name)) for name in "acde"}
        hooks["b"] = _once(delete)
        graph = _chain(saver, ["a", "b", "c", "d", "e"], hooks)
        with pytest.raises(CheckpointConflictError, match="moved on"):
            graph.invoke({"items": []}, config)
    assert ran == ["a", "b", "c"]


def test_a_run_that_lost_its_run_lock_stops_before_its_next_write(saver: PostgresSaver) -> None:
    """The session holding the run lock is terminated while b runs, and a second worker
    takes the thread. The fencing check before b's write notices: the run stops with
    RunLockLostError, c never runs, nothing more is written."""
    from threadloom.errors import RunLockLostError

    config = {"configurable": {"thread_id": "t"}}
    ran: list[str] = []
    with PostgresSaver.from_conn_string(saver._conninfo or "") as other:
        taken = other.lock_thread("t")

        def steal() -> None:
            session = saver._lock_session
            assert session is not None
            _terminate(session.conn.info.backend_pid)
            taken.__enter__()  # the second worker now holds the thread

        hooks = {name: (lambda name=name: ran.append(name)) for name in "ac"}
        hooks["b"] = _once(lambda: (ran.append("b"), steal()))
        graph = _chain(saver, ["a", "b", "c"], hooks)
        with pytest.raises(RunLockLostError, match="'t' lost its run lock"):
            graph.invoke({"items": []}, config)
        assert ran == ["a", "b"]
        saver.clear_cache()
        assert graph.get_state(config).values == {"items": ["a"]}  # b's write did not land
        taken.__exit__(None, None, None)
    assert graph.invoke(None, config) == {"items": ["a", "b", "c"]}  # resumes at b


def test_a_run_whose_lock_session_died_alone_takes_the_lock_again(
    saver: PostgresSaver,
) -> None:
    """The run session is terminated but nobody else takes the thread: the run takes the
    lock again on a new session and finishes; the lock is held meanwhile."""
    config = {"configurable": {"thread_id": "t"}}
    held: list[bool] = []

    def kill() -> None:
        session = saver._lock_session
        assert session is not None
        _terminate(session.conn.info.backend_pid)

    probe = _lock_prober(saver._conninfo or "", held)
    graph = _chain(saver, ["a", "b", "c"], {"b": _once(kill), "c": _once(probe)})
    assert graph.invoke({"items": []}, config) == {"items": ["a", "b", "c"]}
    assert held == [True]
    saver.clear_cache()
    assert _history(graph, config) == [["a", "b", "c"], ["a", "b"], ["a"], [], []]


def test_a_reply_already_received_is_read_without_waiting_for_the_socket() -> None:
    """``next_result`` reads what the server already sent before it asks to wait (a
    wait costs a poll, or a turn of the event loop under asyncio)."""
    import time

    from psycopg import pq

    from threadloom.checkpoint.postgres._runsession import Wait, next_result

    require_postgres()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        pgconn = conn.pgconn
        pgconn.nonblocking = 1
        pgconn.send_query(b"SELECT 42")
        while pgconn.flush():
            time.sleep(0.001)
        deadline = time.monotonic() + 5
        while not _readable(pgconn.socket) and time.monotonic() < deadline:
            time.sleep(0.001)  # the reply is in the socket, not yet read by libpq
        steps = next_result(pgconn)
        waits: list[Wait] = []
        try:
            step = next(steps)
            while True:
                waits.append(step)
                step = steps.send(True)
        except StopIteration as stop:
            result = stop.value
        assert waits == []
        assert result is not None and result.status == pq.ExecStatus.TUPLES_OK
        assert result.get_value(0, 0) == b"42"
        while pgconn.get_result() is not None:
            pass


def _readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0)[0])
