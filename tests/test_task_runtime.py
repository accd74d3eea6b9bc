"""The ``Runtime`` a node receives: its ``execution_info`` (built when first read) names
the task, thread, checkpoint and attempt, and the object behaves as a ``Runtime``."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypedDict

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.runtime import ExecutionInfo, Runtime, get_runtime
from threadloom.types import RetryPolicy


class State(TypedDict):
    n: int


def test_execution_info_per_attempt_and_runtime_behaviour() -> None:
    seen: list[Any] = []

    def flaky(state: State, runtime: Runtime) -> dict[str, int]:
        seen.append(runtime)
        assert get_runtime() is runtime
        if len(seen) < 3:
            raise ValueError("not yet")
        return {"n": state["n"] + 1}

    builder = StateGraph(State)
    builder.add_node(
        "flaky",
        flaky,
        retry_policy=RetryPolicy(initial_interval=0, jitter=False, retry_on=ValueError),
    )
    builder.add_edge(START, "flaky")
    builder.add_edge("flaky", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t-1"}}
    assert graph.invoke({"n": 1}, config) == {"n": 2}

    infos = [r.execution_info for r in seen]
    assert all(isinstance(i, ExecutionInfo) for i in infos)
    assert [i.node_attempt for i in infos] == [1, 2, 3]
    first = infos[0].node_first_attempt_time
    assert isinstance(first, float) and all(i.node_first_attempt_time == first for i in infos)
    assert {i.thread_id for i in infos} == {"t-1"}
    assert {i.task_id for i in infos} == {infos[0].task_id} and infos[0].task_id
    assert {i.checkpoint_ns for i in infos} == {f"flaky:{infos[0].task_id}"}
    # the checkpoint the task runs from: the thread's newest before it ran
    history = [s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(config)]
    assert infos[0].checkpoint_id == history[1]

    runtime = seen[-1]
    assert isinstance(runtime, Runtime)
    copy = runtime.override(context={"k": 1})
    assert copy.context == {"k": 1} and copy.execution_info == runtime.execution_info
    assert repr(runtime).startswith("Runtime(") and "node_attempt=3" in repr(runtime)
    plain = Runtime(**{f.name: getattr(runtime, f.name) for f in fields(Runtime)})
    assert plain.execution_info == runtime.execution_info
    assert runtime.merge(Runtime()).execution_info == runtime.execution_info
