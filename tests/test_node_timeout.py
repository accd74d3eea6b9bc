"""Node timeouts: add_node(timeout=TimeoutPolicy(...)) for async nodes, Send overrides."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from typing_extensions import TypedDict

from threadloom.checkpoint.serde.msgpack import MsgpackSerializer
from threadloom.errors import NodeTimeoutError
from threadloom.graph import START, StateGraph
from threadloom.runtime import Runtime
from threadloom.types import RetryPolicy, Send, TimeoutPolicy, default_retry_on


class S(TypedDict):
    x: int


def _graph(fn, **node_kw):  # type: ignore[no-untyped-def]
    builder = StateGraph(S)
    builder.add_node("n", fn, **node_kw)
    builder.add_edge(START, "n")
    return builder.compile()


async def _slow(state: S) -> S:
    await asyncio.sleep(1.0)
    return {"x": 1}


def test_policy_coercion_and_validation() -> None:
    assert TimeoutPolicy.coerce(timedelta(milliseconds=250)) == TimeoutPolicy(run_timeout=0.25)
    assert TimeoutPolicy.coerce(None) is None
    with pytest.raises(ValueError, match="greater than 0"):
        TimeoutPolicy(idle_timeout=0)
    with pytest.raises(ValueError, match="greater than 0"):
        Send("n", {}, timeout=-1)
    with pytest.raises(ValueError, match="greater than 0"):
        StateGraph(S).add_node("n", _slow, timeout=0)
    assert default_retry_on(NodeTimeoutError("n", 1.0, kind="run", run_timeout=0.5))


def test_run_and_idle_timeouts_stop_the_node() -> None:
    for policy, kind in ((TimeoutPolicy(run_timeout=0.05), "run"),
                         (TimeoutPolicy(idle_timeout=0.05), "idle")):
        with pytest.raises(NodeTimeoutError) as info:
            asyncio.run(_graph(_slow, timeout=policy).ainvoke({"x": 0}))
        assert (info.value.node, info.value.kind) == ("n", kind)


def test_progress_refreshes_the_idle_timeout() -> None:
    async def chatty(state: S, runtime: Runtime) -> S:
        for i in range(6):
            await asyncio.sleep(0.03)
            runtime.stream_writer(i)
        return {"x": 6}

    async def beating(state: S, runtime: Runtime) -> S:
        for _ in range(6):
            await asyncio.sleep(0.03)
            runtime.heartbeat()
        return {"x": 7}

    idle = TimeoutPolicy(idle_timeout=0.1)
    assert asyncio.run(_graph(chatty, timeout=idle).ainvoke({"x": 0})) == {"x": 6}
    beat = TimeoutPolicy(idle_timeout=0.1, refresh_on="heartbeat")
    assert asyncio.run(_graph(beating, timeout=beat).ainvoke({"x": 0})) == {"x": 7}


def test_timeout_composes_with_retry() -> None:
    attempts: list[int] = []

    async def flaky(state: S) -> S:
        attempts.append(1)
        if len(attempts) == 1:
            await asyncio.sleep(1.0)
        return {"x": 1}

    graph = _graph(flaky, timeout=0.1, retry_policy=RetryPolicy(
        max_attempts=2, initial_interval=0.0, jitter=False, retry_on=NodeTimeoutError))
    assert asyncio.run(graph.ainvoke({"x": 0})) == {"x": 1}
    assert len(attempts) == 2


def test_sync_node_timeout_is_refused_at_compile() -> None:
    builder = StateGraph(S)
    builder.add_node("n", lambda s: s, timeout=1)
    builder.add_edge(START, "n")
    with pytest.raises(ValueError, match="only supported for async nodes"):
        builder.compile()


def test_send_timeout_overrides_and_round_trips() -> None:
    async def slowish(state: S) -> S:
        await asyncio.sleep(0.3)
        return {"x": 1}

    builder = StateGraph(S)
    builder.add_node("n", slowish, timeout=TimeoutPolicy(idle_timeout=5))
    builder.add_conditional_edges(
        START, lambda s: [Send("n", s, timeout=TimeoutPolicy(idle_timeout=0.05))])
    with pytest.raises(NodeTimeoutError) as info:
        asyncio.run(builder.compile().ainvoke({"x": 0}))
    assert info.value.idle_timeout == 0.05

    serde = MsgpackSerializer()
    send = Send("n", {"x": 1}, timeout=TimeoutPolicy(run_timeout=2, refresh_on="heartbeat"))
    assert serde.loads_typed(serde.dumps_typed(send)) == send
