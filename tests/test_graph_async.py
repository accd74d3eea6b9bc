"""The async API: ainvoke / astream / aget_state / aupdate_state / aget_state_history
through the main human-in-the-loop flows, Send fan-out and async parallelism.

Same expectations as the sync suites (../shared/reference/langgraph-api.md §1.2, §1.17, §2).
"""

from __future__ import annotations

import asyncio
import operator
from collections import Counter
from typing import Annotated, Any, TypedDict

import pytest

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.errors import EmptyInputError, GraphRecursionError, InvalidUpdateError
from threadloom.graph import END, START, StateGraph
from threadloom.types import Command, Interrupt, Send, StateSnapshot, interrupt


class S(TypedDict):
    x: int
    log: Annotated[list, operator.add]


def cfg(thread: str = "t") -> dict:
    return {"configurable": {"thread_id": thread}}


def alogger(name: str, calls: Counter | None = None):  # noqa: ANN201
    async def node(state: S) -> dict:
        if calls is not None:
            calls[name] += 1
        await asyncio.sleep(0)
        return {"log": [name]}

    return node


def abc(*, b: Any = None, calls: Counter | None = None, checkpointer: Any = "new",
        **compile_kw: Any) -> Any:
    g = StateGraph(S)
    g.add_node("a", alogger("a", calls))
    g.add_node("b", b or alogger("b", calls))
    g.add_node("c", alogger("c", calls))
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("c", END)
    if checkpointer == "new":
        checkpointer = InMemorySaver()
    return g.compile(checkpointer=checkpointer, **compile_kw)


def asking_b(calls: Counter) -> Any:
    async def b(state: S) -> dict:
        calls["b"] += 1
        answer = interrupt("b?")
        return {"log": [f"b:{answer}"]}

    return b


async def ahistory(app: Any, config: dict | None = None, **kw: Any) -> list[StateSnapshot]:
    return [s async for s in app.aget_state_history(config or cfg(), **kw)]


# -- basic async runs ------------------------------------------------------------------


async def test_ainvoke_chain() -> None:
    assert await abc(checkpointer=None).ainvoke({"x": 0}) == {"x": 0, "log": ["a", "b", "c"]}


async def test_astream_updates_and_values() -> None:
    app = abc(checkpointer=None)
    assert [c async for c in app.astream({"x": 0})] == [
        {"a": {"log": ["a"]}},
        {"b": {"log": ["b"]}},
        {"c": {"log": ["c"]}},
    ]
    values = [c async for c in app.astream({"x": 0}, stream_mode="values")]
    assert values[0] == {"x": 0, "log": []}
    assert values[-1] == {"x": 0, "log": ["a", "b", "c"]}


async def test_astream_custom_mode() -> None:
    async def a(state: S, writer) -> dict:  # noqa: ANN001
        writer("one")
        await asyncio.sleep(0)
        writer("two")
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_edge(START, "a")
    chunks = [c async for c in g.compile().astream({"x": 0}, stream_mode=["custom", "updates"])]
    assert chunks == [("custom", "one"), ("custom", "two"), ("updates", {"a": {"log": ["a"]}})]


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


async def test_async_send_interrupt_and_resume_map() -> None:
    class MapState(TypedDict):
        items: list[str]
        results: Annotated[list, operator.add]

    calls: Counter = Counter()

    async def worker(item: str) -> dict:
        calls[item] += 1
        return {"results": [f"{item}:{interrupt(item)}"]}

    g = StateGraph(MapState)
    g.add_node("worker", worker)
    g.add_conditional_edges(START, lambda s: [Send("worker", it) for it in s["items"]])
    app = g.compile(checkpointer=InMemorySaver())
    out = await app.ainvoke({"items": ["p", "q"]}, cfg())
    ints = out["__interrupt__"]
    assert [i.value for i in ints] == ["p", "q"]
    snap = await app.aget_state(cfg())
    assert snap.next == ("worker", "worker")
    assert [t.path for t in snap.tasks] == [("__pregel_push", 0, False),
                                            ("__pregel_push", 1, False)]
    out = await app.ainvoke(Command(resume={i.id: i.value.upper() for i in ints}), cfg())
    assert out["results"] == ["p:P", "q:Q"]
    assert calls == {"p": 2, "q": 2}


async def test_async_node_retry_policy() -> None:
    from threadloom.types import RetryPolicy

    attempts = []

    class Flaky(Exception):
        pass

    async def a(state: S) -> dict:
        attempts.append(1)
        if len(attempts) < 3:
            raise Flaky()
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a, retry_policy=RetryPolicy(initial_interval=0, jitter=False,
                                                retry_on=Flaky))
    g.add_edge(START, "a")
    assert (await g.compile().ainvoke({"x": 0}))["log"] == ["a"]
    assert len(attempts) == 3


async def test_async_recursion_limit() -> None:
    g = StateGraph(S)
    g.add_node("loop", alogger("loop"))
    g.add_edge(START, "loop")
    g.add_edge("loop", "loop")
    with pytest.raises(GraphRecursionError):
        await g.compile().ainvoke({"x": 0}, {"recursion_limit": 3})


# -- checkpoints and HITL --------------------------------------------------------------


async def test_async_checkpoint_table() -> None:
    app = abc()
    await app.ainvoke({"x": 0}, cfg())
    snaps = list(reversed(await ahistory(app)))
    assert [s.metadata["step"] for s in snaps] == [-1, 0, 1, 2, 3]
    assert [s.metadata["source"] for s in snaps] == ["input", "loop", "loop", "loop", "loop"]
    assert [s.next for s in snaps] == [("__start__",), ("a",), ("b",), ("c",), ()]
    assert [s.metadata["step"] for s in await ahistory(app, limit=2)] == [3, 2]
    assert [s.metadata["step"] for s in await ahistory(app, filter={"source": "input"})] == [-1]
    assert [s.metadata["step"] for s in await ahistory(app, before=snaps[2].config)] == [0, -1]


async def test_async_interrupt_before_and_resume() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls, interrupt_before=["b"])
    assert await app.ainvoke({"x": 0}, cfg()) == {"x": 0, "log": ["a"]}
    snap = await app.aget_state(cfg())
    assert snap.next == ("b",)
    assert snap.tasks[0].path == ("__pregel_pull", "b")
    assert [c async for c in app.astream(None, cfg(), stream_mode="updates")] == [
        {"b": {"log": ["b"]}},
        {"c": {"log": ["c"]}},
    ]
    assert calls == {"a": 1, "b": 1, "c": 1}


async def test_async_interrupt_after() -> None:
    app = abc(interrupt_after=["b"])
    assert (await app.ainvoke({"x": 0}, cfg()))["log"] == ["a", "b"]
    assert (await app.aget_state(cfg())).next == ("c",)
    assert (await app.ainvoke(None, cfg()))["log"] == ["a", "b", "c"]


async def test_async_astream_interrupt_chunk() -> None:
    app = abc(interrupt_before=["b"])
    chunks = [c async for c in app.astream({"x": 0}, cfg(), stream_mode="updates")]
    assert chunks == [{"a": {"log": ["a"]}}, {"__interrupt__": ()}]


async def test_async_interrupt_and_resume() -> None:
    calls: Counter = Counter()
    app = abc(b=asking_b(calls), calls=calls)
    out = await app.ainvoke({"x": 0}, cfg())
    (intr,) = out["__interrupt__"]
    assert isinstance(intr, Interrupt) and intr.value == "b?"
    snap = await app.aget_state(cfg())
    assert snap.next == ("b",)
    assert snap.interrupts == (intr,)
    assert snap.tasks[0].interrupts == (intr,)
    # invoke(None) re-raises the same interrupt
    again = await app.ainvoke(None, cfg())
    assert again["__interrupt__"] == [intr]
    out = await app.ainvoke(Command(resume="yes"), cfg())
    assert out == {"x": 0, "log": ["a", "b:yes", "c"]}
    assert calls == {"a": 1, "b": 3, "c": 1}


async def test_async_astream_resume_emits_updates() -> None:
    calls: Counter = Counter()
    app = abc(b=asking_b(calls), calls=calls)
    first = [c async for c in app.astream({"x": 0}, cfg(), stream_mode="updates")]
    assert first[0] == {"a": {"log": ["a"]}}
    assert first[-1]["__interrupt__"][0].value == "b?"
    chunks = [c async for c in app.astream(Command(resume="r"), cfg(), stream_mode="updates")]
    assert chunks == [{"b": {"log": ["b:r"]}}, {"c": {"log": ["c"]}}]


async def test_async_several_interrupts_in_one_node() -> None:
    entries = []

    async def b(state: S) -> dict:
        entries.append(1)
        first = interrupt("q1")
        second = interrupt("q2")
        return {"log": [first + second]}

    app = abc(b=b)
    assert [i.value for i in (await app.ainvoke({"x": 0}, cfg()))["__interrupt__"]] == ["q1"]
    assert [i.value for i in (await app.ainvoke(Command(resume="A"), cfg()))["__interrupt__"]
            ] == ["q2"]
    assert (await app.ainvoke(Command(resume="B"), cfg()))["log"] == ["a", "AB", "c"]
    assert len(entries) == 3


async def test_async_parallel_interrupts() -> None:
    calls: Counter = Counter()

    def ask(name: str):  # noqa: ANN202
        async def node(state: S) -> dict:
            calls[name] += 1
            return {"log": [f"{name}:{interrupt(name)}"]}

        return node

    g = StateGraph(S)
    g.add_node("p1", ask("p1"))
    g.add_node("p2", ask("p2"))
    g.add_node("c", alogger("c", calls))
    g.add_edge(START, "p1")
    g.add_edge(START, "p2")
    g.add_edge(["p1", "p2"], "c")
    app = g.compile(checkpointer=InMemorySaver())
    i1, i2 = (await app.ainvoke({"x": 0}, cfg()))["__interrupt__"]
    with pytest.raises(RuntimeError, match="multiple pending interrupts"):
        await app.ainvoke(Command(resume="x"), cfg())
    out = await app.ainvoke(Command(resume={i1.id: "one"}), cfg())
    assert [i.id for i in out["__interrupt__"]] == [i2.id]
    snap = await app.aget_state(cfg())
    assert snap.next == ("p2",)
    assert snap.values["log"] == ["p1:one"]
    out = await app.ainvoke(Command(resume={i2.id: "two"}), cfg())
    assert out["log"] == ["p1:one", "p2:two", "c"]
    assert calls == {"p1": 2, "p2": 3, "c": 1}


async def test_async_update_state_as_node() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls, interrupt_before=["b"])
    await app.ainvoke({"x": 0}, cfg())
    new = await app.aupdate_state(cfg(), {"log": ["manual"]}, as_node="b")
    snap = await app.aget_state(cfg())
    assert snap.config["configurable"]["checkpoint_id"] == new["configurable"]["checkpoint_id"]
    assert snap.next == ("c",)
    assert snap.metadata["source"] == "update"
    assert (await app.ainvoke(None, cfg()))["log"] == ["a", "manual", "c"]
    assert calls == {"a": 1, "c": 1}


async def test_async_update_state_as_a_and_errors() -> None:
    app = abc(interrupt_before=["b"])
    await app.ainvoke({"x": 0}, cfg())
    await app.aupdate_state(cfg(), {"x": 4}, as_node="a")
    assert (await app.aget_state(cfg())).next == ("b",)
    with pytest.raises(InvalidUpdateError, match="Node zzz does not exist"):
        await app.aupdate_state(cfg(), {"x": 1}, as_node="zzz")
    assert await app.ainvoke(None, cfg()) == {"x": 4, "log": ["a", "b", "c"]}


async def test_async_update_state_fresh_thread() -> None:
    app = abc()
    await app.aupdate_state(cfg("fresh"), {"x": 1})
    snap = await app.aget_state(cfg("fresh"))
    assert snap.next == ("a",)
    assert snap.metadata["step"] == 0
    assert (await app.ainvoke(None, cfg("fresh")))["log"] == ["a", "b", "c"]


async def test_async_update_state_while_paused_in_interrupt() -> None:
    calls: Counter = Counter()
    app = abc(b=asking_b(calls), calls=calls)
    await app.ainvoke({"x": 0}, cfg())
    await app.aupdate_state(cfg(), {"x": 9})
    snap = await app.aget_state(cfg())
    assert snap.interrupts == ()
    assert snap.next == ("b",)
    assert await app.ainvoke(Command(resume="ok"), cfg()) == {"x": 9, "log": ["a", "b:ok", "c"]}


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


async def test_async_fork_and_replay() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls)
    await app.ainvoke({"x": 0}, cfg())
    old = [s for s in await ahistory(app) if s.metadata["step"] == 1][0]
    out = await app.ainvoke(None, old.config)
    assert out["log"] == ["a", "b", "c"]
    assert calls == {"a": 1, "b": 2, "c": 2}
    forked = await app.aupdate_state(old.config, {"x": 50})
    head = await app.aget_state(cfg())
    assert head.config["configurable"]["checkpoint_id"] == \
        forked["configurable"]["checkpoint_id"]
    assert head.parent_config["configurable"]["checkpoint_id"] == \
        old.config["configurable"]["checkpoint_id"]
    assert (await app.ainvoke(None, cfg())) == {"x": 50, "log": ["a", "b", "c"]}


async def test_async_empty_thread_and_finished_thread() -> None:
    app = abc()
    with pytest.raises(EmptyInputError):
        await app.ainvoke(None, cfg("nothing"))
    await app.ainvoke({"x": 0}, cfg())
    assert await app.ainvoke(None, cfg()) == {"x": 0, "log": ["a", "b", "c"]}


@pytest.mark.filterwarnings("ignore")
async def test_async_no_checkpointer() -> None:
    calls: Counter = Counter()
    app = abc(b=asking_b(calls), calls=calls, checkpointer=None)
    out = await app.ainvoke({"x": 0})
    assert [i.value for i in out["__interrupt__"]] == ["b?"]
    with pytest.raises(RuntimeError, match="without checkpointer"):
        await app.ainvoke(Command(resume="x"))
    with pytest.raises(ValueError, match="No checkpointer set"):
        await app.aget_state(cfg())


@pytest.mark.parametrize(("durability", "count"), [("exit", 1), ("sync", 5), ("async", 5)])
async def test_async_durability(durability: str, count: int) -> None:
    app = abc()
    await app.ainvoke({"x": 0}, cfg(), durability=durability)
    assert len(await ahistory(app)) == count


# -- async subgraph --------------------------------------------------------------------


async def test_async_subgraph_interrupt_resume() -> None:
    calls: Counter = Counter()

    async def c2(state: S) -> dict:
        calls["c2"] += 1
        return {"log": [f"c2:{interrupt('inner')}"]}

    cg = StateGraph(S)
    cg.add_node("c1", alogger("c1", calls))
    cg.add_node("c2", c2)
    cg.add_edge(START, "c1")
    cg.add_edge("c1", "c2")

    g = StateGraph(S)
    g.add_node("child", cg.compile())
    g.add_edge(START, "child")
    app = g.compile(checkpointer=InMemorySaver())
    out = await app.ainvoke({"x": 0, "log": []}, cfg())
    assert [i.value for i in out["__interrupt__"]] == ["inner"]
    snap = await app.aget_state(cfg(), subgraphs=True)
    assert snap.tasks[0].state.next == ("c2",)
    chunks = [c async for c in app.astream(Command(resume="ok"), cfg(), stream_mode="updates",
                                           subgraphs=True)]
    assert ((), {"child": {"x": 0, "log": ["c1", "c2:ok"]}}) in chunks
    assert calls == {"c1": 1, "c2": 2}


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
