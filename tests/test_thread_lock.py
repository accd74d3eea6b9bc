"""One run per thread: a second run of a thread that is running is refused up front."""

from __future__ import annotations

import asyncio
import threading
from typing import TypedDict

import pytest

from threadloom.checkpoint.memory import MemorySaver
from threadloom.errors import CheckpointConflictError
from threadloom.graph import START, StateGraph


class S(TypedDict, total=False):
    x: int


def blocking_graph(entered: threading.Event, release: threading.Event, runs: list[int]):
    def slow(state: S) -> dict:
        runs.append(1)
        entered.set()
        assert release.wait(5)
        return {"x": 1}

    builder = StateGraph(S)
    builder.add_node("slow", slow)
    builder.add_edge(START, "slow")
    return builder.compile(checkpointer=MemorySaver())


def test_second_run_of_a_busy_thread_is_refused_before_running_anything() -> None:
    entered, release, runs = threading.Event(), threading.Event(), []
    graph = blocking_graph(entered, release, runs)
    config = {"configurable": {"thread_id": "busy"}}
    first = threading.Thread(target=graph.invoke, args=({"x": 0}, config))
    first.start()
    assert entered.wait(5)
    with pytest.raises(CheckpointConflictError, match="'busy' is being run by another run"):
        graph.invoke({"x": 0}, config)
    with pytest.raises(CheckpointConflictError):
        list(graph.stream({"x": 0}, config))
    # Other threads are not affected.
    release.set()
    first.join(5)
    assert runs == [1]
    assert graph.invoke({"x": 5}, {"configurable": {"thread_id": "other"}}) == {"x": 1}
    # The lock is released when the run ends, also after an error.
    assert graph.invoke({"x": 0}, config) == {"x": 1}


async def test_async_runs_share_the_lock() -> None:
    entered, release, runs = threading.Event(), threading.Event(), []
    graph = blocking_graph(entered, release, runs)
    config = {"configurable": {"thread_id": "busy-async"}}
    first = asyncio.create_task(graph.ainvoke({"x": 0}, config))
    await asyncio.to_thread(entered.wait, 5)
    with pytest.raises(CheckpointConflictError):
        await graph.ainvoke({"x": 0}, config)
    release.set()
    assert await first == {"x": 1}
    assert runs == [1]
