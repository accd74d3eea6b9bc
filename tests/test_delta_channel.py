"""DeltaChannel: checkpoints store a step's writes plus periodic snapshots, and every
read rebuilds the same value."""

from __future__ import annotations

from typing import Annotated

from langchain_core.messages import AIMessage, HumanMessage
from typing_extensions import TypedDict

from threadloom.channels.delta import DeltaChannel
from threadloom.checkpoint.memory import InMemorySaver
from threadloom.checkpoint.serde.types import _DeltaSnapshot
from threadloom.graph import START, StateGraph
from threadloom.graph.message import _messages_delta_reducer


def _graph(saver: InMemorySaver, freq: int = 3):
    channel = DeltaChannel(_messages_delta_reducer, snapshot_frequency=freq)
    State = TypedDict("State", {"messages": Annotated[list, channel]})  # noqa: UP013

    def reply(state: dict) -> dict:
        return {"messages": [AIMessage(f"r{len(state['messages'])}")]}

    builder = StateGraph(State)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    return builder.compile(checkpointer=saver)


def test_values_rebuild_from_writes_and_snapshots() -> None:
    saver = InMemorySaver()
    graph = _graph(saver)
    config = {"configurable": {"thread_id": "t"}}
    for i in range(4):
        graph.invoke({"messages": [HumanMessage(f"q{i}")]}, config)
    head = saver.get_tuple(config)
    assert "messages" not in head.checkpoint["channel_values"]
    assert head.metadata["counters_since_delta_snapshot"]["messages"][0] >= 1
    stored = [t.checkpoint["channel_values"].get("messages") for t in saver.list(config)]
    assert any(isinstance(v, _DeltaSnapshot) for v in stored)
    first = graph.get_state(config).values["messages"]
    assert [m.content for m in first] == [
        "q0", "r1", "q1", "r3", "q2", "r5", "q3", "r7"
    ]
    # ids given once, at write time: every read rebuilds the same messages
    assert [m.id for m in graph.get_state(config).values["messages"]] == [m.id for m in first]
    history = [s.values.get("messages", []) for s in graph.get_state_history(config)]
    assert [len(v) for v in history][:3] == [8, 7, 6]


def test_replay_of_an_old_checkpoint_does_not_pick_up_its_later_writes() -> None:
    saver = InMemorySaver()
    graph = _graph(saver, freq=1000)
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"messages": [HumanMessage("a")]}, config)
    graph.invoke({"messages": [HumanMessage("b")]}, config)
    old = next(s for s in graph.get_state_history(config) if s.next == ("reply",))
    out = graph.invoke(None, old.config)
    assert [m.content for m in out["messages"]][-2:] == ["b", "r3"]
    assert len(graph.get_state(config).values["messages"]) == 4
