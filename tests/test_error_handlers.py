"""Error handlers: a node's final failure becomes a step of the graph."""

from __future__ import annotations

from typing import Any

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
