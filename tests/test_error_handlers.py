"""Error handlers: a node's final failure becomes a step of the graph."""

from __future__ import annotations

import asyncio
import operator
import threading
from typing import Annotated, Any

import pytest
from typing_extensions import TypedDict

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.errors import NodeError
from threadloom.graph import END, START, StateGraph
from threadloom.types import Command, RetryPolicy


class State(TypedDict):
    foo: str


class CustomError(Exception):
    pass


def test_handler_runs_after_retries_and_routes_with_command():
    attempts = []
    seen: dict[str, Any] = {}

    def failing(state: State) -> State:
        attempts.append(1)
        raise ValueError("boom")

    def handler(state: State, error: NodeError) -> Command:
        seen["node"], seen["error"] = error.node, error.error
        return Command(update={"foo": "handled"}, goto="after")

    graph = (
        StateGraph(State)
        .add_node("failing", failing, error_handler=handler,
                  retry_policy=RetryPolicy(max_attempts=2, initial_interval=0, jitter=False,
                                           retry_on=ValueError))
        .add_node("after", lambda s: {"foo": s["foo"] + "_after"})
        .add_edge(START, "failing")
        .compile()
    )
    assert graph.invoke({"foo": ""}) == {"foo": "handled_after"}
    assert len(attempts) == 2
    assert seen["node"] == "failing" and isinstance(seen["error"], ValueError)


def test_default_handler_and_per_node_override():
    calls = []

    def fail(state: State) -> State:
        raise CustomError("nope")

    def default(state: State, error: NodeError) -> State:
        calls.append(("default", error.node, str(error.error)))
        return {"foo": "default"}

    builder = (
        StateGraph(State)
        .set_node_defaults(error_handler=default)
        .add_node("a", fail)
        .add_node("b", fail, error_handler=lambda s: {"foo": "own"})
    )
    assert builder.add_edge(START, "a").compile().invoke({"foo": ""}) == {"foo": "default"}
    # a non-builtin exception reaches the handler as a RuntimeError naming it
    assert calls == [("default", "a", "CustomError: nope")]

    only_b = (
        StateGraph(State).set_node_defaults(error_handler=default)
        .add_node("b", fail, error_handler=lambda s: {"foo": "own"})
        .add_edge(START, "b").compile()
    )
    assert only_b.invoke({"foo": ""}) == {"foo": "own"}


def test_failing_handler_fails_the_run_and_reruns_alone_on_resume():
    calls = {"node": 0, "handler": 0}
    crash = [True]

    def node(state: State) -> State:
        calls["node"] += 1
        raise RuntimeError("boom")

    def handler(state: State, error: NodeError) -> State:
        calls["handler"] += 1
        if crash[0]:
            raise RuntimeError("handler crash")
        return {"foo": "recovered"}

    graph = (
        StateGraph(State).add_node("n", node, error_handler=handler)
        .add_edge(START, "n").add_edge("n", END)
        .compile(checkpointer=InMemorySaver())
    )
    config = {"configurable": {"thread_id": "t"}}
    with pytest.raises(RuntimeError, match="handler crash"):
        graph.invoke({"foo": ""}, config)
    crash[0] = False
    assert graph.invoke(None, config) == {"foo": "recovered"}
    assert calls == {"node": 1, "handler": 2}


def test_handler_node_name_is_reserved():
    builder = (
        StateGraph(State)
        .set_node_defaults(error_handler=lambda s: s)
        .add_node("__default_error_handler__", lambda s: s)
        .add_edge(START, "__default_error_handler__")
    )
    with pytest.raises(ValueError, match="__default_error_handler__"):
        builder.compile()


class Log(TypedDict):
    log: Annotated[list[str], operator.add]


def _concurrent_graph(saver: InMemorySaver, calls: dict[str, int], handled: Any,
                      handler_fails: list[bool]) -> Any:
    def failing(state: Log) -> Log:
        calls["failing"] += 1
        raise RuntimeError("failing broke")

    def handler(state: Log, error: NodeError) -> Log:
        calls["handler"] += 1
        handled.set()
        if handler_fails[0]:
            raise RuntimeError("handler broke")
        return {"log": [f"handled {error.node}"]}

    def sibling(state: Log) -> Log:
        calls["sibling"] += 1
        # returns only once the handler has started: it runs beside this node
        return {"log": ["sibling" if handled.wait(5) else "handler not started"]}

    return (
        StateGraph(Log)
        .add_node("failing", failing, error_handler=handler)
        .add_node("sibling", sibling)
        .add_edge(START, "failing")
        .add_edge(START, "sibling")
        .compile(checkpointer=saver)
    )


def test_handler_starts_at_once_beside_the_tasks_still_running():
    calls = {"failing": 0, "handler": 0, "sibling": 0}
    graph = _concurrent_graph(InMemorySaver(), calls, threading.Event(), [False])
    out = graph.invoke({"log": []}, {"configurable": {"thread_id": "t"}})
    assert sorted(out["log"]) == ["handled failing", "sibling"]
    assert calls == {"failing": 1, "handler": 1, "sibling": 1}


async def test_async_handler_starts_at_once_beside_the_tasks_still_running():
    calls = {"failing": 0, "handler": 0}
    started = asyncio.Event()

    async def failing(state: Log) -> Log:
        calls["failing"] += 1
        raise RuntimeError("failing broke")

    async def handler(state: Log, error: NodeError) -> Log:
        calls["handler"] += 1
        started.set()
        return {"log": ["handled"]}

    async def sibling(state: Log) -> Log:
        await asyncio.wait_for(started.wait(), 5)
        return {"log": ["sibling"]}

    graph = (
        StateGraph(Log)
        .add_node("failing", failing, error_handler=handler)
        .add_node("sibling", sibling)
        .add_edge(START, "failing")
        .add_edge(START, "sibling")
        .compile(checkpointer=InMemorySaver())
    )
    out = await graph.ainvoke({"log": []}, {"configurable": {"thread_id": "t"}})
    assert out["log"] == ["sibling", "handled"]  # task order: the handler after its node
    assert calls == {"failing": 1, "handler": 1}


def test_a_handler_that_crashed_runs_again_on_resume_not_its_node():
    calls = {"failing": 0, "handler": 0, "sibling": 0}
    handler_fails = [True]
    graph = _concurrent_graph(InMemorySaver(), calls, threading.Event(), handler_fails)
    config = {"configurable": {"thread_id": "t"}}
    with pytest.raises(RuntimeError, match="handler broke"):
        graph.invoke({"log": []}, config)

    handler_fails[0] = False
    out = graph.invoke(None, config)
    assert sorted(out["log"]) == ["handled failing", "sibling"]
    assert calls == {"failing": 1, "handler": 2, "sibling": 1}


def test_a_finished_handler_counts_once_when_a_sibling_failure_is_resumed():
    saver = InMemorySaver()
    handled = threading.Event()
    attempts = {"flaky": 0, "handler": 0}

    def failing(state: Log) -> Log:
        raise RuntimeError("always")

    def handler(state: Log, error: NodeError) -> Log:
        attempts["handler"] += 1
        handled.set()
        return {"log": ["h"]}

    def flaky(state: Log) -> Log:
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            handled.wait(5)
            raise ValueError("flaky once")
        return {"log": ["c"]}

    graph = (
        StateGraph(Log)
        .add_node("f", failing, error_handler=handler)
        .add_node("c", flaky)
        .add_edge(START, "f")
        .add_edge(START, "c")
        .compile(checkpointer=saver)
    )
    config = {"configurable": {"thread_id": "t"}}
    with pytest.raises(ValueError):
        graph.invoke({"log": ["in"]}, config)
    out = graph.invoke(None, config)
    assert out["log"] == ["in", "c", "h"]
    assert graph.get_state(config).values["log"] == out["log"]
    assert attempts == {"flaky": 2, "handler": 1}


def test_a_breakpoint_before_the_handler_still_defers_it_to_the_next_step():
    def failing(state: State) -> State:
        raise RuntimeError("boom")

    graph = (
        StateGraph(State)
        .add_node("failing", failing, error_handler=lambda s, error: {"foo": "handled"})
        .add_edge(START, "failing")
        .compile(checkpointer=InMemorySaver(),
                 interrupt_before=["__error_handler__failing"])
    )
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"foo": ""}, config)
    assert graph.get_state(config).next == ("__error_handler__failing",)
    assert graph.invoke(None, config) == {"foo": "handled"}
