"""Graph scenarios written once and run twice: through the sync API (invoke / stream /
get_state / update_state / get_state_history, sync nodes) and through the async one
(ainvoke / astream / ..., ``async def`` nodes) - the ``graph_api`` fixture
(``helpers.GraphApi``). Basic runs, Send, retries, limits, interrupts and resume, state
edits, forks, durability and a subgraph's interrupt.

Same expectations as ../shared/reference/langgraph-api.md §1.2, §1.17, §2. More scenarios
run both ways in test_graph_hitl.py; what only the async API does (event-loop
concurrency, cancellation) is in test_graph_async.py.
"""

from __future__ import annotations

import operator
from collections import Counter
from typing import Annotated, Any, TypedDict

import pytest
from helpers import GraphApi, S, cfg

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.errors import EmptyInputError, GraphRecursionError, InvalidUpdateError
from threadloom.graph import END, START, StateGraph
from threadloom.types import Command, Interrupt, RetryPolicy, Send, interrupt

# -- basic runs ------------------------------------------------------------------------


async def test_invoke_a_chain(graph_api: GraphApi) -> None:
    app = graph_api.abc(checkpointer=None)
    assert await graph_api.invoke(app, {"x": 0}) == {"x": 0, "log": ["a", "b", "c"]}


async def test_stream_updates_and_values(graph_api: GraphApi) -> None:
    app = graph_api.abc(checkpointer=None)
    assert await graph_api.stream(app, {"x": 0}) == [
        {"a": {"log": ["a"]}},
        {"b": {"log": ["b"]}},
        {"c": {"log": ["c"]}},
    ]
    values = await graph_api.stream(app, {"x": 0}, stream_mode="values")
    assert values[0] == {"x": 0, "log": []}
    assert values[-1] == {"x": 0, "log": ["a", "b", "c"]}


async def test_stream_custom_mode(graph_api: GraphApi) -> None:
    def a(state: S, writer) -> dict:  # noqa: ANN001
        writer("one")
        writer("two")
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", graph_api.node(a))
    g.add_edge(START, "a")
    chunks = await graph_api.stream(g.compile(), {"x": 0}, stream_mode=["custom", "updates"])
    assert chunks == [("custom", "one"), ("custom", "two"), ("updates", {"a": {"log": ["a"]}})]


async def test_send_interrupt_and_resume_map(graph_api: GraphApi) -> None:
    class MapState(TypedDict):
        items: list[str]
        results: Annotated[list, operator.add]

    calls: Counter = Counter()

    def worker(item: str) -> dict:
        calls[item] += 1
        return {"results": [f"{item}:{interrupt(item)}"]}

    g = StateGraph(MapState)
    g.add_node("worker", graph_api.node(worker))
    g.add_conditional_edges(START, lambda s: [Send("worker", it) for it in s["items"]])
    app = g.compile(checkpointer=InMemorySaver())
    out = await graph_api.invoke(app, {"items": ["p", "q"]}, cfg())
    ints = out["__interrupt__"]
    assert [i.value for i in ints] == ["p", "q"]
    snap = await graph_api.get_state(app, cfg())
    assert snap.next == ("worker", "worker")
    assert [t.path for t in snap.tasks] == [("__pregel_push", 0, False),
                                            ("__pregel_push", 1, False)]
    out = await graph_api.invoke(app, Command(resume={i.id: i.value.upper() for i in ints}), cfg())
    assert out["results"] == ["p:P", "q:Q"]
    assert calls == {"p": 2, "q": 2}


async def test_node_retry_policy(graph_api: GraphApi) -> None:
    attempts = []

    class Flaky(Exception):
        pass

    def a(state: S) -> dict:
        attempts.append(1)
        if len(attempts) < 3:
            raise Flaky()
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", graph_api.node(a),
               retry_policy=RetryPolicy(initial_interval=0, jitter=False, retry_on=Flaky))
    g.add_edge(START, "a")
    assert (await graph_api.invoke(g.compile(), {"x": 0}))["log"] == ["a"]
    assert len(attempts) == 3


async def test_recursion_limit(graph_api: GraphApi) -> None:
    g = StateGraph(S)
    g.add_node("loop", graph_api.logger("loop"))
    g.add_edge(START, "loop")
    g.add_edge("loop", "loop")
    with pytest.raises(GraphRecursionError):
        await graph_api.invoke(g.compile(), {"x": 0}, {"recursion_limit": 3})


# -- interrupts and resume ---------------------------------------------------------------


async def test_interrupt_and_resume(graph_api: GraphApi) -> None:
    calls: Counter = Counter()
    app = graph_api.abc(b=graph_api.asking_b(calls), calls=calls)
    out = await graph_api.invoke(app, {"x": 0}, cfg())
    (intr,) = out["__interrupt__"]
    assert isinstance(intr, Interrupt) and intr.value == "b?"
    snap = await graph_api.get_state(app, cfg())
    assert snap.next == ("b",)
    assert snap.interrupts == (intr,)
    assert snap.tasks[0].interrupts == (intr,)
    # invoke(None) re-raises the same interrupt
    again = await graph_api.invoke(app, None, cfg())
    assert again["__interrupt__"] == [intr]
    out = await graph_api.invoke(app, Command(resume="yes"), cfg())
    assert out == {"x": 0, "log": ["a", "b:yes", "c"]}
    assert calls == {"a": 1, "b": 3, "c": 1}


async def test_stream_of_a_resume_emits_its_updates(graph_api: GraphApi) -> None:
    calls: Counter = Counter()
    app = graph_api.abc(b=graph_api.asking_b(calls), calls=calls)
    first = await graph_api.stream(app, {"x": 0}, cfg(), stream_mode="updates")
    assert first[0] == {"a": {"log": ["a"]}}
    assert first[-1]["__interrupt__"][0].value == "b?"
    chunks = await graph_api.stream(app, Command(resume="r"), cfg(), stream_mode="updates")
    assert chunks == [{"b": {"log": ["b:r"]}}, {"c": {"log": ["c"]}}]


async def test_parallel_interrupts_answered_one_at_a_time(graph_api: GraphApi) -> None:
    calls: Counter = Counter()

    def ask(name: str) -> Any:
        def node(state: S) -> dict:
            calls[name] += 1
            return {"log": [f"{name}:{interrupt(name)}"]}

        return graph_api.node(node)

    g = StateGraph(S)
    g.add_node("p1", ask("p1"))
    g.add_node("p2", ask("p2"))
    g.add_node("c", graph_api.logger("c", calls))
    g.add_edge(START, "p1")
    g.add_edge(START, "p2")
    g.add_edge(["p1", "p2"], "c")
    app = g.compile(checkpointer=InMemorySaver())
    i1, i2 = (await graph_api.invoke(app, {"x": 0}, cfg()))["__interrupt__"]
    with pytest.raises(RuntimeError, match="multiple pending interrupts"):
        await graph_api.invoke(app, Command(resume="x"), cfg())
    out = await graph_api.invoke(app, Command(resume={i1.id: "one"}), cfg())
    assert [i.id for i in out["__interrupt__"]] == [i2.id]
    snap = await graph_api.get_state(app, cfg())
    assert snap.next == ("p2",)
    assert snap.values["log"] == ["p1:one"]
    out = await graph_api.invoke(app, Command(resume={i2.id: "two"}), cfg())
    assert out["log"] == ["p1:one", "p2:two", "c"]
    assert calls == {"p1": 2, "p2": 3, "c": 1}


# -- state edits, forks, finished and empty threads -----------------------------------------


async def test_update_state_as_node(graph_api: GraphApi) -> None:
    calls: Counter = Counter()
    app = graph_api.abc(calls=calls, interrupt_before=["b"])
    await graph_api.invoke(app, {"x": 0}, cfg())
    new = await graph_api.update_state(app, cfg(), {"log": ["manual"]}, as_node="b")
    snap = await graph_api.get_state(app, cfg())
    assert snap.config["configurable"]["checkpoint_id"] == new["configurable"]["checkpoint_id"]
    assert snap.next == ("c",)
    assert snap.metadata["source"] == "update"
    assert (await graph_api.invoke(app, None, cfg()))["log"] == ["a", "manual", "c"]
    assert calls == {"a": 1, "c": 1}


async def test_update_state_as_a_and_errors(graph_api: GraphApi) -> None:
    app = graph_api.abc(interrupt_before=["b"])
    await graph_api.invoke(app, {"x": 0}, cfg())
    await graph_api.update_state(app, cfg(), {"x": 4}, as_node="a")
    assert (await graph_api.get_state(app, cfg())).next == ("b",)
    with pytest.raises(InvalidUpdateError, match="Node zzz does not exist"):
        await graph_api.update_state(app, cfg(), {"x": 1}, as_node="zzz")
    assert await graph_api.invoke(app, None, cfg()) == {"x": 4, "log": ["a", "b", "c"]}


async def test_fork_and_replay(graph_api: GraphApi) -> None:
    calls: Counter = Counter()
    app = graph_api.abc(calls=calls)
    await graph_api.invoke(app, {"x": 0}, cfg())
    old = [s for s in await graph_api.history(app) if s.metadata["step"] == 1][0]
    out = await graph_api.invoke(app, None, old.config)
    assert out["log"] == ["a", "b", "c"]
    assert calls == {"a": 1, "b": 2, "c": 2}
    forked = await graph_api.update_state(app, old.config, {"x": 50})
    head = await graph_api.get_state(app, cfg())
    assert head.config["configurable"]["checkpoint_id"] == \
        forked["configurable"]["checkpoint_id"]
    assert head.parent_config["configurable"]["checkpoint_id"] == \
        old.config["configurable"]["checkpoint_id"]
    assert await graph_api.invoke(app, None, cfg()) == {"x": 50, "log": ["a", "b", "c"]}


async def test_empty_thread_and_finished_thread(graph_api: GraphApi) -> None:
    app = graph_api.abc()
    with pytest.raises(EmptyInputError):
        await graph_api.invoke(app, None, cfg("nothing"))
    await graph_api.invoke(app, {"x": 0}, cfg())
    assert await graph_api.invoke(app, None, cfg()) == {"x": 0, "log": ["a", "b", "c"]}


@pytest.mark.parametrize(("durability", "count"), [("exit", 1), ("sync", 5), ("async", 5)])
async def test_durability_decides_the_checkpoints_saved(
    graph_api: GraphApi, durability: str, count: int
) -> None:
    app = graph_api.abc()
    await graph_api.invoke(app, {"x": 0}, cfg(), durability=durability)
    assert len(await graph_api.history(app)) == count


# -- a subgraph ----------------------------------------------------------------------------


async def test_subgraph_interrupt_resume(graph_api: GraphApi) -> None:
    calls: Counter = Counter()

    def c2(state: S) -> dict:
        calls["c2"] += 1
        return {"log": [f"c2:{interrupt('inner')}"]}

    app = graph_api.with_child(c2, calls)
    out = await graph_api.invoke(app, {"x": 0, "log": []}, cfg())
    assert [i.value for i in out["__interrupt__"]] == ["inner"]
    snap = await graph_api.get_state(app, cfg(), subgraphs=True)
    assert snap.tasks[0].state.next == ("c2",)
    chunks = await graph_api.stream(app, Command(resume="ok"), cfg(), stream_mode="updates",
                                    subgraphs=True)
    assert ((), {"child": {"x": 0, "log": ["c1", "c2:ok"]}}) in chunks
    assert calls == {"c1": 1, "c2": 2}


# -- a routed node's reducer runs once a step -------------------------------------------


def _copying_reducer(calls: list[int]) -> Any:
    def reduce(left: list, right: list) -> list:
        calls.append(len(right))
        return left + [dict(item) for item in right]  # new objects, as a reducer may make
    return reduce


async def test_a_routed_node_alone_in_its_step_runs_its_reducer_once(graph_api: GraphApi) -> None:
    calls: list[int] = []
    seen: list[Any] = []

    # (the functional form: the reducer is a local, which a string annotation cannot name)
    State = TypedDict("State", {"items": Annotated[list, _copying_reducer(calls)], "n": int})  # noqa: UP013

    def grow(state: Any) -> dict:
        return {"items": [{"i": state["n"]}], "n": state["n"] + 1}

    def route(state: Any) -> str:
        seen.append(state["items"][-1])  # what the routing function read
        return "grow" if state["n"] < 3 else END

    g = StateGraph(State)
    g.add_node("grow", graph_api.node(grow))
    g.add_edge(START, "grow")
    g.add_conditional_edges("grow", route, ["grow", END])
    out = await graph_api.invoke(g.compile(checkpointer=InMemorySaver()), {"items": [], "n": 0},
                                 cfg("routed"))
    assert [item["i"] for item in out["items"]] == [0, 1, 2]
    # the input, then one call a step: the step applies the copy its routing function read
    assert calls == [0, 1, 1, 1]
    assert all(a is b for a, b in zip(seen, out["items"], strict=True))


async def test_parallel_routed_nodes_still_see_only_their_own_writes(
    graph_api: GraphApi,
) -> None:
    seen: dict[str, list] = {}

    class State(TypedDict):
        items: Annotated[list, operator.add]

    def writer(name: str) -> Any:
        def node(state: State) -> dict:
            return {"items": [name]}
        return node

    def router(name: str) -> Any:
        def route(state: State) -> str:
            seen[name] = list(state["items"])
            return END
        return route

    g = StateGraph(State)
    for name in ("a", "b"):
        g.add_node(name, graph_api.node(writer(name)))
        g.add_edge(START, name)
        g.add_conditional_edges(name, router(name), [END])
    out = await graph_api.invoke(g.compile(), {"items": []})
    assert out == {"items": ["a", "b"]}
    assert seen == {"a": ["a"], "b": ["b"]}  # (the step applies both, not a's copy)
