"""A run's input checkpoint and the writes of its input task (``__start__``) are stored
together: one ``put_with_writes`` call, which the SQL savers make one round trip and one
transaction; any other saver gets ``put`` then ``put_writes``. A run that stops before
its input task ends still stores its input checkpoint."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
from typing_extensions import TypedDict

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.checkpoint.sqlite import SqliteSaver
from threadloom.graph import END, START, StateGraph


class State(TypedDict, total=False):
    text: str


def _graph(saver: Any, route: Any = None) -> Any:
    builder = StateGraph(State).add_node("echo", lambda s: {"text": s["text"] + "!"})
    if route is None:
        builder.add_edge(START, "echo")
    else:
        builder.add_conditional_edges(START, route, ["echo"])
    return builder.add_edge("echo", END).compile(checkpointer=saver)


def _input_checkpoint(saver: Any, config: dict[str, Any]) -> Any:
    first = list(saver.list(config))[-1]
    assert first.metadata["source"] == "input"
    return first


def _start_writes(saver: Any, config: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted((c, v) for _, c, v in _input_checkpoint(saver, config).pending_writes)


@pytest.fixture
def traced_sqlite(tmp_path: Any) -> Iterator[tuple[SqliteSaver, list[str]]]:
    conn = sqlite3.connect(str(tmp_path / "cp.db"), check_same_thread=False)
    statements: list[str] = []
    saver = SqliteSaver(conn)
    saver.setup()
    conn.set_trace_callback(statements.append)
    yield saver, statements
    conn.close()


def _transactions(statements: list[str]) -> list[list[str]]:
    """The write transactions among traced statements (BEGIN IMMEDIATE ... COMMIT)."""
    found: list[list[str]] = []
    current: list[str] | None = None
    for sql in statements:
        if sql.startswith("BEGIN IMMEDIATE"):
            current = []
        elif sql.startswith("COMMIT") and current is not None:
            found.append(current)
            current = None
        elif current is not None:
            current.append(sql)
    return found


def test_sqlite_stores_the_input_checkpoint_and_its_input_writes_in_one_transaction(
    traced_sqlite: tuple[SqliteSaver, list[str]],
) -> None:
    saver, statements = traced_sqlite
    config = {"configurable": {"thread_id": "t"}}
    assert _graph(saver).invoke({"text": "hi"}, config) == {"text": "hi!"}
    input_id = _input_checkpoint(saver, config).config["configurable"]["checkpoint_id"]
    stored_at = f"'t', '', '{input_id}'"  # thread, namespace, checkpoint id
    (together,) = [t for t in _transactions(statements) if any(
        s.startswith("INSERT INTO threadloom_checkpoints") and stored_at in s for s in t)]
    assert any(s.startswith("INSERT INTO threadloom_writes") for s in together)
    # the input, the step of __start__, the step of echo: three write transactions
    assert len(_transactions(statements)) == 3
    assert _start_writes(saver, config) == [("branch:to:echo", None), ("text", "hi")]


def test_a_saver_that_overrides_put_writes_gets_the_input_writes_through_it(
    tmp_path: Any,
) -> None:
    seen: list[str] = []

    class Recording(SqliteSaver):
        def put_writes(self, config, writes, task_id, task_path=""):  # type: ignore[override]
            seen.extend(channel for channel, _ in writes)
            super().put_writes(config, writes, task_id, task_path)

    with Recording.from_conn_string(str(tmp_path / "cp.db")) as saver:
        config = {"configurable": {"thread_id": "t"}}
        _graph(saver).invoke({"text": "hi"}, config)
        assert "branch:to:echo" in seen  # the input task's writes went through it
        assert _start_writes(saver, config) == [("branch:to:echo", None), ("text", "hi")]


def test_memory_saver_keeps_the_input_writes_too() -> None:
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "t"}}
    _graph(saver).invoke({"text": "hi"}, config)
    assert _start_writes(saver, config) == [("branch:to:echo", None), ("text", "hi")]


def test_a_failing_input_task_leaves_the_input_checkpoint_with_its_error() -> None:
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "t"}}

    def route(state: State) -> str:
        raise ValueError("no route")

    with pytest.raises(ValueError, match="no route"):
        _graph(saver, route).invoke({"text": "hi"}, config)
    assert [c for c, _ in _start_writes(saver, config)] == ["__error__"]


def test_a_step_timeout_in_the_input_task_still_stores_the_input_checkpoint() -> None:
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "t"}}

    def route(state: State) -> str:
        time.sleep(0.5)
        return "echo"

    graph = _graph(saver, route)
    graph.step_timeout = 0.05
    with pytest.raises(TimeoutError, match="step_timeout"):
        graph.invoke({"text": "hi"}, config)
    assert _input_checkpoint(saver, config).checkpoint["channel_values"]["__start__"] == {
        "text": "hi"}


async def test_a_run_cancelled_in_its_input_task_still_stores_the_input_checkpoint() -> None:
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "t"}}
    started = asyncio.Event()

    async def route(state: State) -> str:
        started.set()
        await asyncio.sleep(60)
        return "echo"

    run = asyncio.ensure_future(_graph(saver, route).ainvoke({"text": "hi"}, config))
    await asyncio.wait_for(started.wait(), 5)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert _input_checkpoint(saver, config).checkpoint["channel_values"]["__start__"] == {
        "text": "hi"}


def test_postgres_savers_store_a_checkpoint_with_writes(fresh_postgres_database: str) -> None:
    from threadloom.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(fresh_postgres_database) as saver:
        saver.setup()
        config = {"configurable": {"thread_id": "t"}}
        assert _graph(saver).invoke({"text": "hi"}, config) == {"text": "hi!"}
        assert _start_writes(saver, config) == [("branch:to:echo", None), ("text", "hi")]
        # resumable from there: a second input on the same thread
        assert _graph(saver).invoke({"text": "again"}, config) == {"text": "again!"}


async def test_async_savers_store_a_checkpoint_with_writes(
    fresh_postgres_database: str, tmp_path: Any
) -> None:
    from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver
    from threadloom.checkpoint.sqlite.aio import AsyncSqliteSaver

    config = {"configurable": {"thread_id": "t"}}
    async with AsyncPostgresSaver.from_conn_string(fresh_postgres_database) as saver:
        await saver.setup()
        assert await _graph(saver).ainvoke({"text": "hi"}, config) == {"text": "hi!"}
        first = [c async for c in saver.alist(config)][-1]
        assert sorted((c, v) for _, c, v in first.pending_writes) == [
            ("branch:to:echo", None), ("text", "hi")]
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.db")) as saver:
        assert await _graph(saver).ainvoke({"text": "hi"}, config) == {"text": "hi!"}
        first = [c async for c in saver.alist(config)][-1]
        assert sorted((c, v) for _, c, v in first.pending_writes) == [
            ("branch:to:echo", None), ("text", "hi")]
