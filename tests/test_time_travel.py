"""Time travel: replaying and forking past checkpoints, also inside subgraphs."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import START, StateGraph
from threadloom.types import Command, interrupt


class State(TypedDict):
    value: Annotated[list[str], operator.add]


def _chain(checkpointer):
    def a(state: State) -> State:
        return {"value": ["a"]}

    def b(state: State) -> State:
        return {"value": ["b"]}

    return (
        StateGraph(State).add_node("a", a).add_node("b", b)
        .add_edge(START, "a").add_edge("a", "b").compile(checkpointer=checkpointer)
    )


def test_replaying_an_update_checkpoint_does_not_fork_again() -> None:
    graph = _chain(InMemorySaver())
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"value": []}, config)
    before_b = next(s for s in graph.get_state_history(config) if s.next == ("b",))
    fork = graph.update_state(before_b.config, {"value": ["x"]})
    assert graph.invoke(None, fork) == {"value": ["a", "x", "b"]}
    sources = [s.metadata["source"] for s in graph.get_state_history(config)]
    # 4 of the first run, the update, and b's step on top of it: no "fork" checkpoint
    assert sources == ["loop", "update", "loop", "loop", "loop", "input"]


def test_replaying_a_loop_checkpoint_forks_it() -> None:
    graph = _chain(InMemorySaver())
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"value": []}, config)
    before_b = next(s for s in graph.get_state_history(config) if s.next == ("b",))
    assert graph.invoke(None, before_b.config) == {"value": ["a", "b"]}
    sources = [s.metadata["source"] for s in graph.get_state_history(config)]
    assert sources[:2] == ["loop", "fork"]


def test_resume_with_the_head_checkpoint_id_keeps_earlier_answers() -> None:
    def ask(state: State) -> State:
        first = interrupt("first?")
        second = interrupt("second?")
        return {"value": [first, second]}

    graph = (
        StateGraph(State).add_node("ask", ask).add_edge(START, "ask")
        .compile(checkpointer=InMemorySaver())
    )
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"value": []}, config)
    graph.invoke(Command(resume="one"), graph.get_state(config).config)
    result = graph.invoke(Command(resume="two"), graph.get_state(config).config)
    assert result == {"value": ["one", "two"]}


def _with_stateful_subgraph(observed: list):
    class Parent(TypedDict):
        results: Annotated[list[str], operator.add]

    def first(state: Parent) -> Parent:
        return {"results": ["p"]}

    def sub_step(state: State) -> State:
        observed.append(list(state["value"]))
        return {"value": ["s"]}

    sub = (
        StateGraph(State).add_node("sub_step", sub_step).add_edge(START, "sub_step")
        .compile(checkpointer=True)
    )
    return (
        StateGraph(Parent).add_node("first", first).add_node("sub", sub)
        .add_edge(START, "first").add_edge("first", "sub")
        .compile(checkpointer=InMemorySaver())
    )


def test_stateful_subgraph_replays_its_state_as_of_the_parent_checkpoint() -> None:
    observed: list = []
    graph = _with_stateful_subgraph(observed)
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"results": []}, config)
    graph.invoke({"results": []}, config)
    assert observed == [[], ["s"]]
    before_sub_first_run = [s for s in graph.get_state_history(config)
                            if s.next == ("sub",)][-1]
    observed.clear()
    graph.invoke(None, before_sub_first_run.config)
    assert observed == [[]]  # not the state the subgraph reached later
    observed.clear()
    graph.invoke({"results": []}, config)
    assert observed == [["s"]]  # the replay's own subgraph state is the newest now


def test_compiled_subgraph_keys_do_not_become_parent_channels() -> None:
    observed: list = []
    graph = _with_stateful_subgraph(observed)
    assert "value" not in graph.program.channels


def test_root_graph_replays_from_a_subgraph_checkpoint() -> None:
    called: list[str] = []

    def step_a(state: State) -> State:
        called.append("step_a")
        return {"value": ["a"]}

    def ask(state: State) -> State:
        called.append("ask")
        return {"value": [interrupt("q?")]}

    sub = (
        StateGraph(State).add_node("step_a", step_a).add_node("ask", ask)
        .add_edge(START, "step_a").add_edge("step_a", "ask").compile(checkpointer=True)
    )
    graph = (
        StateGraph(State).add_node("sub", sub).add_edge(START, "sub")
        .compile(checkpointer=InMemorySaver())
    )
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"value": []}, config)
    sub_config = graph.get_state(config, subgraphs=True).tasks[0].state.config
    assert sub_config["configurable"]["checkpoint_ns"] == "sub"
    assert "" in sub_config["configurable"]["checkpoint_map"]
    graph.invoke(Command(resume="old"), config)

    called.clear()
    replay = graph.invoke(None, sub_config)
    assert replay["__interrupt__"][0].value == "q?"
    assert called == ["ask"]  # step_a ran before that subgraph checkpoint

    fork = graph.update_state(sub_config, {"value": ["edited"]})
    assert fork["configurable"]["checkpoint_ns"] == "sub"
    called.clear()
    graph.invoke(None, fork)
    result = graph.invoke(Command(resume="new"), fork)
    assert result["value"] == ["a", "edited", "new"]


def test_history_shows_the_result_of_a_task_that_ran_alone() -> None:
    graph = _chain(InMemorySaver())
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"value": ["in"]}, config)
    results = {s.metadata["step"]: [t.result for t in s.tasks]
               for s in graph.get_state_history(config)}
    assert results == {-1: [{"value": ["in"]}], 0: [{"value": ["a"]}],
                       1: [{"value": ["b"]}], 2: []}


async def test_aupdate_state_on_a_subgraph_checkpoint_edits_the_subgraph() -> None:
    def ask(state: State) -> State:
        return {"value": [interrupt("q?")]}

    sub = (
        StateGraph(State).add_node("ask", ask).add_edge(START, "ask")
        .compile(checkpointer=True)
    )
    graph = (
        StateGraph(State).add_node("sub", sub).add_edge(START, "sub")
        .compile(checkpointer=InMemorySaver())
    )
    config = {"configurable": {"thread_id": "1"}}
    await graph.ainvoke({"value": []}, config)
    sub_config = (await graph.aget_state(config, subgraphs=True)).tasks[0].state.config
    fork = await graph.aupdate_state(sub_config, {"value": ["edited"]})
    assert (await graph.aget_state(fork)).values == {"value": ["edited"]}
    await graph.ainvoke(None, fork)
    result = await graph.ainvoke(Command(resume="new"), fork)
    assert result["value"] == ["edited", "new"]


def test_migrate_checkpoint_renames_legacy_trigger_channels() -> None:
    graph = _chain(None)
    checkpoint = {
        "v": 1, "id": "x", "ts": "",
        "channel_values": {"value": ["a"], "a": "a"},
        "channel_versions": {"__start__": "1", "start:a": "2", "a": "3", "b": "4"},
        "versions_seen": {"a": {"start:a": "2"}, "b": {"a": "3"}},
    }
    graph._migrate_checkpoint(checkpoint)
    assert checkpoint["channel_versions"] == {
        "__start__": "1", "branch:to:a": "2", "branch:to:b": "3"}
    assert checkpoint["versions_seen"] == {"a": {"branch:to:a": "2"},
                                           "b": {"branch:to:b": "3"}}
    assert set(checkpoint["channel_values"]) == {"value", "branch:to:b"}
