"""Node timeouts (TimeoutPolicy): run and idle deadlines, retries, validation."""

from __future__ import annotations

import asyncio
import operator
from datetime import timedelta
from typing import Annotated

import pytest
from typing_extensions import TypedDict

from threadloom.errors import NodeCancelledError, NodeTimeoutError
from threadloom.func import entrypoint, task
from threadloom.graph import END, START, StateGraph
from threadloom.runtime import Runtime
from threadloom.types import RetryPolicy, Send, TimeoutPolicy


class State(TypedDict):
    x: int


def _graph(node, **options):
    builder = StateGraph(State)
    builder.add_node("work", node, **options)
    builder.add_edge(START, "work")
    builder.add_edge("work", END)
    return builder


def test_timeout_policy_coercion_and_validation():
    assert TimeoutPolicy.coerce(None) is None
    assert TimeoutPolicy.coerce(timedelta(milliseconds=250)) == TimeoutPolicy(run_timeout=0.25)
    policy = TimeoutPolicy(idle_timeout=1)
    assert TimeoutPolicy.coerce(policy) is policy
    with pytest.raises(ValueError, match="run_timeout must be greater than 0"):
        TimeoutPolicy.coerce(0)
    with pytest.raises(ValueError, match="greater than 0"):
        Send("x", {}, timeout=-1)
    with pytest.raises(ValueError, match="refresh_on"):
        TimeoutPolicy(idle_timeout=1, refresh_on="sometimes")  # type: ignore[arg-type]


def test_sync_nodes_cannot_have_timeouts():
    def sync_node(state: State) -> State:
        return state

    with pytest.raises(ValueError, match="only supported for async nodes"):
        _graph(sync_node, timeout=1.0).compile()
    with pytest.raises(ValueError, match="only supported for async nodes"):
        task(timeout=1.0)(lambda x: x)
    with pytest.raises(ValueError, match="greater than 0"):
        entrypoint(timeout=0)


async def test_idle_timeout_fails_a_slow_node():
    async def slow(state: State) -> State:
        await asyncio.sleep(1.0)
        return {"x": 1}

    graph = _graph(slow, timeout=TimeoutPolicy(idle_timeout=0.05)).compile()
    with pytest.raises(NodeTimeoutError) as info:
        await graph.ainvoke({"x": 0})
    assert info.value.node == "work" and info.value.kind == "idle"
    assert info.value.timeout == 0.05


async def test_heartbeat_keeps_an_idle_node_alive_but_not_past_run_timeout():
    async def beating(state: State, runtime: Runtime) -> State:
        for _ in range(4):
            await asyncio.sleep(0.04)
            runtime.heartbeat()
        return {"x": 1}

    policy = TimeoutPolicy(idle_timeout=0.1)
    assert await _graph(beating, timeout=policy).compile().ainvoke({"x": 0}) == {"x": 1}
    with pytest.raises(NodeTimeoutError) as info:
        await _graph(beating, timeout=TimeoutPolicy(run_timeout=0.1)).compile().ainvoke(
            {"x": 0}
        )
    assert info.value.kind == "run"


async def test_timeout_composes_with_retry_and_node_defaults():
    attempts = []

    async def flaky(state: State) -> State:
        attempts.append(1)
        if len(attempts) == 1:
            await asyncio.sleep(1.0)
        return {"x": len(attempts)}

    graph = (
        _graph(flaky)
        .set_node_defaults(
            timeout=TimeoutPolicy(idle_timeout=0.05),
            retry_policy=RetryPolicy(initial_interval=0, jitter=False),  # default retry_on
        )
        .compile()
    )
    assert await graph.ainvoke({"x": 0}) == {"x": 2}


async def test_send_timeout_overrides_the_node_timeout():
    async def slow(state: State) -> State:
        await asyncio.sleep(0.3)
        return {"x": 1}

    builder = StateGraph(State)
    builder.add_node("slow", slow, timeout=10)
    builder.add_conditional_edges(
        START, lambda s: [Send("slow", s, timeout=TimeoutPolicy(idle_timeout=0.05))]
    )
    with pytest.raises(NodeTimeoutError) as info:
        await builder.compile().ainvoke({"x": 0})
    assert info.value.idle_timeout == 0.05


async def test_task_timeout():
    @task(timeout=0.05)
    async def slow(x: int) -> int:
        await asyncio.sleep(1.0)
        return x

    @entrypoint()
    async def flow(x: int) -> int:
        return await slow(x)

    with pytest.raises(NodeTimeoutError):
        await flow.ainvoke(1)


async def test_node_raising_cancelled_error_fails_the_run():
    class S(TypedDict, total=False):
        vals: Annotated[list[str], operator.add]

    async def ok(state: S) -> S:
        return {"vals": ["ok"]}

    async def boom(state: S) -> S:
        raise asyncio.CancelledError("from the node")

    builder = StateGraph(S)
    builder.add_node("ok", ok)
    builder.add_node("boom", boom)
    builder.add_edge(START, "ok")
    builder.add_edge(START, "boom")
    with pytest.raises(NodeCancelledError) as info:
        await builder.compile().ainvoke({"vals": []})
    assert info.value.node == "boom"
