"""What checkpoints record: updated_channels, the input's versions_seen entry, and the
writes a resumed step saves on the checkpoint it stood on."""

from __future__ import annotations

import operator
from typing import Annotated

import pytest
from typing_extensions import TypedDict

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import START, StateGraph
from threadloom.types import RetryPolicy


class State(TypedDict):
    value: Annotated[int, operator.add]


class _Node:
    def __init__(self, result):
        self.result = result
        self.calls = 0

    def __call__(self, state: State):
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def _fan_out(saver):
    one, two = _Node({"value": 2}), _Node(ConnectionError("down"))
    graph = (
        StateGraph(State).add_node("one", one)
        .add_node("two", two, retry_policy=RetryPolicy(max_attempts=1))
        .add_edge(START, "one").add_edge(START, "two").compile(checkpointer=saver)
    )
    return graph, one, two


def test_updated_channels_lists_only_channels_left_with_a_value() -> None:
    saver = InMemorySaver()
    graph, _, two = _fan_out(saver)
    config = {"configurable": {"thread_id": "1"}}
    two.result = {"value": 3}
    assert graph.invoke({"value": 1}, config) == {"value": 6}
    records = [c.checkpoint["updated_channels"] for c in saver.list(config)]
    # newest first: the step of one/two, the step of __start__, the input
    assert records == [["value"], ["branch:to:one", "branch:to:two", "value"], ["__start__"]]


def test_every_checkpoint_records_the_input_as_seen() -> None:
    saver = InMemorySaver()
    graph, _, two = _fan_out(saver)
    config = {"configurable": {"thread_id": "1"}}
    two.result = {"value": 3}
    graph.invoke({"value": 1}, config)
    assert all(c.checkpoint["versions_seen"].get("__input__") == {} for c in saver.list(config))


@pytest.mark.parametrize("durability", ["sync", "exit"])
def test_a_resumed_step_saves_the_writes_of_the_task_that_ran_alone(durability) -> None:
    saver = InMemorySaver()
    graph, one, two = _fan_out(saver)
    config = {"configurable": {"thread_id": "1"}}
    with pytest.raises(ConnectionError):
        graph.invoke({"value": 1}, config, durability=durability)
    two.result = {"value": 3}
    assert graph.invoke(None, config, durability=durability) == {"value": 6}
    assert one.calls == 1
    stood_on = list(saver.list(config))[1]
    channels = sorted(c for _, c, _ in stood_on.pending_writes)
    if durability == "exit":  # only the run's last checkpoint is saved: no write on it
        assert channels == ["__error__", "value"]
    else:  # the error, one's earlier write, and two's write from the resumed run
        assert channels == ["__error__", "value", "value"]


def _nested():
    def node(name):
        return lambda state: {"value": 1}

    child = (StateGraph(State).add_node("c_one", node("c_one")).add_edge(START, "c_one")
             .compile())
    return (
        StateGraph(State).add_node("p_one", node("p_one")).add_node("p_two", child)
        .add_edge(START, "p_one").add_edge("p_one", "p_two").compile()
    )


def test_subgraph_history_is_read_with_the_subgraph() -> None:
    saver = InMemorySaver()
    graph = (StateGraph(State).add_node("sub", _nested()).add_edge(START, "sub")
             .compile(checkpointer=saver))
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"value": 0}, config)
    ns = next(c.config["configurable"]["checkpoint_ns"] for c in saver.list(config)
              if c.config["configurable"]["checkpoint_ns"].count("|") == 0
              and c.config["configurable"]["checkpoint_ns"])
    history = list(graph.get_state_history({"configurable": {"thread_id": "1",
                                                             "checkpoint_ns": ns}}))
    assert [s.next for s in history[::-1]] == [("__start__",), ("p_one",), ("p_two",), ()]


def test_debug_checkpoint_parent_config_is_as_history_shows_it() -> None:
    graph = (StateGraph(State).add_node("sub", _nested()).add_edge(START, "sub")
             .compile(checkpointer=InMemorySaver()))
    config = {"configurable": {"thread_id": "1"}}
    streamed: dict[str, list] = {}
    for _ns, event in graph.stream({"value": 0}, config, stream_mode="debug", subgraphs=True):
        if event["type"] == "checkpoint":
            ns = event["payload"]["config"]["configurable"]["checkpoint_ns"]
            streamed.setdefault(ns, []).append(event["payload"]["parent_config"])
    assert len(streamed) == 3  # the root, the subgraph and the one nested in it
    for ns, parents in streamed.items():
        history = graph.get_state_history(
            {"configurable": {"thread_id": "1", "checkpoint_ns": ns}})
        assert parents == [snap.parent_config for snap in history][::-1]
        # a subgraph's also names its ancestors' checkpoints (LangGraph's checkpoint_map)
        assert all("checkpoint_map" in p["configurable"] for p in parents[1:] if ns)


def test_exit_durability_saves_no_checkpoint_of_a_finished_subgraph() -> None:
    saver = InMemorySaver()
    graph = (StateGraph(State).add_node("sub", _nested()).add_edge(START, "sub")
             .compile(checkpointer=saver))
    config = {"configurable": {"thread_id": "1"}}
    events = [e for _, e in graph.stream({"value": 0}, config, stream_mode="debug",
                                         subgraphs=True, durability="exit")
              if e["type"] == "checkpoint"]
    assert [c.config["configurable"]["checkpoint_ns"] for c in saver.list(config)] == [""]
    assert events[-1]["payload"]["parent_config"] is None  # the one saved has no parent


def test_bulk_update_state_names_what_is_missing() -> None:
    graph, _, _ = _fan_out(InMemorySaver())
    config = {"configurable": {"thread_id": "1"}}
    with pytest.raises(ValueError, match="No supersteps provided"):
        graph.bulk_update_state(config, [])
    with pytest.raises(ValueError, match="No updates provided"):
        graph.bulk_update_state(config, [[], []])


def test_an_overwrite_drops_the_other_writes_of_its_step() -> None:
    from threadloom.types import Overwrite

    class Msgs(TypedDict):
        messages: Annotated[list, operator.add]

    graph = (
        StateGraph(Msgs)
        .add_node("a", lambda s: {"messages": ["a"]})
        .add_node("b", lambda s: {"messages": Overwrite(["b"])})
        .add_node("c", lambda s: {"messages": ["c"]})
        .add_node("d", lambda s: {"messages": ["d"]})
        .add_edge(START, "a").add_edge("a", "b").add_edge("a", "c")
        .add_edge("b", "d").add_edge("c", "d").compile()
    )
    assert graph.invoke({"messages": ["START"]}) == {"messages": ["b", "d"]}
