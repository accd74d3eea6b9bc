"""State reads and edits addressed to a subgraph through a task's config."""

from __future__ import annotations

import operator
from typing import Annotated

import pytest
from typing_extensions import TypedDict

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.constants import CONFIG_KEY_CHECKPOINTER
from threadloom.graph import END, START, StateGraph


class _S(TypedDict, total=False):
    log: Annotated[list, operator.add]


def _child():
    builder = StateGraph(_S)
    builder.add_node("a", lambda state: {"log": ["a"]})
    builder.add_node("b", lambda state: {"log": ["b"]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder


@pytest.mark.parametrize("own", [None, True])
def test_update_state_with_a_task_config_edits_the_subgraph(own: bool | None) -> None:
    parent = StateGraph(_S)
    parent.add_node("child", _child().compile(checkpointer=own, interrupt_before=["b"]))
    parent.add_edge(START, "child")
    app = parent.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "1"}}
    app.invoke({}, config)
    (task,) = app.get_state(config).tasks

    app.update_state(task.state, {"log": ["edit"]}, as_node="a")

    (task,) = app.get_state(config, subgraphs=True).tasks
    assert task.state.values == {"log": ["a", "edit"]}
    assert [s.values for s in app.get_state_history(task.state.config)][0] == {
        "log": ["a", "edit"]
    }


def test_a_checkpointer_true_subgraph_called_twice_keeps_two_histories() -> None:
    saver = InMemorySaver()
    child = _child().compile(checkpointer=True)

    def node(state: dict) -> dict:
        child.invoke({"log": ["first"]})
        child.invoke({"log": ["second"]})
        return {}

    parent = StateGraph(_S)
    parent.add_node("node", node)
    parent.add_edge(START, "node")
    parent.compile(checkpointer=saver).invoke({}, {"configurable": {"thread_id": "1"}})

    def read(ns: str) -> dict:
        return child.get_state({"configurable": {
            "thread_id": "1", "checkpoint_ns": ns, CONFIG_KEY_CHECKPOINTER: saver,
        }}).values

    assert read("node") == {"log": ["first", "a", "b"]}
    assert read("node|1") == {"log": ["second", "a", "b"]}


def test_a_root_graph_with_checkpointer_true_refuses_state_reads() -> None:
    app = _child().compile(checkpointer=True)
    with pytest.raises(RuntimeError, match="checkpointer=True cannot be used"):
        app.get_state({"configurable": {"thread_id": "1"}})
