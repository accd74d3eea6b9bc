"""Values far larger than a socket buffer are stored and read back, on every durability.

On PostgreSQL the savers send writes ahead in libpq's nonblocking pipeline mode; a
value larger than what one send takes must be flushed to the end before the replies
are waited for, or client and server wait for each other forever. Each case runs in a
worker thread joined with a timeout, so a regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from typing import Any, TypedDict

import pytest

from threadloom.graph import END, START, StateGraph

DURABILITIES = ["sync", "async", "exit"]
TIMEOUT_S = 180  # far above the few seconds a case takes; only a hang gets there


class State(TypedDict):
    blob: str
    steps: int


def _value(size: int) -> str:
    """``size`` characters that no compression would shrink."""
    return random.Random(size).randbytes(size // 2).hex()


def _builder(size: int) -> StateGraph:
    def write(state: State) -> dict[str, Any]:
        return {"blob": _value(size), "steps": state["steps"] + 1}

    def after(state: State) -> dict[str, Any]:
        return {"steps": state["steps"] + 1}

    builder = StateGraph(State)
    builder.add_node("write", write)
    builder.add_node("after", after)
    builder.add_edge(START, "write")
    builder.add_edge("write", "after")
    builder.add_edge("after", END)
    return builder


def _within_timeout(work: Callable[[], Any]) -> Any:
    """``work()``'s result, run in a daemon thread; fails the test if it does not end."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(TIMEOUT_S)
    if worker.is_alive():
        pytest.fail(f"storing or reading a large value did not finish in {TIMEOUT_S} s (a hang)")
    if "error" in box:
        raise box["error"]
    return box["result"]


def _check(out: dict[str, Any], stored: dict[str, Any], size: int) -> None:
    expected = _value(size)
    assert out["steps"] == 2 and out["blob"] == expected
    assert stored["steps"] == 2 and stored["blob"] == expected


@pytest.mark.parametrize("durability", DURABILITIES)
def test_postgres_saver_stores_16_mb(fresh_postgres_database: str, durability: str) -> None:
    from threadloom.checkpoint.postgres import PostgresSaver

    size = 16 * 1024 * 1024
    config = {"configurable": {"thread_id": "big"}}

    def work() -> tuple[dict[str, Any], dict[str, Any]]:
        with PostgresSaver.from_conn_string(fresh_postgres_database) as saver:
            saver.setup()
            out = _builder(size).compile(checkpointer=saver).invoke(
                {"blob": "", "steps": 0}, config, durability=durability
            )
        with PostgresSaver.from_conn_string(fresh_postgres_database) as fresh:
            return out, _builder(size).compile(checkpointer=fresh).get_state(config).values

    _check(*_within_timeout(work), size)


@pytest.mark.parametrize("durability", DURABILITIES)
def test_async_postgres_saver_stores_16_mb(fresh_postgres_database: str, durability: str) -> None:
    from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver

    size = 16 * 1024 * 1024
    config = {"configurable": {"thread_id": "big"}}

    async def work() -> tuple[dict[str, Any], dict[str, Any]]:
        async with AsyncPostgresSaver.from_conn_string(fresh_postgres_database) as saver:
            await saver.setup()
            out = await _builder(size).compile(checkpointer=saver).ainvoke(
                {"blob": "", "steps": 0}, config, durability=durability
            )
        async with AsyncPostgresSaver.from_conn_string(fresh_postgres_database) as fresh:
            snapshot = await _builder(size).compile(checkpointer=fresh).aget_state(config)
            return out, snapshot.values

    _check(*_within_timeout(lambda: asyncio.run(work())), size)


@pytest.mark.parametrize("durability", DURABILITIES)
def test_sqlite_saver_stores_64_mb(tmp_path: Any, durability: str) -> None:
    from threadloom.checkpoint.sqlite import SqliteSaver

    size = 64 * 1024 * 1024
    path = str(tmp_path / "big.sqlite")
    config = {"configurable": {"thread_id": "big"}}

    def work() -> tuple[dict[str, Any], dict[str, Any]]:
        with SqliteSaver.from_conn_string(path) as saver:
            out = _builder(size).compile(checkpointer=saver).invoke(
                {"blob": "", "steps": 0}, config, durability=durability
            )
        with SqliteSaver.from_conn_string(path) as fresh:
            return out, _builder(size).compile(checkpointer=fresh).get_state(config).values

    _check(*_within_timeout(work), size)


@pytest.mark.parametrize("durability", DURABILITIES)
def test_async_sqlite_saver_stores_64_mb(tmp_path: Any, durability: str) -> None:
    from threadloom.checkpoint.sqlite.aio import AsyncSqliteSaver

    size = 64 * 1024 * 1024
    path = str(tmp_path / "big.sqlite")
    config = {"configurable": {"thread_id": "big"}}

    async def work() -> tuple[dict[str, Any], dict[str, Any]]:
        async with AsyncSqliteSaver.from_conn_string(path) as saver:
            out = await _builder(size).compile(checkpointer=saver).ainvoke(
                {"blob": "", "steps": 0}, config, durability=durability
            )
        async with AsyncSqliteSaver.from_conn_string(path) as fresh:
            snapshot = await _builder(size).compile(checkpointer=fresh).aget_state(config)
            return out, snapshot.values

    _check(*_within_timeout(lambda: asyncio.run(work())), size)
