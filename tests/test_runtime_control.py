"""The node runtime (execution and server info, RunControl drains) and push_message."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage
from typing_extensions import TypedDict

from threadloom.checkpoint.memory import MemorySaver
from threadloom.errors import GraphDrained
from threadloom.graph import END, START, MessagesState, StateGraph
from threadloom.graph.message import push_message
from threadloom.runtime import RunControl, Runtime


class Steps(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def _two_steps(first_hook: Any = None) -> StateGraph:
    def first(state: Steps, runtime: Runtime) -> Steps:
        if first_hook is not None:
            first_hook(runtime)
        return {"log": ["first"]}

    def second(state: Steps) -> Steps:
        return {"log": ["second"]}

    builder = StateGraph(Steps)
    builder.add_node("first", first)
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder


def test_drain_stops_between_supersteps_and_resumes() -> None:
    graph = _two_steps(lambda rt: rt.control.request_drain("deploy")).compile(
        checkpointer=MemorySaver()
    )
    config = {"configurable": {"thread_id": "t"}}
    with pytest.raises(GraphDrained, match="deploy") as info:
        graph.invoke({"log": []}, config, control=RunControl())
    assert info.value.reason == "deploy"
    assert graph.get_state(config).next == ("second",)
    assert graph.invoke(None, config) == {"log": ["first", "second"]}


def test_drain_requested_before_the_run_runs_nothing() -> None:
    ran: list[str] = []
    control = RunControl()
    control.request_drain("pre")
    graph = _two_steps(lambda rt: ran.append("first")).compile()
    with pytest.raises(GraphDrained, match="pre"):
        graph.invoke({"log": []}, control=control)
    assert ran == []


def test_drain_in_last_step_finishes_normally() -> None:
    control = RunControl()

    def only(state: Steps) -> Steps:
        control.request_drain()
        return {"log": ["only"]}

    builder = StateGraph(Steps)
    builder.add_node("only", only)
    builder.add_edge(START, "only")
    assert builder.compile().invoke({"log": []}, control=control) == {"log": ["only"]}


def test_drain_async() -> None:
    graph = _two_steps(lambda rt: rt.control.request_drain()).compile()
    with pytest.raises(GraphDrained):
        asyncio.run(graph.ainvoke({"log": []}, control=RunControl()))


def test_subgraph_breakpoint_pauses_the_parent() -> None:
    child = _two_steps().compile(interrupt_before=["second"])
    parent = StateGraph(Steps)
    parent.add_node("child", child)
    parent.add_edge(START, "child")
    graph = parent.compile(checkpointer=MemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"log": []}, config)
    state = graph.get_state(config, subgraphs=True)
    assert state.next == ("child",)
    assert state.tasks[0].state.next == ("second",)
    assert graph.invoke(None, config) == {"log": ["first", "second"]}


def test_runtime_execution_and_server_info() -> None:
    seen: dict[str, Any] = {}

    def node(state: Steps, runtime: Runtime) -> Steps:
        seen["info"] = runtime.execution_info
        seen["server"] = runtime.server_info
        return {"log": ["x"]}

    builder = StateGraph(Steps)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile(checkpointer=MemorySaver())
    graph.invoke({"log": []}, {"configurable": {"thread_id": "th", "assistant_id": "a1",
                                                "graph_id": "g1"}})
    info, server = seen["info"], seen["server"]
    assert info.thread_id == "th"
    assert info.checkpoint_id is not None
    assert info.checkpoint_ns.startswith("node:") and info.task_id in info.checkpoint_ns
    assert info.node_attempt == 1 and isinstance(info.node_first_attempt_time, float)
    assert (server.assistant_id, server.graph_id, server.user) == ("a1", "g1", None)

    graph.invoke({"log": []}, {"configurable": {"thread_id": "other"}})
    assert seen["server"] is None


def test_typeddict_context_schema_passes_the_dict() -> None:
    class Ctx(TypedDict):
        user: str

    def node(state: Steps, runtime: Runtime[Ctx]) -> Steps:
        return {"log": [runtime.context["user"]]}

    builder = StateGraph(Steps, context_schema=Ctx)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    assert builder.compile().invoke({"log": []}, context={"user": "ann"}) == {"log": ["ann"]}


def test_push_message_streams_and_writes_once() -> None:
    def chat(state: MessagesState) -> dict:
        with pytest.raises(ValueError, match="Message ID is required"):
            push_message(AIMessage(content="no id"))
        push_message(AIMessage(content="one", id="1"))
        push_message(AIMessage(content="two", id="2"))
        return {}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    graph = builder.compile()
    streamed, values = [], None
    for mode, chunk in graph.stream({"messages": []}, stream_mode=["messages", "values"]):
        if mode == "messages":
            streamed.append(chunk[0].content)
        else:
            values = chunk
    assert streamed == ["one", "two"]
    assert [m.content for m in values["messages"]] == ["one", "two"]


def test_push_message_outside_a_node_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="inside a graph node"):
        push_message(AIMessage(content="x", id="1"))


# -- tracing ---------------------------------------------------------------------------


class _Recorder:
    """A tracer that keeps the finished runs."""

    def __new__(cls) -> Any:
        from langchain_core.tracers import BaseTracer

        class Recorder(BaseTracer):
            def __init__(self) -> None:
                super().__init__()
                self.runs: list[Any] = []

            def _persist_run(self, run: Any) -> None:
                self.runs.append(run)

        return Recorder()


def _flatten(runs: list[Any]) -> list[Any]:
    out = []
    for run in runs:
        out.append(run)
        out.extend(_flatten(run.child_runs))
    return out


def test_trace_policy_changes_what_tracers_record_only() -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    from threadloom.types import TracePolicy

    class Plain(BaseCallbackHandler):
        def __init__(self) -> None:
            self.inputs: list[Any] = []

        def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
            if kwargs.get("name") == "n":
                self.inputs.append(inputs)

    def boom(_: Any) -> Any:
        raise RuntimeError("scrubber broke")

    class S(TypedDict):
        value: int

    policy = TracePolicy(process_inputs=lambda _: {"hidden": True},
                         process_outputs=lambda _: {"out": "hidden"})
    for pol, expected_in, expected_out in ((policy, {"hidden": True}, {"out": "hidden"}),
                                           (TracePolicy(process_inputs=boom), {"value": 1},
                                            {"value": 2})):
        builder = StateGraph(S)
        builder.add_node("n", lambda s: {"value": s["value"] + 1}, trace_policy=pol)
        builder.add_edge(START, "n")
        tracer, plain = _Recorder(), Plain()
        result = builder.compile().invoke({"value": 1}, {"callbacks": [tracer, plain]})
        assert result == {"value": 2}
        run = next(r for r in _flatten(tracer.runs) if r.name == "n")
        assert (run.inputs, run.outputs) == (expected_in, expected_out)
        assert plain.inputs == [{"value": 1}]


def test_nodes_run_under_the_langsmith_run_tree_when_tracing() -> None:
    from unittest.mock import patch

    import langsmith
    from langsmith import get_current_run_tree

    class S(TypedDict, total=False):
        run_id: Any

    builder = StateGraph(S)
    builder.add_node("n", lambda s: {"run_id": get_current_run_tree().id})
    builder.add_edge(START, "n")
    graph = builder.compile()
    with patch("langsmith.client.Client", spec=langsmith.Client) as client:
        with patch("langchain_core.tracers.langchain.get_client", return_value=client):
            with langsmith.tracing_context(enabled=True):
                assert graph.invoke({})["run_id"] is not None
                assert asyncio.run(graph.ainvoke({}))["run_id"] is not None
