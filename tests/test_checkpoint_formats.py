"""Checkpoints saved in older formats (by LangGraph, or by earlier threadloom) load and
resume: their pending writes are found by the tasks planned from them, and pre-0.4
trigger channels are renamed to the graph's own.

The ids below are what LangGraph gave these tasks (see ``planned_task_id``); the
checkpoints are written through the saver API, as another program would have.
"""

from __future__ import annotations

from operator import add
from typing import Annotated

from typing_extensions import TypedDict

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.engine.task import task_id
from threadloom.graph import START, StateGraph
from threadloom.types import Command, interrupt

THREAD = {"configurable": {"thread_id": "1", "checkpoint_ns": ""}}


class State(TypedDict, total=False):
    query: str
    answer: str
    docs: Annotated[list[str], add]


def _graph(saver: InMemorySaver, calls: list[str]):
    def qa(state: State) -> State:
        calls.append("qa")
        interrupt("")
        return {"answer": ",".join(state["docs"])}

    def other(state: State) -> State:
        calls.append("other")
        return {"docs": ["other"]}

    return (
        StateGraph(State)
        .add_node("qa", qa)
        .add_node("other", other)
        .add_edge(START, "qa")
        .add_edge(START, "other")
        .compile(checkpointer=saver)
    )


def _put(saver: InMemorySaver, checkpoint: dict, step: int, parent: str | None,
         writes: dict[str, list]) -> dict:
    config = {"configurable": {**THREAD["configurable"], "checkpoint_id": checkpoint["id"]}}
    for tid, group in writes.items():
        saver.put_writes(config, group, tid)
    saver.put({"configurable": {**THREAD["configurable"], "checkpoint_id": parent}},
              checkpoint, {"source": "loop", "step": step, "parents": {}},
              checkpoint["channel_versions"])
    return config


def _checkpoint(cid: str, v: int, values: dict, versions: dict) -> dict:
    return {"v": v, "id": cid, "ts": "2025-04-02T15:20:01+00:00", "channel_values": values,
            "channel_versions": versions, "versions_seen": {}, "updated_channels": None}


def test_langgraph_task_ids_find_the_writes_of_a_v2_checkpoint() -> None:
    # LangGraph gave the task of node "qa", triggered by branch:to:qa in step 4 of
    # this checkpoint, the id 2430f303-...: its interrupt and its result are shown
    saver = InMemorySaver()
    graph = _graph(saver, [])
    cid = "1f00fd5f-2140-6fd6-8003-2051ce36b79c"
    _put(saver, _checkpoint(cid, 2, {"docs": ["d1"], "branch:to:qa": None},
                            {"docs": "1", "branch:to:qa": "2"}), 3, None, {
        "2430f303-da9f-2e3e-738c-2e8ea28e8973": [("__interrupt__", []), ("answer", "d1")],
    })
    state = graph.get_state(THREAD)
    assert [t.id for t in state.tasks] == ["2430f303-da9f-2e3e-738c-2e8ea28e8973"]
    assert state.tasks[0].result == {"answer": "d1"}
    assert state.next == ()  # its writes are there: nothing is left to run


def test_a_v1_checkpoint_with_start_channels_is_planned_and_resumed() -> None:
    # format v1 (LangGraph before 0.4): the input step's trigger is "start:<node>" and
    # task ids are SHA-1 based; "__start__" (id aa8c5e8a-...) had already finished
    saver = InMemorySaver()
    calls: list[str] = []
    graph = (
        StateGraph(State)
        .add_node("rewrite_query", lambda s: {"query": "q: " + s["query"]})
        .add_edge(START, "rewrite_query")
        .compile(checkpointer=saver)
    )
    cid = "1f00ffbe-5368-6c0a-bfff-ac22bea4c512"
    _put(saver, _checkpoint(cid, 1, {"__start__": {"query": "weather"}}, {"__start__": "1"}),
         -1, None, {"aa8c5e8a-da6f-ccb1-f8a9-3b145cdfe7a4": [
             ("query", "weather"), ("start:rewrite_query", "__start__")]})
    state = graph.get_state(THREAD)
    assert state.tasks[0].name == "__start__"
    assert state.tasks[0].result == {"query": "weather"}

    assert graph.invoke(None, THREAD) == {"query": "q: weather", "docs": []}
    assert calls == []


def test_a_pre_04_checkpoint_names_its_node_channels_for_the_next_nodes() -> None:
    saver = InMemorySaver()
    graph = (
        StateGraph(State)
        .add_node("a", lambda s: {"docs": ["a"]})
        .add_node("b", lambda s: {"docs": ["b"]})
        .add_edge(START, "a")
        .add_edge("a", "b")
        .compile(checkpointer=saver)
    )
    # "a" ran: the old format wrote its name to the channel "a", which "b" listened to
    _put(saver, _checkpoint("1f00fe48-515b-6d12-8002-82a8f9213eae", 2,
                            {"docs": ["a"], "a": "a"}, {"docs": "2", "a": "2"}), 1, None, {})
    assert graph.get_state(THREAD).next == ("b",)
    assert graph.invoke(None, THREAD)["docs"] == ["a", "b"]


def test_pending_writes_saved_under_earlier_threadloom_task_ids_are_still_found() -> None:
    # threadloom keyed planned tasks' writes by task_id(checkpoint, ns, step, node, kind,
    # triggers) before it took LangGraph's ids: a paused thread saved then resumes
    # without running its finished task again
    saver = InMemorySaver()
    calls: list[str] = []
    graph = _graph(saver, calls)
    graph.invoke({"query": "x"}, THREAD)
    assert calls == ["other", "qa"] or calls == ["qa", "other"]
    head = saver.get_tuple(THREAD)
    cid, step = head.checkpoint["id"], head.metadata["step"] + 1
    # the same checkpoint, saved again with the writes under the earlier ids
    moved = {"configurable": {**THREAD["configurable"], "thread_id": "2"}}
    saver.put(moved, head.checkpoint, head.metadata, head.checkpoint["channel_versions"])
    at = {"configurable": {**moved["configurable"], "checkpoint_id": cid}}
    by_name = {t.name: t for t in graph.get_state(THREAD).tasks}
    for tid, channel, value in head.pending_writes:
        name = next(n for n, t in by_name.items() if t.id == tid)
        old = task_id(cid, "", step, name, "__pregel_pull", f"branch:to:{name}")
        saver.put_writes(at, [(channel, value)], old)

    calls.clear()
    state = graph.get_state(moved)
    assert state.next == ("qa",) and len(state.interrupts) == 1
    out = graph.invoke(Command(resume="ok"), moved)
    assert calls == ["qa"]  # "other" finished before the pause: not run again
    assert out["docs"] == ["other"] and out["answer"] == ""


def test_an_answer_for_a_checkpoint_the_thread_moved_past_reruns_its_tasks() -> None:
    # Command(resume) at a past paused checkpoint is a fork: the sibling's stored result
    # belongs to the branch that went on from there, so it runs again there
    saver = InMemorySaver()
    calls: list[str] = []
    graph = _graph(saver, calls)
    graph.invoke({"query": "x"}, THREAD)
    paused = graph.get_state(THREAD).config
    graph.invoke(Command(resume="first"), THREAD)
    calls.clear()

    out = graph.invoke(Command(resume="again"), paused)
    assert sorted(calls) == ["other", "qa"]
    assert out["answer"] == "" and out["docs"] == ["other"]

    calls.clear()  # at the head, the finished sibling's result is used
    graph.invoke({"query": "y"}, THREAD)
    graph.invoke(Command(resume="ok"), graph.get_state(THREAD).config)
    assert calls == ["other", "qa", "qa"] or calls == ["qa", "other", "qa"]


def test_a_v3_checkpoint_keeps_its_sends_beside_the_channels() -> None:
    # before v4, the Sends for the next step were stored as "pending_sends"
    from threadloom.types import Send

    saver = InMemorySaver()
    graph = (
        StateGraph(State)
        .add_node("fan", lambda s: {"docs": [s["query"]]})
        .add_conditional_edges(START, lambda s: [Send("fan", {"query": q}) for q in "ab"],
                               ["fan"])
        .compile(checkpointer=saver, interrupt_before=["fan"])
    )
    graph.invoke({"query": "x"}, THREAD)
    head = saver.get_tuple(THREAD)
    old = dict(head.checkpoint, v=3)
    old["channel_values"] = dict(old["channel_values"])
    old["pending_sends"] = old["channel_values"].pop("__pregel_tasks")
    old["channel_versions"] = {k: v for k, v in old["channel_versions"].items()
                               if k != "__pregel_tasks"}
    moved = {"configurable": {**THREAD["configurable"], "thread_id": "v3"}}
    saver.put(moved, old, head.metadata, old["channel_versions"])

    assert graph.get_state(moved).next == ("fan", "fan")
    assert sorted(graph.invoke(None, moved)["docs"]) == ["a", "b"]
