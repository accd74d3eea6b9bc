"""What only the async API does: async nodes of one step running at once on the event
loop, task order kept whatever order they finish in, a failure or a closed stream
cancelling the tasks still running, step timeouts, async routing functions.

The scenarios that behave the same through both APIs are written once and run both ways
(the ``graph_api`` fixture): test_graph_both_apis.py, test_graph_hitl.py.
"""

from __future__ import annotations

import asyncio
import operator
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypedDict

import pytest
from helpers import S, cfg

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.types import Send

# -- concurrency on the event loop ---------------------------------------------------


async def test_async_parallel_nodes_run_concurrently() -> None:
    # each node waits for the other's event: only possible if both run at once
    a_in, b_in = asyncio.Event(), asyncio.Event()

    async def a(state: S) -> dict:
        a_in.set()
        await asyncio.wait_for(b_in.wait(), 5)
        return {"log": ["a"]}

    async def b(state: S) -> dict:
        b_in.set()
        await asyncio.wait_for(a_in.wait(), 5)
        return {"log": ["b"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    assert (await g.compile().ainvoke({"x": 0}))["log"] == ["a", "b"]


async def test_async_reducer_order_is_task_order() -> None:
    release = asyncio.Event()

    async def a(state: S) -> dict:
        await asyncio.wait_for(release.wait(), 5)
        return {"log": ["a"]}

    async def z(state: S) -> dict:
        return {"log": ["z"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("z", z)
    g.add_edge(START, "a")
    g.add_edge(START, "z")
    app = g.compile()
    names = []
    async for mode, chunk in app.astream({"x": 0}, stream_mode=["updates", "values"]):
        if mode == "updates":
            names.append(next(iter(chunk)))
            release.set()  # a may finish only once z's update reached the caller
        else:
            final = chunk
    assert names == ["z", "a"]  # completion order
    assert final["log"] == ["a", "z"]  # task order


async def test_async_send_fan_out_in_send_order() -> None:
    class MapState(TypedDict):
        items: list[int]
        results: Annotated[list, operator.add]

    gate = {i: asyncio.Event() for i in range(3)}

    async def worker(arg: dict) -> dict:
        i = arg["i"]
        if i + 1 in gate:  # finish in reverse order
            await asyncio.wait_for(gate[i + 1].wait(), 5)
        gate[i].set()
        return {"results": [arg["item"] * 10]}

    g = StateGraph(MapState)
    g.add_node("worker", worker)
    g.add_conditional_edges(
        START, lambda s: [Send("worker", {"item": it, "i": i}) for i, it in enumerate(s["items"])]
    )
    out = await g.compile().ainvoke({"items": [1, 2, 3]})
    assert out["results"] == [10, 20, 30]


# -- failures and cancellation ---------------------------------------------------------


async def test_async_errors_are_checkpointed() -> None:
    calls: Counter = Counter()
    fail = {"on": True}
    b_done = asyncio.Event()

    async def a(state: S) -> dict:
        calls["a"] += 1
        if fail["on"]:
            await b_done.wait()  # (a failure cancels siblings still running)
            raise RuntimeError("kaput")
        return {"log": ["a"]}

    async def b(state: S) -> dict:
        calls["b"] += 1
        b_done.set()
        return {"log": ["b"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    app = g.compile(checkpointer=InMemorySaver())
    with pytest.raises(RuntimeError, match="kaput"):
        await app.ainvoke({"x": 0}, cfg())
    snap = await app.aget_state(cfg())
    assert snap.next == ("a",)
    assert snap.tasks[0].error == "RuntimeError('kaput')"
    fail["on"] = False
    assert (await app.ainvoke(None, cfg()))["log"] == ["a", "b"]
    assert calls == {"a": 2, "b": 1}




async def test_aupdate_state_as_a_node_with_an_async_routing_function() -> None:
    async def route(state: S) -> str:
        return "b" if state["x"] > 1 else END

    graph = (
        StateGraph(S)
        .add_node("a", lambda s: {"log": ["a"]})
        .add_node("b", lambda s: {"log": ["b"]})
        .add_edge(START, "a").add_conditional_edges("a", route, ["b", END])
        .compile(checkpointer=InMemorySaver())
    )
    await graph.ainvoke({"x": 1, "log": []}, cfg())
    # the update is written as if "a" returned it: its async route is awaited
    await graph.aupdate_state(cfg(), {"x": 2}, as_node="a")
    state = await graph.aget_state(cfg())
    assert state.next == ("b",)
    assert (await graph.ainvoke(None, cfg()))["log"] == ["a", "b"]


class _Blocked:
    """An async node that waits forever (until cancelled), saying when it started."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = False

    async def __call__(self, state: S) -> dict:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return {}


def _with_blocked_sibling(other: Any) -> tuple[StateGraph, _Blocked]:
    blocked = _Blocked()
    builder = (
        StateGraph(S).add_node("blocked", blocked).add_node("other", other)
        .add_edge(START, "blocked").add_edge(START, "other")
    )
    return builder, blocked


async def test_a_failing_task_cancels_its_running_siblings() -> None:
    async def bad(state: S) -> dict:
        raise ValueError("bad")

    builder, blocked = _with_blocked_sibling(bad)
    with pytest.raises(ValueError, match="bad"):
        await asyncio.wait_for(builder.compile().ainvoke({"x": 0, "log": []}), 10)
    assert blocked.cancelled


async def test_closing_a_stream_early_cancels_the_tasks_still_running() -> None:
    async def quick(state: S) -> dict:
        return {"log": ["quick"]}

    builder, blocked = _with_blocked_sibling(quick)
    graph = builder.compile(checkpointer=InMemorySaver())
    stream = graph.astream({"x": 0, "log": []}, cfg())
    async for chunk in stream:
        assert chunk == {"other": {"log": ["quick"]}}
        break
    await stream.aclose()
    assert blocked.cancelled  # before aclose() returned
    # the finished sibling's writes were kept: it is not run again
    assert (await graph.aget_state(cfg())).next == ("blocked",)


async def test_a_cancelled_run_under_exit_durability_still_saves_its_checkpoint() -> None:
    blocked = _Blocked()
    saver = InMemorySaver()
    graph = StateGraph(S).add_node("blocked", blocked).add_edge(START, "blocked").compile(
        checkpointer=saver)
    run = asyncio.ensure_future(graph.ainvoke({"x": 1, "log": []}, cfg(), durability="exit"))
    await blocked.started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert blocked.cancelled
    state = await graph.aget_state(cfg())
    assert state.values == {"x": 1, "log": []} and state.next == ("blocked",)


async def test_step_timeout_cancels_the_step_and_raises_timeout_error() -> None:
    async def quick(state: S) -> dict:
        return {"log": ["quick"]}

    builder, blocked = _with_blocked_sibling(quick)
    graph = builder.compile()
    graph.step_timeout = 0.05
    with pytest.raises(TimeoutError, match="step_timeout"):
        await asyncio.wait_for(graph.ainvoke({"x": 0, "log": []}), 10)
    assert blocked.cancelled


def test_step_timeout_of_a_sync_run_raises_timeout_error() -> None:
    import threading

    release = threading.Event()

    def slow(state: S) -> dict:
        release.wait(10)
        return {}

    graph = StateGraph(S).add_node("slow", slow).add_edge(START, "slow").compile()
    graph.step_timeout = 0.05
    try:
        with pytest.raises(TimeoutError, match="still running: slow"):
            graph.invoke({"x": 0, "log": []})
    finally:
        release.set()


# -- thread handoffs -----------------------------------------------------------------


class _CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting what is handed to a worker thread."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted: list[Any] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.submitted.append(args[0] if args else fn)
        return super().submit(fn, *args, **kwargs)


async def test_an_async_run_of_async_nodes_never_hops_to_a_worker_thread() -> None:
    # the input node is the library's own pass-through: it runs on the loop, where a
    # thread handoff would cost every ainvoke two thread wake-ups for nothing
    async def a(state: S) -> dict:
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_edge(START, "a")
    g.add_edge("a", END)
    app = g.compile(checkpointer=InMemorySaver())
    executor = _CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    try:
        out = await app.ainvoke({"log": ["in"]}, cfg("handoffs"))
    finally:
        executor.shutdown()
    assert out == {"log": ["in", "a"]}
    assert executor.submitted == []


async def test_a_sync_node_of_an_async_run_still_runs_in_a_worker_thread() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def a(state: S) -> dict:
        seen.append(threading.get_ident())
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_edge(START, "a")
    g.add_edge("a", END)
    executor = _CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    try:
        out = await g.compile().ainvoke({"log": []})
    finally:
        executor.shutdown()
    assert out == {"log": ["a"]}
    assert seen and seen[0] != loop_thread  # a blocking node never stalls the loop
    assert len(executor.submitted) == 1
