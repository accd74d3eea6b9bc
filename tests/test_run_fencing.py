"""Runs that outlive their database session (issue #15, item 13), on the savers other
than the sync ``PostgresSaver`` (``tests/test_postgres_run_session.py``): a failed write
stops the run before the next step, and on ``AsyncPostgresSaver`` a run whose run lock
went with its session (terminated, ``idle_session_timeout``) notices before its next
write. SQLite's run locks (``flock``) cannot be lost while the process lives, and its
writes are never left in flight, so a failed write is all there is to check there.

The Postgres tests run against a real server (``THREADLOOM_TEST_POSTGRES_URL``).
"""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypedDict

import pytest
from helpers import require_postgres
from test_postgres_run_session import _lock_prober, _once, _terminate

from threadloom.checkpoint.postgres import PostgresSaver
from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver
from threadloom.checkpoint.sqlite import SqliteSaver
from threadloom.checkpoint.sqlite.aio import AsyncSqliteSaver
from threadloom.errors import CheckpointConflictError, RunLockLostError
from threadloom.graph import END, START, StateGraph


class Log(TypedDict):
    items: Annotated[list[str], operator.add]


@pytest.fixture
async def asaver(pg_schemas: Callable[[], str]) -> AsyncIterator[AsyncPostgresSaver]:
    """A set-up async Postgres saver in a schema of its own (its URL: ``_conninfo``)."""
    require_postgres()
    async with AsyncPostgresSaver.from_conn_string(pg_schemas()) as saver:
        await saver.setup()
        yield saver


def _chain(
    saver: Any, names: list[str], hooks: dict[str, Callable[[], None]], *, sync: bool = False
) -> Any:
    """START -> names[0] -> ... -> END; each node (async ones unless ``sync``) appends
    its name after its hook."""

    def node(name: str) -> Any:
        def run(state: Log) -> dict[str, list[str]]:
            if name in hooks:
                hooks[name]()
            return {"items": [name]}

        async def arun(state: Log) -> dict[str, list[str]]:
            return run(state)

        return run if sync else arun

    builder = StateGraph(Log)
    for name in names:
        builder.add_node(name, node(name))
    for a, b in zip([START, *names], [*names, END], strict=True):
        builder.add_edge(a, b)
    return builder.compile(checkpointer=saver)


def _lock_pid(saver: AsyncPostgresSaver) -> int:
    session = saver._lock_session
    assert session is not None
    return session.conn.info.backend_pid


async def _history(graph: Any, config: dict[str, Any]) -> list[list[str]]:
    return [s.values.get("items", []) async for s in graph.aget_state_history(config)]


def _landed(saver: PostgresSaver, config: dict[str, Any], items: list[str]) -> None:
    """Wait until ``saver`` sees the thread's head holding ``items`` (writes sent ahead
    commit while the run goes on; a delete that came first would not see them)."""
    import time

    deadline = time.monotonic() + 10
    while True:
        head = saver.get_tuple(config)
        if head is not None and head.checkpoint["channel_values"].get("items") == items:
            return
        assert time.monotonic() < deadline, "the write sent ahead never landed"
        time.sleep(0.005)


async def test_a_failed_write_stops_the_async_run_before_the_step_after_next(
    asaver: AsyncPostgresSaver,
) -> None:
    """durability="async" (the default): the checkpoint after b, sent ahead, fails on the
    server (another process deleted the thread while b ran); as on the sync saver, c's
    checkpoint waits for it and stops the run, so d never starts."""
    config = {"configurable": {"thread_id": "t"}}
    ran: list[str] = []
    with PostgresSaver.from_conn_string(asaver._conninfo or "") as other:

        def delete() -> None:
            ran.append("b")
            _landed(other, config, ["a"])  # the checkpoint before b, sent ahead, is in
            other.delete_thread("t")

        hooks = {name: (lambda name=name: ran.append(name)) for name in "acde"}
        hooks["b"] = _once(delete)
        graph = _chain(asaver, ["a", "b", "c", "d", "e"], hooks)
        with pytest.raises(CheckpointConflictError, match="moved on"):
            await graph.ainvoke({"items": []}, config)
    assert ran == ["a", "b", "c"]


async def test_an_async_run_that_lost_its_run_lock_stops_before_its_next_write(
    asaver: AsyncPostgresSaver,
) -> None:
    """The session holding the run lock is terminated while b runs, and a second worker
    takes the thread: the fencing check before b's write raises RunLockLostError, c never
    runs, b's write does not land; once the other worker lets go, the thread resumes at b
    and no node runs twice."""
    config = {"configurable": {"thread_id": "t"}}
    ran: list[str] = []
    with PostgresSaver.from_conn_string(asaver._conninfo or "") as other:
        taken = other.lock_thread("t")

        def steal() -> None:
            _terminate(_lock_pid(asaver))
            taken.__enter__()  # the second worker now holds the thread

        hooks = {name: (lambda name=name: ran.append(name)) for name in "ac"}
        steal_once = _once(steal)
        hooks["b"] = lambda: (ran.append("b"), steal_once())
        graph = _chain(asaver, ["a", "b", "c"], hooks)
        with pytest.raises(RunLockLostError, match="'t' lost its run lock"):
            await graph.ainvoke({"items": []}, config)
        assert ran == ["a", "b"]
        asaver.clear_cache()
        assert (await graph.aget_state(config)).values == {"items": ["a"]}
        taken.__exit__(None, None, None)
    assert await graph.ainvoke(None, config) == {"items": ["a", "b", "c"]}
    assert ran == ["a", "b", "b", "c"]  # b again (its write was refused), a and c once


async def test_an_async_run_whose_lock_session_died_alone_takes_the_lock_again(
    asaver: AsyncPostgresSaver,
) -> None:
    """The run session is terminated but nobody else takes the thread: the run takes the
    lock again on a new session and finishes, holding it meanwhile."""
    config = {"configurable": {"thread_id": "t"}}
    held: list[bool] = []

    probe = _lock_prober(asaver._conninfo or "", held)
    graph = _chain(
        asaver,
        ["a", "b", "c"],
        {"b": _once(lambda: _terminate(_lock_pid(asaver))), "c": _once(probe)},
    )
    assert await graph.ainvoke({"items": []}, config) == {"items": ["a", "b", "c"]}
    assert held == [True]
    asaver.clear_cache()
    assert await _history(graph, config) == [["a", "b", "c"], ["a", "b"], ["a"], [], []]


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
async def test_a_failed_sqlite_write_stops_the_run_before_the_next_step(
    tmp_path: Any, run_async: bool
) -> None:
    """Another process deletes the thread while b runs: the checkpoint after b is
    refused and c never starts (sync and async SQLite savers)."""
    path = str(tmp_path / "db.sqlite")
    config = {"configurable": {"thread_id": "t"}}
    ran: list[str] = []
    with SqliteSaver.from_conn_string(path) as other:

        def delete() -> None:
            ran.append("b")
            other.delete_thread("t")

        hooks = {name: (lambda name=name: ran.append(name)) for name in "acd"}
        hooks["b"] = _once(delete)
        if run_async:
            async with AsyncSqliteSaver.from_conn_string(path) as asaver:
                graph = _chain(asaver, ["a", "b", "c", "d"], hooks)
                with pytest.raises(CheckpointConflictError, match="moved on"):
                    await graph.ainvoke({"items": []}, config)
        else:
            with SqliteSaver.from_conn_string(path) as saver:
                graph = _chain(saver, ["a", "b", "c", "d"], hooks, sync=True)
                with pytest.raises(CheckpointConflictError, match="moved on"):
                    graph.invoke({"items": []}, config)
    assert ran == ["a", "b"]
