"""DeltaChannel: checkpoints store a step's writes plus periodic snapshots, and every
read rebuilds the same value."""

from __future__ import annotations

import operator
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


class _Log(TypedDict):
    log: Annotated[list, DeltaChannel(lambda cur, writes: [*cur, *(x for w in writes for x in w)],
                                      snapshot_frequency=1000)]


def _two_steps(saver: InMemorySaver):
    builder = StateGraph(_Log)
    builder.add_node("a", lambda state: {"log": ["a"]})
    builder.add_node("b", lambda state: {"log": ["b"]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    return builder.compile(checkpointer=saver)


def test_each_branch_of_a_checkpoint_applies_only_its_own_writes() -> None:
    saver = InMemorySaver()
    graph = _two_steps(saver)
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"log": ["in"]}, config, interrupt_before=["b"])
    base = graph.get_state(config)
    later = graph.update_state(config, {"log": ["later"]}, as_node="a")  # a child of base
    cleared = graph.update_state(base.config, None, as_node="__end__")  # another one

    assert graph.get_state(cleared).values["log"] == ["in", "a"]
    assert graph.get_state(later).values["log"] == ["in", "a", "later"]
    # neither branch needed a snapshot to keep the other's writes out
    assert not any(isinstance(t.checkpoint["channel_values"].get("log"), _DeltaSnapshot)
                   for t in saver.list(config))


def test_exit_runs_record_on_a_stub_and_leave_other_branches_alone() -> None:
    saver = InMemorySaver()
    graph = _two_steps(saver)
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"log": ["in1"]}, config, durability="exit")
    stubs = [t for t in saver.list(config) if t.metadata["step"] == -2]
    assert len(stubs) == 1 and stubs[0].pending_writes
    assert graph.get_state(config).values["log"] == ["in1", "a", "b"]

    first = graph.get_state(config).config
    graph.invoke({"log": ["in2"]}, config)
    branch = graph.get_state(config)
    graph.invoke({"log": ["in3"]}, first, durability="exit")  # from a past checkpoint

    assert graph.get_state(branch.config).values["log"] == branch.values["log"]
    assert graph.get_state(config).values["log"] == ["in1", "a", "b", "in3", "a", "b"]


class _Plain(TypedDict):
    messages: Annotated[list, operator.add]


def test_a_plain_reducer_reads_a_thread_written_with_a_delta_channel() -> None:
    saver = InMemorySaver()
    graph = _graph(saver, freq=2)
    config = {"configurable": {"thread_id": "t"}}
    for i in range(3):
        graph.invoke({"messages": [HumanMessage(f"q{i}", id=f"q{i}")]}, config)

    builder = StateGraph(_Plain)
    builder.add_node("reply", lambda state: {})
    builder.add_edge(START, "reply")
    plain = builder.compile(checkpointer=saver)
    assert [s.values for s in plain.get_state_history(config)] == [
        s.values for s in graph.get_state_history(config)
    ]


def test_messages_get_stable_ids_whatever_the_reducer() -> None:
    saver = InMemorySaver()
    builder = StateGraph(_Log)
    builder.add_node("a", lambda state: {"log": [AIMessage("hi")]})
    builder.add_edge(START, "a")
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"log": [{"role": "user", "content": "hello"}]}, config)

    first = graph.get_state(config).values["log"]
    assert [type(m).__name__ for m in first] == ["HumanMessage", "AIMessage"]
    assert all(m.id for m in first)
    assert [m.id for m in graph.get_state(config).values["log"]] == [m.id for m in first]


def test_bulk_update_stores_writes_under_the_task_ids_given() -> None:
    from threadloom.types import StateUpdate

    saver = InMemorySaver()
    graph = _two_steps(saver)
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"log": ["in"]}, config)
    base = saver.get_tuple(config)
    graph.bulk_update_state(config, [[
        StateUpdate({"log": ["x"]}, as_node="b", task_id="task-1"),
        StateUpdate({"log": ["y"]}, as_node="a", task_id="task-2"),
    ]])
    stored = saver.get_tuple(base.config)
    assert {w[0] for w in stored.pending_writes} == {"task-1", "task-2"}
    assert graph.get_state(config).values["log"] == ["in", "a", "b", "x", "y"]


def test_an_overwrite_is_the_whole_say_of_its_step() -> None:
    from threadloom.types import Overwrite

    builder = StateGraph(_Log)
    builder.add_node("a", lambda state: {"log": ["a"]})
    builder.add_node("b", lambda state: {"log": Overwrite(["b"])})
    builder.add_node("c", lambda state: {"log": ["c"]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("a", "c")
    saver = InMemorySaver()
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}}
    assert graph.invoke({"log": ["in"]}, config) == {"log": ["b"]}
    assert saver.get_tuple(config).checkpoint["channel_values"]["log"] == _DeltaSnapshot(["b"])


def test_a_copy_keeps_the_delta_counters() -> None:
    saver = InMemorySaver()
    graph = _two_steps(saver)
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"log": ["in"]}, config)
    before = saver.get_tuple(config).metadata["counters_since_delta_snapshot"]
    copied = graph.update_state(config, None, as_node="__copy__")
    assert saver.get_tuple(copied).metadata["counters_since_delta_snapshot"] == before


def test_a_pregel_input_update_writes_the_input_channels_and_wakes_only_their_readers(
) -> None:
    from threadloom.channels.last_value import LastValue
    from threadloom.pregel import NodeBuilder, Pregel

    reads: list = []
    writer = NodeBuilder().subscribe_only("a").do(lambda _: [1]).write_to("d")
    reader = NodeBuilder().subscribe_only("d").do(lambda d: reads.append(list(d)))
    graph = Pregel(
        nodes={"writer": writer, "reader": reader},
        channels={"a": LastValue(str),
                  "d": DeltaChannel(lambda cur, ws: [*cur, *(x for w in ws for x in w)])},
        input_channels="a", output_channels=["d"], checkpointer=InMemorySaver(),
    )
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke("go", config)
    first = next(s.config for s in graph.get_state_history(config)
                 if s.metadata["step"] == -1)
    assert "reader" not in graph.get_state(first).next  # "d" unwritten wakes nobody

    fork = graph.update_state(first, {"a": "go"}, as_node="__input__")
    assert graph.get_state(fork).next == ("writer",)
    graph.invoke(None, fork)
    assert reads == [[1], [1]]


def test_hydrating_a_written_delta_channel_needs_a_saver() -> None:
    import pytest

    from threadloom.checkpoint.base import empty_checkpoint
    from threadloom.pregel._checkpoint import channels_from_checkpoint

    checkpoint = empty_checkpoint()
    checkpoint["channel_versions"]["log"] = 1
    with pytest.raises(ValueError, match="no checkpointer"):
        channels_from_checkpoint({"log": DeltaChannel(lambda c, w: c)}, checkpoint)
