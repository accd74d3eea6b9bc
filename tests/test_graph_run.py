"""Running graphs: supersteps, parallelism, reducers, Send/Command, limits, retries,
injection, stream modes, durability and the langchain Runnable integration.

Pins LangGraph's behaviour as described in ../shared/reference/langgraph-api.md
(§1.1-1.10 and §2.12-2.16, 2.18).
"""

from __future__ import annotations

import asyncio
import gc
import operator
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

import pytest
from helpers import GraphApi, S, cfg, logger
from langchain_core.runnables import RunnableConfig, RunnableLambda

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.checkpoint.sqlite import SqliteSaver
from threadloom.config import get_config, get_stream_writer
from threadloom.errors import (
    GraphRecursionError,
    InvalidUpdateError,
    ParentCommand,
)
from threadloom.graph import END, START, StateGraph
from threadloom.managed import IsLastStep, RemainingSteps
from threadloom.runtime import Runtime
from threadloom.store.memory import InMemoryStore
from threadloom.types import Command, Interrupt, Overwrite, RetryPolicy, Send, interrupt


def chain(*names: str, checkpointer: Any = None, **compile_kw: Any) -> Any:
    g = StateGraph(S)
    prev = START
    for name in names:
        g.add_node(name, logger(name))
        g.add_edge(prev, name)
        prev = name
    g.add_edge(prev, END)
    return g.compile(checkpointer=checkpointer, **compile_kw)


# -- supersteps and parallelism -----------------------------------------------------


def test_chain_runs_in_order() -> None:
    assert chain("a", "b", "c").invoke({"x": 0}) == {"x": 0, "log": ["a", "b", "c"]}


def test_sync_parallel_nodes_run_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=5)
    threads = set()

    def a(state: S) -> dict:
        barrier.wait()
        threads.add(threading.get_ident())
        return {"log": ["a"]}

    def b(state: S) -> dict:
        barrier.wait()
        threads.add(threading.get_ident())
        return {"log": ["b"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_node("c", logger("c"))
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge("a", "c")
    g.add_edge("b", "c")
    out = g.compile().invoke({"x": 0})
    # both triggers of c fire in the same superstep: c runs once
    assert out["log"] == ["a", "b", "c"]
    assert len(threads) == 2


def test_fan_out_steps_are_supersteps() -> None:
    steps: dict[str, int] = {}

    def rec(name: str):  # noqa: ANN202
        def node(state: S, config: RunnableConfig) -> dict:
            steps[name] = config["metadata"]["langgraph_step"]
            return {"log": [name]}

        return node

    g = StateGraph(S)
    for n in ("a", "b", "b2", "c"):
        g.add_node(n, rec(n))
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge("b", "b2")
    g.add_edge("a", "c")
    out = g.compile().invoke({"x": 0})
    assert steps == {"a": 1, "b": 1, "b2": 2, "c": 2}
    assert out["log"] == ["a", "b", "b2", "c"]


def test_two_writes_to_plain_key_in_one_step_raise() -> None:
    g = StateGraph(S)
    g.add_node("a", lambda s: {"x": 1})
    g.add_node("b", lambda s: {"x": 1})  # equal values still conflict
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    with pytest.raises(InvalidUpdateError, match="At key 'x': Can receive only one value"):
        g.compile().invoke({"x": 0})


def test_two_writes_to_reducer_key_in_one_step_merge() -> None:
    g = StateGraph(S)
    g.add_node("a", logger("a"))
    g.add_node("b", logger("b"))
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    assert g.compile().invoke({"x": 0})["log"] == ["a", "b"]


def _order_graph(release: threading.Event) -> Any:
    def a(state: S) -> dict:
        assert release.wait(5)
        return {"log": ["a"]}

    def m(state: S) -> dict:
        return {"log": ["m"]}

    def z(state: S) -> dict:
        return {"log": ["z"]}

    g = StateGraph(S)
    for name, fn in (("a", a), ("m", m), ("z", z)):
        g.add_node(name, fn)
        g.add_edge(START, name)
    return g.compile()


def test_reducer_order_is_task_order_not_completion_order() -> None:
    # §2.15: a finishes last (it waits until z's update was streamed) but its write is
    # applied first (task order = node name).
    release = threading.Event()
    app = _order_graph(release)
    names = []
    for mode, chunk in app.stream({"x": 0}, stream_mode=["updates", "values"]):
        if mode == "updates":
            names.append(next(iter(chunk)))
            if "z" in chunk:
                release.set()
        else:
            final = chunk
    # the updates stream is in completion order, updates reach the caller live
    assert names.index("z") < names.index("a")
    assert sorted(names) == ["a", "m", "z"]
    assert final["log"] == ["a", "m", "z"]


def test_conditional_edge_sees_fresh_state() -> None:
    # §2.14: route after a sees a's own writes but not parallel sibling p's.
    class XY(TypedDict):
        x: int
        y: int

    seen = []

    def route(state: XY) -> str:
        seen.append(dict(state))
        return END

    g = StateGraph(XY)
    g.add_node("a", lambda s: {"x": 1})
    g.add_node("p", lambda s: {"y": 5})
    g.add_edge(START, "a")
    g.add_edge(START, "p")
    g.add_conditional_edges("a", route)
    out = g.compile().invoke({"x": 0, "y": 0})
    assert seen == [{"x": 1, "y": 0}]
    assert out == {"x": 1, "y": 5}


def _barrier_graph(join: bool) -> tuple[Any, list]:
    calls: list = []

    def c(state: S) -> dict:
        calls.append(list(state["log"]))
        return {"log": ["c"]}

    g = StateGraph(S)
    g.add_node("a", logger("a"))
    g.add_node("a2", logger("a2"))
    g.add_node("b", logger("b"))
    g.add_node("c", c)
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge("a", "a2")
    if join:
        g.add_edge(["a2", "b"], "c")
    else:
        g.add_edge("a2", "c")
        g.add_edge("b", "c")
    return g.compile(), calls


def test_barrier_edge_runs_target_once_after_last_source() -> None:
    app, calls = _barrier_graph(join=True)
    assert app.invoke({"x": 0})["log"] == ["a", "b", "a2", "c"]
    assert calls == [["a", "b", "a2"]]


def test_plain_edges_run_target_once_per_triggering_step() -> None:
    app, calls = _barrier_graph(join=False)
    assert app.invoke({"x": 0})["log"] == ["a", "b", "a2", "c", "c"]
    assert calls == [["a", "b"], ["a", "b", "a2", "c"]]


# -- Send ---------------------------------------------------------------------------


class MapState(TypedDict):
    topics: list[str]
    results: Annotated[list, operator.add]


def test_send_fan_out_gathered_in_send_order() -> None:
    # worker k waits for worker k+1, so completion order is the reverse of Send order
    events = [threading.Event() for _ in range(3)]
    inputs = []

    def worker(arg: dict) -> dict:
        inputs.append(arg)
        i = arg["i"]
        if i + 1 < len(events):
            assert events[i + 1].wait(5)
        events[i].set()
        return {"results": [f"done-{arg['topic']}"]}

    def fan_out(state: MapState) -> list[Send]:
        return [Send("worker", {"topic": t, "i": i}) for i, t in enumerate(state["topics"])]

    g = StateGraph(MapState)
    g.add_node("worker", worker)
    g.add_conditional_edges(START, fan_out)
    out = g.compile().invoke({"topics": ["a", "b", "c"]})
    assert out["results"] == ["done-a", "done-b", "done-c"]
    assert sorted(d["topic"] for d in inputs) == ["a", "b", "c"]
    # the worker's input is the Send's arg, not the graph state
    assert all(set(d) == {"topic", "i"} for d in inputs)


def test_send_tasks_have_push_paths() -> None:
    def fan_out(state: MapState) -> list[Send]:
        return [Send("worker", t) for t in state["topics"]]

    g = StateGraph(MapState)
    g.add_node("worker", lambda t: {"results": [t]}, )
    g.add_conditional_edges(START, fan_out)
    g.add_edge("worker", END)
    app = g.compile(checkpointer=InMemorySaver(), interrupt_before=["worker"])
    app.invoke({"topics": ["p", "q"]}, cfg())
    snap = app.get_state(cfg())
    assert snap.next == ("worker", "worker")
    assert [t.path for t in snap.tasks] == [
        ("__pregel_push", 0, False),
        ("__pregel_push", 1, False),
    ]
    assert app.invoke(None, cfg())["results"] == ["p", "q"]


def test_send_to_end_from_branch_raises() -> None:
    g = StateGraph(MapState)
    g.add_node("worker", lambda t: None)
    g.add_conditional_edges(START, lambda s: [Send(END, {})])
    with pytest.raises(InvalidUpdateError, match="Cannot send a packet to the END node"):
        g.compile().invoke({"topics": []})


def test_send_equality_and_repr() -> None:
    assert Send("w", {"a": 1}) == Send("w", {"a": 1})
    assert Send("w", {"a": 1}) != Send("w", {"a": 2})
    assert repr(Send("w", {"a": 1})) == "Send(node='w', arg={'a': 1})"


# -- Command ------------------------------------------------------------------------


def test_command_goto_adds_to_static_edges() -> None:
    def a(state: S) -> Command[Literal["c"]]:
        return Command(update={"log": ["a"], "x": 7}, goto="c")

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", logger("b"))
    g.add_node("c", logger("c"))
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    out = g.compile().invoke({"x": 0})
    assert out == {"x": 7, "log": ["a", "b", "c"]}


def test_command_goto_list_and_send() -> None:
    def a(state: S) -> Command:
        return Command(goto=["b", Send("c", {"x": 42, "log": []})])

    seen = []

    def c(state: S) -> dict:
        seen.append(state)
        return {"log": ["c"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", logger("b"))
    g.add_node("c", c)
    g.add_edge(START, "a")
    out = g.compile().invoke({"x": 0})
    assert out["log"] == ["b", "c"]
    assert seen == [{"x": 42, "log": []}]


def test_command_goto_end_is_noop() -> None:
    g = StateGraph(S)
    g.add_node("a", lambda s: Command(update={"log": ["a"]}, goto=END))
    g.add_edge(START, "a")
    assert g.compile().invoke({"x": 0})["log"] == ["a"]


def test_command_goto_unknown_node_is_dropped() -> None:
    g = StateGraph(S)
    g.add_node("a", lambda s: Command(update={"log": ["a"]}, goto="nowhere"))
    g.add_edge(START, "a")
    assert g.compile().invoke({"x": 0})["log"] == ["a"]


def test_command_update_as_list_of_tuples() -> None:
    g = StateGraph(S)
    g.add_node("a", lambda s: Command(update=[("log", ["a"]), ("x", 3)]))
    g.add_edge(START, "a")
    assert g.compile().invoke({"x": 0}) == {"x": 3, "log": ["a"]}


def test_node_returning_list_of_commands_and_dict() -> None:
    def a(state: S) -> list:
        return [Command(update={"log": ["a1"]}, goto="b"), Command(update={"log": ["a2"]}),
                {"x": 9}]

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", logger("b"))
    g.add_edge(START, "a")
    out = g.compile().invoke({"x": 0})
    assert out == {"x": 9, "log": ["a1", "a2", "b"]}


def test_command_parent_at_root_escapes() -> None:
    g = StateGraph(S)
    g.add_node("a", lambda s: Command(graph=Command.PARENT, goto="a"))
    g.add_edge(START, "a")
    with pytest.raises(ParentCommand):
        g.compile().invoke({"x": 0})


def test_command_repr_shows_only_truthy_fields() -> None:
    assert repr(Command(update={"x": 1}, goto="b")) == "Command(update={'x': 1}, goto='b')"


def test_command_as_input_update_and_goto() -> None:
    app = chain("a", "b")
    out = app.invoke(Command(update={"x": 5, "log": ["cmd"]}, goto="b"), cfg())
    # no checkpointer needed for update/goto; only b runs
    assert out == {"x": 5, "log": ["cmd", "b"]}


@pytest.mark.parametrize("bad", [5, "text", [("x", 1)], [1, 2]])
def test_invalid_node_return_value(bad: Any) -> None:
    g = StateGraph(S)
    g.add_node("a", lambda s: bad)
    g.add_edge(START, "a")
    with pytest.raises(InvalidUpdateError, match="Expected dict"):
        g.compile().invoke({"x": 0})


def test_node_returning_none_is_no_update() -> None:
    g = StateGraph(S)
    g.add_node("a", lambda s: None)
    g.add_edge(START, "a")
    app = g.compile()
    assert app.invoke({"x": 1}) == {"x": 1, "log": []}
    assert list(app.stream({"x": 1}, stream_mode="updates")) == [{"a": None}]


def test_node_returning_state_object() -> None:
    @dataclass
    class D:
        x: int = 0
        y: int = 0

    g = StateGraph(D)
    g.add_node("a", lambda s: D(x=s.x + 1, y=2))
    g.add_edge(START, "a")
    assert g.compile().invoke({"x": 1}) == {"x": 2, "y": 2}


def test_overwrite_bypasses_reducer() -> None:
    g = StateGraph(S)
    g.add_node("a", logger("a"))
    g.add_node("b", lambda s: {"log": Overwrite(["reset"])})
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    assert g.compile().invoke({"x": 0, "log": ["in"]})["log"] == ["reset"]


@pytest.mark.parametrize(
    "value", [{"__overwrite__": ["reset"]}, {"type": "__overwrite__", "value": ["reset"]}]
)
def test_overwrite_dict_forms(value: dict) -> None:
    g = StateGraph(S)
    g.add_node("a", lambda s: {"log": value})
    g.add_edge(START, "a")
    assert g.compile().invoke({"x": 0, "log": ["in"]})["log"] == ["reset"]


def test_two_overwrites_in_one_step_raise() -> None:
    g = StateGraph(S)
    g.add_node("a", lambda s: {"log": Overwrite(["a"])})
    g.add_node("b", lambda s: {"log": Overwrite(["b"])})
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    with pytest.raises(InvalidUpdateError):
        g.compile().invoke({"x": 0})


# -- recursion limit and managed values ----------------------------------------------


def test_chain_of_three_fails_at_limit_three_passes_at_four() -> None:
    app = chain("a", "b", "c")
    with pytest.raises(GraphRecursionError, match="Recursion limit of 3 reached"):
        app.invoke({"x": 0}, {"recursion_limit": 3})
    assert app.invoke({"x": 0}, {"recursion_limit": 4})["log"] == ["a", "b", "c"]


def test_graph_recursion_error_is_recursion_error() -> None:
    assert issubclass(GraphRecursionError, RecursionError)


@pytest.mark.parametrize("limit", [1, 3, 6])
def test_self_loop_runs_exactly_limit_times(limit: int) -> None:
    runs = []

    def loop(state: S) -> dict:
        runs.append(1)
        return {"log": ["l"]}

    g = StateGraph(S)
    g.add_node("loop", loop)
    g.add_edge(START, "loop")
    g.add_edge("loop", "loop")
    with pytest.raises(GraphRecursionError):
        g.compile().invoke({"x": 0}, {"recursion_limit": limit})
    assert len(runs) == limit


def test_recursion_error_with_checkpointer_saves_state_and_next() -> None:
    g = StateGraph(S)
    g.add_node("loop", logger("loop"))
    g.add_edge(START, "loop")
    g.add_edge("loop", "loop")
    app = g.compile(checkpointer=InMemorySaver())
    with pytest.raises(GraphRecursionError):
        app.invoke({"x": 0}, {**cfg(), "recursion_limit": 3})
    snap = app.get_state(cfg())
    assert snap.values["log"] == ["loop"] * 3
    assert snap.next == ("loop",)


@pytest.mark.parametrize("limit", [0, -1])
def test_recursion_limit_below_one_is_value_error(limit: int) -> None:
    with pytest.raises(ValueError):
        chain("a").invoke({"x": 0}, {"recursion_limit": limit})


def test_default_recursion_limit_is_large() -> None:
    # 1.1.3+: 10007; a 40-iteration loop (more than the old 25) must pass.
    def loop(state: S) -> dict:
        return {"x": state["x"] + 1}

    g = StateGraph(S)
    g.add_node("loop", loop)
    g.add_edge(START, "loop")
    g.add_conditional_edges("loop", lambda s: END if s["x"] >= 40 else "loop")
    assert g.compile().invoke({"x": 0})["x"] == 40


class ManagedState(TypedDict):
    log: Annotated[list, operator.add]
    remaining_steps: RemainingSteps
    is_last_step: IsLastStep


def test_remaining_steps_and_is_last_step() -> None:
    seen = []

    def agent(state: ManagedState) -> dict:
        seen.append((state["remaining_steps"], state["is_last_step"]))
        return {"log": ["agent"]}

    def agent_cmd(state: ManagedState) -> Command:
        seen.append((state["remaining_steps"], state["is_last_step"]))
        return Command(update={"log": ["agent"]},
                       goto=END if state["is_last_step"] else "agent")

    g = StateGraph(ManagedState)
    g.add_node("agent", agent_cmd)
    g.add_edge(START, "agent")
    out = g.compile().invoke({"log": []}, {"recursion_limit": 4})
    assert seen == [(3, False), (2, False), (1, True)]
    # managed values never appear in the output
    assert out == {"log": ["agent"] * 3}


def test_remaining_steps_visible_in_conditional_edge() -> None:
    # LangGraph's docs route on state["remaining_steps"] in a conditional edge.
    seen = []

    def agent(state: ManagedState) -> dict:
        return {"log": ["agent"]}

    def route(state: ManagedState) -> str:
        seen.append((state["remaining_steps"], state["is_last_step"]))
        return END if state["is_last_step"] else "agent"

    g = StateGraph(ManagedState)
    g.add_node("agent", agent)
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", route)
    out = g.compile().invoke({"log": []}, {"recursion_limit": 4})
    assert seen == [(3, False), (2, False), (1, True)]
    assert out == {"log": ["agent"] * 3}


# -- retries -------------------------------------------------------------------------


class Flaky(Exception):
    pass


def test_retry_policy_retries_matching_exception() -> None:
    attempts = []

    def a(state: S) -> dict:
        attempts.append(1)
        if len(attempts) < 3:
            raise Flaky("try again")
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a, retry_policy=RetryPolicy(initial_interval=0, jitter=False,
                                                retry_on=Flaky, max_attempts=3))
    g.add_edge(START, "a")
    assert g.compile().invoke({"x": 0})["log"] == ["a"]
    assert len(attempts) == 3


def test_retry_policy_max_attempts_counts_first_try() -> None:
    attempts = []

    def a(state: S) -> dict:
        attempts.append(1)
        raise Flaky("always")

    g = StateGraph(S)
    g.add_node("a", a, retry_policy=RetryPolicy(initial_interval=0, jitter=False,
                                                retry_on=Flaky, max_attempts=2))
    g.add_edge(START, "a")
    with pytest.raises(Flaky):
        g.compile().invoke({"x": 0})
    assert len(attempts) == 2


def test_retry_policy_default_does_not_retry_value_error() -> None:
    attempts = []

    def a(state: S) -> dict:
        attempts.append(1)
        raise ValueError("bug")

    g = StateGraph(S)
    g.add_node("a", a, retry_policy=RetryPolicy())
    g.add_edge(START, "a")
    with pytest.raises(ValueError, match="bug"):
        g.compile().invoke({"x": 0})
    assert len(attempts) == 1


def test_retry_policy_default_retries_other_exceptions() -> None:
    attempts = []

    def a(state: S) -> dict:
        attempts.append(1)
        if len(attempts) == 1:
            raise Flaky("transient")
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a, retry_policy=RetryPolicy(initial_interval=0, jitter=False))
    g.add_edge(START, "a")
    assert g.compile().invoke({"x": 0})["log"] == ["a"]
    assert len(attempts) == 2


def test_retry_policy_predicate_and_sibling_not_rerun() -> None:
    attempts = {"a": 0, "b": 0}

    def a(state: S) -> dict:
        attempts["a"] += 1
        if attempts["a"] < 2:
            raise Flaky("x")
        return {"log": ["a"]}

    def b(state: S) -> dict:
        attempts["b"] += 1
        return {"log": ["b"]}

    g = StateGraph(S)
    g.add_node("a", a, retry_policy=RetryPolicy(initial_interval=0, jitter=False,
                                                retry_on=lambda e: isinstance(e, Flaky)))
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    assert g.compile().invoke({"x": 0})["log"] == ["a", "b"]
    assert attempts == {"a": 2, "b": 1}


def test_retry_policy_defaults() -> None:
    p = RetryPolicy()
    assert (p.initial_interval, p.backoff_factor, p.max_interval, p.max_attempts, p.jitter) == (
        0.5, 2.0, 128.0, 3, True)


def test_deprecated_retry_kwarg() -> None:
    attempts = []

    def a(state: S) -> dict:
        attempts.append(1)
        if len(attempts) < 2:
            raise Flaky("x")
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a, retry=RetryPolicy(initial_interval=0, jitter=False, retry_on=Flaky))
    g.add_edge(START, "a")
    assert g.compile().invoke({"x": 0})["log"] == ["a"]


# -- injection: config, runtime, writer, store, context --------------------------------


def test_node_config_param_and_get_config() -> None:
    seen = {}

    def a(state: S, config: RunnableConfig) -> dict:
        seen["config"] = config
        seen["get_config"] = get_config()
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_edge(START, "a")
    g.compile(checkpointer=InMemorySaver()).invoke(
        {"x": 0}, {"configurable": {"thread_id": "t1", "user": "u"}})
    config = seen["config"]
    assert config["configurable"]["thread_id"] == "t1"
    assert config["configurable"]["user"] == "u"
    assert config["configurable"]["checkpoint_ns"].startswith("a:")
    md = config["metadata"]
    assert md["langgraph_node"] == "a"
    assert md["langgraph_step"] == 1
    assert md["langgraph_path"] == ("__pregel_pull", "a")
    assert md["langgraph_checkpoint_ns"] == config["configurable"]["checkpoint_ns"]
    assert md["thread_id"] == "t1"
    assert seen["get_config"]["metadata"]["langgraph_node"] == "a"


def test_get_config_outside_run_raises() -> None:
    with pytest.raises(RuntimeError, match="outside of a runnable context"):
        get_config()


def test_interrupt_outside_run_raises() -> None:
    with pytest.raises(RuntimeError):
        interrupt("q")


def test_writer_param_and_get_stream_writer_custom_mode() -> None:
    def a(state: S, writer) -> dict:  # noqa: ANN001
        writer({"progress": 1})
        get_stream_writer()("via get_stream_writer")
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_edge(START, "a")
    app = g.compile()
    assert list(app.stream({"x": 0}, stream_mode="custom")) == [
        {"progress": 1},
        "via get_stream_writer",
    ]
    # without custom mode the writer is a no-op
    assert app.invoke({"x": 0})["log"] == ["a"]


def test_store_param_and_runtime_store() -> None:
    store = InMemoryStore()
    seen = {}

    def a(state: S, store) -> dict:  # noqa: ANN001
        store.put(("ns",), "k", {"v": 1})
        return {"log": ["a"]}

    def b(state: S, runtime: Runtime) -> dict:
        seen["item"] = runtime.store.get(("ns",), "k").value
        return {"log": ["b"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.compile(store=store).invoke({"x": 0})
    assert seen["item"] == {"v": 1}
    assert store.get(("ns",), "k").value == {"v": 1}


def test_conditional_edge_gets_store_and_runtime_injected() -> None:
    store = InMemoryStore()
    store.put(("route",), "next", {"node": "b"})

    def route(state: S, *, store) -> str:  # noqa: ANN001 - keyword-only, like a node's
        return store.get(("route",), "next").value["node"]

    def route_rt(state: S, runtime: Runtime) -> str:
        return "c" if runtime.store is store else "b"

    g = StateGraph(S)
    g.add_node("a", lambda s: {"log": ["a"]})
    g.add_node("b", lambda s: {"log": ["b"]})
    g.add_node("c", lambda s: {"log": ["c"]})
    g.add_edge(START, "a")
    g.add_conditional_edges("a", route, ["b", "c"])
    g.add_conditional_edges("b", route_rt, ["b", "c"])
    app = g.compile(store=store)
    assert app.invoke({"x": 0})["log"] == ["a", "b", "c"]
    assert asyncio.run(app.ainvoke({"x": 0}))["log"] == ["a", "b", "c"]


@dataclass
class Ctx:
    user: str
    lang: str = "en"


def test_context_schema_and_runtime_context() -> None:
    seen = []

    def a(state: S, runtime: Runtime[Ctx]) -> dict:
        seen.append(runtime.context)
        return {"log": [runtime.context.user]}

    g = StateGraph(S, context_schema=Ctx)
    g.add_node("a", a)
    g.add_edge(START, "a")
    app = g.compile()
    assert app.invoke({"x": 0}, context=Ctx(user="ann"))["log"] == ["ann"]
    assert app.invoke({"x": 0}, context={"user": "bob"})["log"] == ["bob"]
    assert seen[1] == Ctx(user="bob", lang="en")


def test_runtime_stream_writer() -> None:
    def a(state: S, runtime: Runtime) -> dict:
        runtime.stream_writer("hello")
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_edge(START, "a")
    assert list(g.compile().stream({"x": 0}, stream_mode="custom")) == ["hello"]


# -- async ---------------------------------------------------------------------------


async def test_async_nodes_under_ainvoke() -> None:
    async def a(state: S) -> dict:
        await asyncio.sleep(0)
        return {"log": ["a"]}

    def b(state: S) -> dict:  # sync node in an async run
        return {"log": ["b"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    assert await g.compile().ainvoke({"x": 0}) == {"x": 0, "log": ["a", "b"]}


def test_async_node_under_sync_invoke_is_type_error() -> None:
    async def a(state: S) -> dict:
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_edge(START, "a")
    with pytest.raises(TypeError, match='No synchronous function provided to "a"'):
        g.compile().invoke({"x": 0})


def test_async_node_in_parallel_step_under_sync_invoke_is_type_error() -> None:
    async def a(state: S) -> dict:
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", logger("b"))
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    with pytest.raises(TypeError, match='No synchronous function provided to "a"'):
        g.compile().invoke({"x": 0})


async def test_async_conditional_edge() -> None:
    async def route(state: S) -> str:
        return "b"

    g = StateGraph(S)
    g.add_node("a", logger("a"))
    g.add_node("b", logger("b"))
    g.add_edge(START, "a")
    g.add_conditional_edges("a", route, ["b", END])
    assert (await g.compile().ainvoke({"x": 0}))["log"] == ["a", "b"]


# -- stream modes ----------------------------------------------------------------------


def test_stream_default_mode_is_updates() -> None:
    assert list(chain("a", "b").stream({"x": 0})) == [
        {"a": {"log": ["a"]}},
        {"b": {"log": ["b"]}},
    ]


def test_stream_values_starts_with_input_state() -> None:
    assert list(chain("a", "b").stream({"x": 0}, stream_mode="values")) == [
        {"x": 0, "log": []},
        {"x": 0, "log": ["a"]},
        {"x": 0, "log": ["a", "b"]},
    ]


def test_stream_list_of_modes_yields_tuples() -> None:
    chunks = list(chain("a").stream({"x": 0}, stream_mode=["values", "updates"]))
    assert chunks == [
        ("values", {"x": 0, "log": []}),
        ("updates", {"a": {"log": ["a"]}}),
        ("values", {"x": 0, "log": ["a"]}),
    ]


def test_stream_tasks_mode() -> None:
    chunks = list(chain("a").stream({"x": 0}, stream_mode="tasks"))
    chunks = [c for c in chunks if c["name"] != START]
    starts = [c for c in chunks if "input" in c]
    results = [c for c in chunks if "result" in c]
    assert [c["name"] for c in starts] == ["a"]
    assert [c["name"] for c in results] == ["a"]
    assert starts[0]["input"] == {"x": 0, "log": []}
    assert starts[0]["id"] == results[0]["id"]
    assert results[0]["error"] is None
    assert results[0]["interrupts"] == []
    assert set(starts[0]) == {"id", "name", "input", "triggers"}
    assert set(results[0]) >= {"id", "name", "error", "result", "interrupts"}


def test_stream_tasks_mode_hides_start_task() -> None:
    app = chain("a", checkpointer=InMemorySaver())
    names = [c["name"] for c in app.stream({"x": 0}, cfg(), stream_mode="tasks")]
    assert names == ["a", "a"]
    debug = list(app.stream({"x": 1}, cfg("t2"), stream_mode="debug"))
    assert [c["payload"]["name"] for c in debug if c["type"] != "checkpoint"] == ["a", "a"]


def test_stream_tasks_result_is_dict() -> None:
    chunks = list(chain("a").stream({"x": 0}, stream_mode="tasks"))
    results = [c for c in chunks if "result" in c and c["name"] == "a"]
    assert results[0]["result"] == {"log": ["a"]}


def test_stream_tasks_mode_reports_interrupts() -> None:
    def a(state: S) -> dict:
        interrupt("q?")
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_edge(START, "a")
    app = g.compile(checkpointer=InMemorySaver())
    chunks = list(app.stream({"x": 0}, cfg(), stream_mode="tasks"))
    result = [c for c in chunks if "result" in c and c["name"] == "a"][0]
    assert [i["value"] for i in result["interrupts"]] == ["q?"]
    assert len(result["interrupts"][0]["id"]) == 32


def test_stream_debug_mode() -> None:
    app = chain("a", checkpointer=InMemorySaver())
    chunks = list(app.stream({"x": 0}, cfg(), stream_mode="debug"))
    assert all(set(c) >= {"step", "timestamp", "type", "payload"} for c in chunks)
    types = [c["type"] for c in chunks]
    assert {"checkpoint", "task", "task_result"} <= set(types)
    task = [c for c in chunks if c["type"] == "task" and c["payload"]["name"] != START][0]
    assert task["payload"]["name"] == "a"
    assert task["step"] == 1
    cps = [c for c in chunks if c["type"] == "checkpoint"]
    assert cps[-1]["payload"]["values"] == {"x": 0, "log": ["a"]}
    assert cps[-1]["payload"]["next"] == []


def test_stream_checkpoints_mode() -> None:
    app = chain("a", "b", checkpointer=InMemorySaver())
    chunks = list(app.stream({"x": 0}, cfg(), stream_mode="checkpoints"))
    assert [c["metadata"]["step"] for c in chunks] == [-1, 0, 1, 2]
    assert [c["metadata"]["source"] for c in chunks] == ["input", "loop", "loop", "loop"]
    assert [c["next"] for c in chunks] == [["__start__"], ["a"], ["b"], []]
    assert chunks[0]["parent_config"] is None
    assert chunks[1]["parent_config"] == chunks[0]["config"]



class _Opaque:
    """A configurable value no serializer knows."""


def _paused_child_graph(saver: Any) -> Any:
    """``a``, then a subgraph ``child`` whose node ``ask`` pauses."""

    def ask(state: S) -> dict:
        return {"log": [interrupt("ok?")]}

    child = (StateGraph(S).add_node("b", lambda s: {"log": ["b"]}).add_node("ask", ask)
             .add_edge(START, "b").add_edge("b", "ask").compile())
    return (StateGraph(S).add_node("a", lambda s: {"log": ["a"]}).add_node("child", child)
            .add_edge(START, "a").add_edge("a", "child").compile(checkpointer=saver))


def _checkpoint_events(chunks: list[Any], mode: str) -> list[tuple[tuple[str, ...], Any]]:
    if mode == "checkpoints":
        return list(chunks)
    return [(ns, c["payload"]) for ns, c in chunks if c["type"] == "checkpoint"]


def _expected_conf(run_conf: dict[str, Any], conf: dict[str, Any]) -> dict[str, Any]:
    """A streamed checkpoint's configurable as LangGraph's: the run's own keys (not its
    private ``__pregel_*`` ones), then the checkpoint's."""
    keys = ("thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint_map")
    return {**{k: v for k, v in run_conf.items() if not k.startswith("__pregel_")},
            **{k: conf[k] for k in keys if k in conf}}


def _assert_streamed_configs(app: Any, chunks: list[Any], mode: str,
                             run_conf: dict[str, Any]) -> None:
    by_ns: dict[tuple[str, ...], list[Any]] = {}
    for ns, event in _checkpoint_events(chunks, mode):
        by_ns.setdefault(ns, []).append(event)
    root = by_ns.pop(())
    (sub_ns,), sub = by_ns.popitem()
    assert not by_ns and len(root) == 3 and len(sub) == 3
    for event in root + sub:
        conf = event["config"]["configurable"]
        assert set(event["config"]) == {"configurable"}
        assert conf == _expected_conf(run_conf, conf)
        assert conf["foo"] == 1 and isinstance(conf["opaque"], _Opaque)
        assert conf["__mine"] == 2 and "__pregel_mine" not in conf
    for events in (root, sub):
        assert events[0]["parent_config"] is None
        for before, event in zip(events, events[1:], strict=False):
            assert event["parent_config"] == before["config"]
    assert all("checkpoint_map" not in e["config"]["configurable"] for e in root)
    # a subgraph's: the checkpoint it runs under, then its own
    root_id = root[-1]["config"]["configurable"]["checkpoint_id"]
    assert root_id == app.get_state(cfg()).config["configurable"]["checkpoint_id"]
    for event in sub:
        conf = event["config"]["configurable"]
        assert conf["checkpoint_ns"] == sub_ns
        assert conf["checkpoint_map"] == {"": root_id, sub_ns: conf["checkpoint_id"]}


@pytest.mark.parametrize("mode", ["debug", "checkpoints"])
async def test_streamed_checkpoint_configs_carry_the_runs_configurable(
    graph_api: GraphApi, mode: str
) -> None:
    """As LangGraph streams them (``debug`` and ``checkpoints`` modes, root and subgraph):
    each checkpoint's config and its parent's hold the run's own configurable keys -
    any value, private-looking names too, but not LangGraph's ``__pregel_*`` - beside the
    checkpoint's thread, namespace, id (and a subgraph's checkpoint map)."""
    app = _paused_child_graph(InMemorySaver())
    run_conf = {"thread_id": "t", "foo": 1, "opaque": _Opaque(), "__mine": 2,
                "__pregel_mine": 3}
    chunks = await graph_api.stream(app, {"x": 0, "log": []}, {"configurable": run_conf},
                                    stream_mode=mode, subgraphs=True)
    _assert_streamed_configs(app, chunks, mode, run_conf)


@pytest.mark.parametrize("saver_kind", ["memory", "sqlite"])
def test_a_resumed_runs_streamed_checkpoints_carry_its_configurable(
    saver_kind: str, tmp_path: Any
) -> None:
    """The checkpoint a resumed run streams first (the one it resumes) carries the
    resuming run's configurable; its parent is as the saver keeps it (LangGraph's too);
    the checkpoints the run then saves chain to it with the run's keys."""
    with ExitStack() as stack:
        saver = (InMemorySaver() if saver_kind == "memory" else
                 stack.enter_context(SqliteSaver.from_conn_string(str(tmp_path / "c.db"))))
        app = _paused_child_graph(saver)
        app.invoke({"x": 0, "log": []}, {"configurable": {"thread_id": "t", "foo": 1}})
        head = app.get_state(cfg()).config["configurable"]
        events = _checkpoint_events(list(app.stream(
            Command(resume="yes"), {"configurable": {"thread_id": "t", "bar": 3}},
            stream_mode="debug", subgraphs=True)), "debug")
    (_, resumed), (sub_ns, sub_resumed) = events[0], events[1]
    assert resumed["config"] == {"configurable": {
        "thread_id": "t", "checkpoint_ns": "", "checkpoint_id": head["checkpoint_id"],
        "bar": 3}}
    parent = resumed["parent_config"]["configurable"]
    assert set(parent) == {"thread_id", "checkpoint_ns", "checkpoint_id"}
    sub_conf = sub_resumed["config"]["configurable"]
    assert sub_conf["bar"] == 3 and "foo" not in sub_conf
    assert sub_conf["checkpoint_map"] == {"": head["checkpoint_id"],
                                          sub_ns[0]: sub_conf["checkpoint_id"]}
    assert "bar" not in sub_resumed["parent_config"]["configurable"]
    assert "checkpoint_map" in sub_resumed["parent_config"]["configurable"]
    # then those the run saves: parents are the run's previous checkpoints, with its keys
    (_, sub_next), (_, last) = events[2], events[3]
    assert sub_next["parent_config"] == sub_resumed["config"]
    assert len(events) == 4 and last["config"]["configurable"]["bar"] == 3
    assert last["parent_config"] == resumed["config"]


def test_a_replay_streams_its_fork_not_the_checkpoint_it_forked() -> None:
    """As LangGraph streams a run from a past checkpoint: the fork it saves (its parent
    the past checkpoint, with the run's keys), then the steps it runs; not the past
    checkpoint itself under the fork's id."""
    app = chain("a", "b", checkpointer=InMemorySaver())
    app.invoke({"x": 0}, cfg())
    past = next(s for s in app.get_state_history(cfg()) if s.next == ("a",))
    run_config = {"configurable": {**past.config["configurable"], "baz": 4}}
    chunks = list(app.stream(None, run_config, stream_mode="checkpoints"))
    assert [c["metadata"]["source"] for c in chunks] == ["fork", "loop", "loop"]
    assert [c["next"] for c in chunks] == [["a"], ["b"], []]
    assert chunks[0]["parent_config"] == run_config
    for before, chunk in zip(chunks, chunks[1:], strict=False):
        assert chunk["parent_config"] == before["config"]
    assert all(c["config"]["configurable"]["baz"] == 4 for c in chunks)
    assert chunks[-1]["config"] == {
        "configurable": {**app.get_state(cfg()).config["configurable"], "baz": 4}}


@pytest.mark.parametrize("use_async", [False, True])
def test_recursion_limit_still_streams_the_last_checkpoint_saved(use_async: bool) -> None:
    g = StateGraph(S)
    g.add_node("loop", lambda s: {"x": s["x"] + 1})
    g.add_edge(START, "loop")
    g.add_edge("loop", "loop")
    app = g.compile(checkpointer=InMemorySaver())
    config = {**cfg(), "recursion_limit": 3}
    chunks: list[Any] = []

    async def astream() -> None:
        async for c in app.astream({"x": 0}, config, stream_mode="checkpoints"):
            chunks.append(c)

    with pytest.raises(GraphRecursionError):
        if use_async:
            asyncio.run(astream())
        else:
            chunks.extend(app.stream({"x": 0}, config, stream_mode="checkpoints"))
    assert chunks[-1]["config"] == app.get_state(config).config
    assert chunks[-1]["values"]["x"] == 3


def _fan_out_counting(delay_async: bool) -> tuple[Any, dict[str, int]]:
    """Ten Send tasks that record how many of them run at the same moment."""
    seen = {"now": 0, "most": 0}
    lock = threading.Lock()

    def enter() -> None:
        with lock:
            seen["now"] += 1
            seen["most"] = max(seen["most"], seen["now"])

    def leave() -> None:
        with lock:
            seen["now"] -= 1

    def work_sync(_: Any) -> list:
        enter()
        threading.Event().wait(0.02)
        leave()
        return ["w"]

    async def work_async(_: Any) -> list:
        enter()
        await asyncio.sleep(0.02)
        leave()
        return ["w"]

    g = StateGraph(Annotated[list, operator.add])
    g.add_node("fan", lambda s: ["f"])
    g.add_node("work", work_async if delay_async else work_sync)
    g.add_edge(START, "fan")
    g.add_conditional_edges("fan", lambda s: [Send("work", i) for i in range(10)])
    return g.compile(), seen


@pytest.mark.parametrize("use_async", [False, True])
def test_max_concurrency_bounds_the_tasks_of_a_step_running_at_once(use_async: bool) -> None:
    app, seen = _fan_out_counting(use_async)
    config = {"max_concurrency": 3}
    result = asyncio.run(app.ainvoke(["0"], config)) if use_async else app.invoke(["0"], config)
    assert result == ["0", "f", *["w"] * 10]
    assert 1 <= seen["most"] <= 3 and seen["now"] == 0


def test_max_concurrency_must_be_a_positive_integer() -> None:
    app, _ = _fan_out_counting(False)
    with pytest.raises(ValueError, match="max_concurrency must be a positive integer"):
        app.invoke(["0"], {"max_concurrency": 0})


def test_stream_custom_mode_with_updates() -> None:
    def a(state: S, writer) -> dict:  # noqa: ANN001
        writer("chunk")
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_edge(START, "a")
    chunks = list(g.compile().stream({"x": 0}, stream_mode=["custom", "updates"]))
    assert chunks == [("custom", "chunk"), ("updates", {"a": {"log": ["a"]}})]


def test_updates_stream_includes_interrupt() -> None:
    def b(state: S) -> dict:
        return {"log": [interrupt("need input")]}

    g = StateGraph(S)
    g.add_node("a", logger("a"))
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    app = g.compile(checkpointer=InMemorySaver())
    chunks = list(app.stream({"x": 0}, cfg(), stream_mode="updates"))
    assert chunks[0] == {"a": {"log": ["a"]}}
    assert list(chunks[1]) == ["__interrupt__"]
    (intr,) = chunks[1]["__interrupt__"]
    assert isinstance(intr, Interrupt)
    assert intr.value == "need input"
    assert len(chunks) == 2


def test_updates_stream_static_breakpoint_emits_empty_interrupt() -> None:
    app = chain("a", "b", checkpointer=InMemorySaver(), interrupt_before=["b"])
    chunks = list(app.stream({"x": 0}, cfg(), stream_mode="updates"))
    assert chunks == [{"a": {"log": ["a"]}}, {"__interrupt__": ()}]


def test_values_stream_final_event_has_interrupt_tuple() -> None:
    def a(state: S) -> dict:
        interrupt("q")
        return {}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_edge(START, "a")
    app = g.compile(checkpointer=InMemorySaver())
    chunks = list(app.stream({"x": 0}, cfg(), stream_mode="values"))
    assert chunks[0] == {"x": 0, "log": []}
    last = chunks[-1]
    assert isinstance(last["__interrupt__"], tuple)
    assert last["__interrupt__"][0].value == "q"


def test_invoke_with_stream_mode_updates_returns_list() -> None:
    out = chain("a", "b").invoke({"x": 0}, stream_mode="updates")
    assert out == [{"a": {"log": ["a"]}}, {"b": {"log": ["b"]}}]


def test_invoke_version_v2_returns_graph_output() -> None:
    out = chain("a").invoke({"x": 0}, version="v2")
    assert out.value == {"x": 0, "log": ["a"]}
    assert out.interrupts == ()


def test_invoke_output_keys() -> None:
    assert chain("a").invoke({"x": 1}, output_keys=["x"]) == {"x": 1}


def test_unknown_stream_mode_raises() -> None:
    with pytest.raises(ValueError):
        list(chain("a").stream({"x": 0}, stream_mode="bogus"))


# -- durability ----------------------------------------------------------------------


@pytest.mark.parametrize(("durability", "count"), [("exit", 1), ("sync", 5), ("async", 5)])
def test_durability_checkpoint_counts(durability: str, count: int) -> None:
    saver = InMemorySaver()
    app = chain("a", "b", "c", checkpointer=saver)
    out = app.invoke({"x": 0}, cfg(), durability=durability)
    assert out["log"] == ["a", "b", "c"]
    history = list(app.get_state_history(cfg()))
    assert len(history) == count
    head = app.get_state(cfg())
    assert head.values == {"x": 0, "log": ["a", "b", "c"]}
    assert head.next == ()


def test_durability_exit_saves_interrupt_state() -> None:
    app = chain("a", "b", checkpointer=InMemorySaver(), interrupt_before=["b"])
    app.invoke({"x": 0}, cfg(), durability="exit")
    snap = app.get_state(cfg())
    assert snap.next == ("b",)
    assert app.invoke(None, cfg(), durability="exit")["log"] == ["a", "b"]


# -- Runnable integration -----------------------------------------------------------------


def test_batch() -> None:
    app = chain("a")
    assert app.batch([{"x": 1}, {"x": 2}]) == [
        {"x": 1, "log": ["a"]},
        {"x": 2, "log": ["a"]},
    ]


async def test_abatch() -> None:
    app = chain("a")
    assert await app.abatch([{"x": 1}, {"x": 2}]) == [
        {"x": 1, "log": ["a"]},
        {"x": 2, "log": ["a"]},
    ]


def test_with_config_thread_and_recursion_limit() -> None:
    app = chain("a", "b", "c", checkpointer=InMemorySaver())
    bound = app.with_config({"configurable": {"thread_id": "wc"}})
    assert bound.invoke({"x": 0})["log"] == ["a", "b", "c"]
    assert app.get_state(cfg("wc")).values["log"] == ["a", "b", "c"]
    limited = app.with_config(recursion_limit=3)
    with pytest.raises(GraphRecursionError):
        limited.invoke({"x": 0}, cfg("wc2"))


def test_with_config_returns_a_named_compiled_graph_copy() -> None:
    app = chain("a", "b", checkpointer=InMemorySaver())
    app.name = "agent"
    bound = app.with_config({"configurable": {"thread_id": "wcopy"}}, tags=["x"])
    assert type(bound) is type(app) and bound is not app
    assert bound.name == "agent" and app.config is None
    assert bound.config["configurable"] == {"thread_id": "wcopy"}
    assert bound.config["tags"] == ["x"]
    again = bound.with_config(recursion_limit=50)
    assert again.config["configurable"] == {"thread_id": "wcopy"}
    assert again.config["recursion_limit"] == 50
    assert bound.invoke({"x": 0})["log"] == ["a", "b"]
    # the default config serves the state methods too; the caller's config wins
    assert bound.get_state({}).values["log"] == ["a", "b"]
    assert bound.invoke({"x": 0}, cfg("other"))["log"] == ["a", "b"]
    assert app.get_state(cfg("other")).values["log"] == ["a", "b"]


async def test_with_config_copy_async_stream() -> None:
    bound = chain("a", "b", checkpointer=InMemorySaver()).with_config(
        configurable={"thread_id": "wca"}
    )
    chunks = [c async for c in bound.astream({"x": 0}, stream_mode="values")]
    assert chunks[-1]["log"] == ["a", "b"]
    assert (await bound.aget_state({})).values["log"] == ["a", "b"]


def test_a_bound_config_wins_over_the_enclosing_task_config() -> None:
    """A graph bound with ``with_config`` and run from inside another graph's node keeps
    its own metadata (LangChain's ``create_agent(name=...)`` binds ``lc_agent_name`` so):
    the enclosing task's config is inherited, under the bound one."""

    def report(state: S, config) -> dict:
        meta = config["metadata"]
        return {"log": [f"{meta['lc_agent_name']}/{meta['team']}"]}

    inner = (
        StateGraph(S).add_node("report", report).add_edge(START, "report").compile()
        .with_config({"metadata": {"lc_agent_name": "inner"}})
    )

    def call_inner(state: S) -> dict:
        return {"log": inner.invoke({"x": 0})["log"]}  # no config: inherits the task's

    outer = (
        StateGraph(S).add_node("call", call_inner).add_edge(START, "call").compile()
        .with_config({"metadata": {"lc_agent_name": "outer", "team": "ops"}})
    )
    assert outer.invoke({"x": 0})["log"] == ["inner/ops"]


def test_composition_with_runnable_lambda() -> None:
    pipeline = chain("a", "b") | RunnableLambda(lambda s: "+".join(s["log"]))
    assert pipeline.invoke({"x": 0}) == "a+b"


def test_runnable_node() -> None:
    g = StateGraph(S)
    g.add_node("r", RunnableLambda(lambda s: {"log": [f"r{s['x']}"]}))
    g.add_edge(START, "r")
    assert g.compile().invoke({"x": 4})["log"] == ["r4"]


async def test_astream_events_yields_chain_start() -> None:
    app = chain("a", "b")
    events = [e async for e in app.astream_events({"x": 0}, version="v2")]
    kinds = [e["event"] for e in events]
    assert "on_chain_start" in kinds
    assert kinds[0] == "on_chain_start"
    assert events[0]["name"] == "LangGraph"
    assert "on_chain_end" in kinds
    end = [e for e in events if e["event"] == "on_chain_end" and e["name"] == "LangGraph"]
    assert end and end[-1]["data"]["output"] == {"x": 0, "log": ["a", "b"]}


def test_invoke_callbacks_see_graph_run() -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    starts = []

    class H(BaseCallbackHandler):
        def on_chain_start(self, serialized, inputs, **kw):  # noqa: ANN001, ANN003, ANN201
            starts.append(kw.get("name"))

    chain("a").invoke({"x": 0}, {"callbacks": [H()]})
    assert "LangGraph" in starts


# -- more node/branch semantics ------------------------------------------------------


class QIn(TypedDict):
    question: str


class QOverall(TypedDict):
    question: str
    answer: str


def _answer(state: QIn) -> dict:
    return {"answer": state["question"] + "!"}


def test_conditional_edge_state_coerced_to_source_input_schema() -> None:
    seen = []

    def route(state: dict) -> str:
        seen.append(dict(state))
        return END

    g = StateGraph(QOverall)
    g.add_node("a", _answer)
    g.add_edge(START, "a")
    g.add_conditional_edges("a", route)
    assert g.compile().invoke({"question": "q"}) == {"question": "q", "answer": "q!"}
    assert seen == [{"question": "q"}]


@dataclass
class DefaultsState:
    x: int = 0
    y: str = "d"


def test_invoke_v2_coerces_dataclass_state() -> None:
    g = StateGraph(DefaultsState)
    g.add_node("a", lambda s: {"x": 2})
    g.add_edge(START, "a")
    out = g.compile().invoke({}, version="v2")
    assert out.value == DefaultsState(x=2, y="d")


def test_node_returning_runnable_is_invoked() -> None:
    g = StateGraph(S)
    g.add_node("a", lambda s: RunnableLambda(lambda st: {"log": [f"inner{st['x']}"]}))
    g.add_edge(START, "a")
    assert g.compile().invoke({"x": 3})["log"] == ["inner3"]


def test_node_interrupt_deprecated_exception() -> None:
    from threadloom.errors import NodeInterrupt

    def a(state: S) -> dict:
        raise NodeInterrupt("stop here")

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_edge(START, "a")
    app = g.compile(checkpointer=InMemorySaver())
    out = app.invoke({"x": 0}, cfg())
    assert [i.value for i in out["__interrupt__"]] == ["stop here"]
    assert app.get_state(cfg()).next == ("a",)


def test_recursion_budget_restarts_from_saved_step_on_resume() -> None:
    runs = []

    def loop(state: S) -> dict:
        runs.append(1)
        return {"log": ["l"]}

    g = StateGraph(S)
    g.add_node("loop", loop)
    g.add_edge(START, "loop")
    g.add_edge("loop", "loop")
    app = g.compile(checkpointer=InMemorySaver())
    config = {**cfg(), "recursion_limit": 3}
    with pytest.raises(GraphRecursionError):
        app.invoke({"x": 0}, config)
    assert len(runs) == 3
    with pytest.raises(GraphRecursionError):
        app.invoke(None, config)
    assert len(runs) == 8  # §2.16: L=3 allowed 5 more runs


def test_values_stream_on_resume_starts_with_current_state() -> None:
    app = chain("a", "b", "c", checkpointer=InMemorySaver(), interrupt_before=["b"])
    app.invoke({"x": 0}, cfg())
    assert list(app.stream(None, cfg(), stream_mode="values")) == [
        {"x": 0, "log": ["a"]},
        {"x": 0, "log": ["a", "b"]},
        {"x": 0, "log": ["a", "b", "c"]},
    ]


def test_messages_stream_mode_yields_tokens_with_metadata() -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk

    from threadloom.graph import MessagesState

    model = GenericFakeChatModel(messages=iter([AIMessage(content="hello there")]))

    def call(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}  # invoke, not stream

    g = StateGraph(MessagesState)
    g.add_node("call", call)
    g.add_edge(START, "call")
    chunks = list(g.compile().stream({"messages": [("user", "hi")]}, stream_mode="messages"))
    assert chunks
    assert all(isinstance(m, AIMessageChunk) for m, _ in chunks)
    assert "".join(m.content for m, _ in chunks) == "hello there"
    meta = chunks[0][1]
    assert meta["langgraph_node"] == "call"
    assert meta["langgraph_step"] == 1
    assert meta["langgraph_path"] == ("__pregel_pull", "call")
    assert meta["langgraph_checkpoint_ns"].startswith("call:")
    # the package versions the chat model records for tracing travel with its messages
    assert meta["lc_versions"] == model.metadata["lc_versions"]
    assert "langchain-core" in meta["lc_versions"]


def test_messages_stream_metadata_keeps_the_callers_own_keys() -> None:
    """An agent's name bound with ``with_config`` (as LangChain's ``create_agent(name=)``
    does) and the caller's own metadata reach every streamed message, in both the v1
    ``messages`` mode and the v3 event stream."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from threadloom.graph import MessagesState

    def call(state: MessagesState) -> dict:
        model = GenericFakeChatModel(messages=iter([AIMessage(content="hi")]))
        return {"messages": [model.invoke(state["messages"])]}

    g = StateGraph(MessagesState)
    g.add_node("call", call)
    g.add_edge(START, "call")
    agent = g.compile().with_config({"metadata": {"lc_agent_name": "helper"}})
    chunks = list(agent.stream({"messages": [("user", "hi")]}, {"metadata": {"team": "ops"}},
                               stream_mode="messages"))
    assert chunks
    for _message, meta in chunks:
        assert meta["lc_agent_name"] == "helper"
        assert meta["team"] == "ops"
        assert meta["ls_provider"] == "genericfakechatmodel"  # the model's own keys too

    run = agent.stream_events({"messages": [("user", "hi")]}, version="v3")
    events = [e for e in run if e["method"] == "messages"]
    assert events
    assert all(e["params"]["data"][1]["lc_agent_name"] == "helper" for e in events)


def test_a_run_leaves_no_reference_cycles() -> None:
    """Everything a run allocates is freed by reference counting as soon as it ends: no
    garbage waits for the cycle collector (whose full passes would walk every stored
    checkpoint of a long-lived process)."""

    def review(state: dict[str, Any]) -> dict[str, Any]:
        return {"log": [interrupt("ok?")]}

    builder = StateGraph(S)
    builder.add_node("a", logger("a"))
    builder.add_node("review", review)
    builder.add_edge(START, "a")
    builder.add_edge("a", "review")
    builder.add_edge("review", END)
    graph = builder.compile(checkpointer=InMemorySaver())

    def cycle(thread_id: str) -> None:
        config = cfg(thread_id)
        graph.invoke({"x": 0, "log": []}, config)
        graph.get_state(config)
        graph.invoke(Command(resume="yes"), config)

    cycle("warm-up")
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what a collection finds, to look at it
    try:
        cycle("t")
        gc.collect()
        # other threads of the test process may leave garbage of their own: look only
        # for the engine's objects
        ours = [o for o in gc.garbage if type(o).__module__.startswith("threadloom")]
        assert ours == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_a_dict_of_runnables_is_a_node_that_runs_them_all() -> None:
    from langchain_core.runnables import RunnableLambda

    class S2(TypedDict):
        a: int
        b: int

    g = StateGraph(S2)
    g.add_node("both", {"a": RunnableLambda(lambda s: s["a"] + 1),
                        "b": RunnableLambda(lambda s: s["a"] * 10)})
    g.add_edge(START, "both")
    assert g.compile().invoke({"a": 1, "b": 0}) == {"a": 2, "b": 10}


def test_messages_metadata_keeps_the_callers_tags_not_sequence_step_tags() -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.runnables import RunnableLambda

    from threadloom.graph import MessagesState

    tagged = GenericFakeChatModel(messages=iter([AIMessage(content="hi")]), tags=["mine"])
    untagged = GenericFakeChatModel(messages=iter([AIMessage(content="yo")]))

    def call(state: MessagesState) -> dict:
        first = (RunnableLambda(lambda m: m) | tagged).invoke(state["messages"])
        second = (RunnableLambda(lambda m: m) | untagged).invoke(state["messages"])
        return {"messages": [first, second]}

    g = StateGraph(MessagesState)
    g.add_node("call", call)
    g.add_edge(START, "call")
    chunks = list(g.compile().stream({"messages": [("user", "x")]}, stream_mode="messages"))
    tags = {m.content: meta.get("tags") for m, meta in chunks}
    assert tags == {"hi": ["mine"], "yo": None}
