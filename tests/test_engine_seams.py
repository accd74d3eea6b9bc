"""The engine's seams: the thread state (restore, plan, apply, seal) used on its own, the
typed I/O requests and the one executor per driver, ``empty_checkpoint``."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any

import pytest
from typing_extensions import TypedDict

from threadloom.checkpoint.base import empty_checkpoint
from threadloom.checkpoint.memory import MemorySaver
from threadloom.engine.requests import GetTuple, LatestBefore, Put, PutWrites, aperform, perform
from threadloom.engine.scope import Scope
from threadloom.engine.task import ResumeBox
from threadloom.engine.thread import PendingWrites, ThreadState
from threadloom.func import entrypoint, task
from threadloom.graph import START, StateGraph


class S(TypedDict):
    log: Annotated[list, operator.add]


def _cfg(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def _paused_graph(saver: MemorySaver) -> Any:
    builder = StateGraph(S)
    builder.add_node("a", lambda s: {"log": ["a"]})
    builder.add_node("b", lambda s: {"log": ["b"]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    return builder.compile(checkpointer=saver, interrupt_before=["b"])


def test_thread_state_restores_plans_applies_and_seals_a_checkpoint() -> None:
    saver = MemorySaver()
    graph = _paused_graph(saver)
    graph.invoke({"log": []}, _cfg("t"))  # stops before b
    tup = saver.get_tuple(_cfg("t"))
    assert tup is not None
    versions = tup.checkpoint["channel_versions"]
    versions_before = dict(versions)

    scope = Scope(modes=frozenset(), sink=None, resume_box=ResumeBox(), store=None,
                  context=None, checkpointer=saver, ns="", nested=False)
    state = ThreadState(graph.program, _cfg("t"), scope, checkpointer=saver,
                        durability="sync")
    pending = PendingWrites(state.restore(tup, copy=True), tup.config)
    assert pending.succeeded == {}
    assert state.step == tup.metadata["step"]

    tasks = state.plan(state.step + 1)
    assert [t.name for t in tasks] == ["b"]
    assert tasks[0].input == {"log": ["a"]}  # planned for execution: the node's input
    tasks[0].writes = [("log", ["b (by hand)"])]
    state.apply(tasks)
    put = state.seal(state.step + 1, "loop")
    assert isinstance(put, Put)
    # copy=True: the version maps read are left as they were
    assert versions == versions_before
    assert state.checkpoint["channel_versions"] != versions_before

    perform(saver, put)
    saved = saver.get_tuple(_cfg("t"))
    assert saved is not None
    assert saved.config["configurable"]["checkpoint_id"] == state.checkpoint["id"]
    assert saved.parent_config["configurable"]["checkpoint_id"] == (
        tup.config["configurable"]["checkpoint_id"])
    assert saved.metadata["source"] == "loop"
    assert saved.checkpoint["channel_values"]["log"] == ["a", "b (by hand)"]
    # the graph goes on from the sealed checkpoint: b counts as run, nothing is left
    assert graph.get_state(_cfg("t")).next == ()
    assert graph.get_state(_cfg("t")).values == {"log": ["a", "b (by hand)"]}


def test_thread_state_without_a_checkpointer_seals_nothing() -> None:
    graph = _paused_graph(MemorySaver())
    scope = Scope(modes=frozenset(), sink=None, resume_box=ResumeBox(), store=None,
                  context=None, checkpointer=None, ns="", nested=False)
    state = ThreadState(graph.program, {}, scope, checkpointer=None, durability="sync")
    state.checkpoint = empty_checkpoint()
    state.channels = graph.program.new_channels()
    assert state.seal(0, "loop") is None
    assert state.step == 0


def test_perform_refuses_what_is_not_a_request() -> None:
    with pytest.raises(TypeError, match=r"Not a request a driver performs: \('get_tuple'"):
        perform(MemorySaver(), ("get_tuple", _cfg("t")))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Not a request a driver performs"):
        asyncio.run(aperform(MemorySaver(), ("get_tuple", _cfg("t"))))  # type: ignore[arg-type]


def test_requests_reach_the_saver_sync_and_async() -> None:
    saver = MemorySaver()
    graph = _paused_graph(saver)
    graph.invoke({"log": []}, _cfg("t"))
    head = perform(saver, GetTuple(_cfg("t")))
    assert head is not None
    head_id = head.config["configurable"]["checkpoint_id"]
    older = perform(saver, LatestBefore({"configurable": {"thread_id": "t",
                                                          "checkpoint_ns": ""}}, head_id))
    assert older is not None
    assert older.config["configurable"]["checkpoint_id"] < head_id
    perform(saver, PutWrites(head.config, [("log", ["w"])], "task-1", ""))
    assert ("task-1", "log", ["w"]) in perform(saver, GetTuple(_cfg("t"))).pending_writes

    async def read() -> Any:
        return await aperform(saver, LatestBefore(
            {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}, head_id))

    assert asyncio.run(read()).config == older.config


def test_empty_checkpoint_takes_an_id_and_a_time() -> None:
    fresh = empty_checkpoint()
    assert fresh["v"] == 4 and fresh["id"] and fresh["ts"]
    assert fresh["channel_values"] == {} and fresh["updated_channels"] is None
    given = empty_checkpoint(checkpoint_id="", ts="")
    assert given["id"] == "" and given["ts"] == ""
    assert empty_checkpoint()["id"] > fresh["id"]  # ids sort in creation order


class _OldSaver(MemorySaver):
    """A saver written against the older ``put_writes`` signature (no ``task_path``)."""

    def __init__(self) -> None:
        super().__init__()
        self.task_ids: list[str] = []

    def put_writes(self, config, writes, task_id):  # type: ignore[no-untyped-def,override]
        self.task_ids.append(task_id)
        return super().put_writes(config, writes, task_id)

    async def aput_writes(self, config, writes, task_id):  # type: ignore[no-untyped-def,override]
        self.task_ids.append(task_id)
        return super().put_writes(config, writes, task_id)


def _called_task_graph(saver: MemorySaver) -> Any:
    @task
    def double(x: int) -> int:
        return 2 * x

    @entrypoint(checkpointer=saver)
    def main(x: int) -> int:
        return double(x).result() + double(x + 1).result()

    return main


def test_called_tasks_save_their_writes_on_an_old_signature_saver() -> None:
    """The writes of tasks called from a running task (``@task``) go through the same
    executor as the loop's: a saver without ``task_path`` is called without it."""
    saver = _OldSaver()
    assert _called_task_graph(saver).invoke(3, _cfg("t")) == 14
    assert len(saver.task_ids) >= 2  # the two calls' writes at least


def test_called_tasks_save_their_writes_on_an_old_signature_saver_async() -> None:
    saver = _OldSaver()

    async def run() -> Any:
        return await _called_task_graph(saver).ainvoke(3, _cfg("t"))

    assert asyncio.run(run()) == 14
    assert len(saver.task_ids) >= 2
