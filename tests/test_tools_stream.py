"""``stream_mode="tools"``: tool-call lifecycle events, and ``run.tool_calls`` (v3)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from typing_extensions import TypedDict

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages
from threadloom.prebuilt import ToolCallTransformer, ToolNode, ToolRuntime
from threadloom.types import Command, interrupt


class State(TypedDict):
    messages: Annotated[list, add_messages]


def _calling(*calls: tuple[str, dict[str, Any], str]) -> Any:
    def caller(state: State) -> dict:
        tool_calls = [{"name": n, "args": a, "id": i} for n, a, i in calls]
        return {"messages": [AIMessage(content="", tool_calls=tool_calls)]}

    return caller


def _graph(caller: Any, tools: list, checkpointer: Any = None) -> Any:
    return (
        StateGraph(State)
        .add_node("caller", caller)
        .add_node("tools", ToolNode(tools))
        .add_edge(START, "caller")
        .add_edge("caller", "tools")
        .add_edge("tools", END)
        .compile(checkpointer=checkpointer)
    )


@tool
def shout(text: str, runtime: ToolRuntime) -> str:
    """Stream the text in pieces, then return it upper-cased."""
    for part in text.split():
        runtime.emit_output_delta(part)
    return text.upper()


def _tools_events(chunks: Any) -> list[tuple[tuple[str, ...], dict]]:
    return [(tuple(ns), data) for ns, mode, data in chunks if mode == "tools"]


def test_tools_mode_reports_start_deltas_and_finish() -> None:
    graph = _graph(_calling(("shout", {"text": "a b"}, "c1")), [shout])

    events = _tools_events(graph.stream({"messages": []}, stream_mode=["tools"], subgraphs=True))

    assert [(ns, e["event"]) for ns, e in events] == [
        ((), "tool-started"),
        ((), "tool-output-delta"),
        ((), "tool-output-delta"),
        ((), "tool-finished"),
    ]
    started, first, second, finished = (e for _, e in events)
    assert started == {
        "event": "tool-started", "tool_call_id": "c1", "tool_name": "shout",
        "input": {"text": "a b"},
    }
    assert (first["delta"], second["delta"]) == ("a", "b")
    assert {first["tool_call_id"], second["tool_call_id"]} == {"c1"}
    assert isinstance(finished["output"], ToolMessage)
    assert finished["output"].content == "A B"


def test_tools_as_the_only_mode_yields_payloads() -> None:
    graph = _graph(_calling(("shout", {"text": "x"}, "c1")), [shout])

    chunks = list(graph.stream({"messages": []}, stream_mode="tools"))

    assert [c["event"] for c in chunks] == ["tool-started", "tool-output-delta", "tool-finished"]


def test_a_tool_error_ends_the_call_with_its_message() -> None:
    @tool
    def broken() -> str:
        """Fails."""
        raise ValueError("out of order")

    graph = _graph(_calling(("broken", {}, "c1")), [broken])
    events: list[dict] = []
    with pytest.raises(ValueError, match="out of order"):
        for chunk in graph.stream({"messages": []}, stream_mode="tools"):
            events.append(chunk)

    assert [(e["event"], e["tool_call_id"]) for e in events] == [
        ("tool-started", "c1"), ("tool-error", "c1"),
    ]
    assert events[-1]["message"] == "out of order"


def test_an_interrupted_tool_is_not_an_error_and_starts_again_on_resume() -> None:
    @tool
    def ask() -> str:
        """Asks a person."""
        return interrupt("go on?")

    graph = _graph(_calling(("ask", {}, "c1")), [ask], InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}

    paused = list(graph.stream({"messages": []}, config, stream_mode="tools"))
    resumed = list(graph.stream(Command(resume="yes"), config, stream_mode="tools"))

    assert [e["event"] for e in paused] == ["tool-started"]
    assert [e["event"] for e in resumed] == ["tool-started", "tool-finished"]
    assert resumed[-1]["output"].content == "yes"


def test_parallel_calls_keep_their_deltas_apart() -> None:
    graph = _graph(
        _calling(("shout", {"text": "a1 a2"}, "a"), ("shout", {"text": "b1 b2"}, "b")), [shout]
    )

    events = list(graph.stream({"messages": []}, stream_mode="tools"))

    deltas: dict[str, list[str]] = {}
    for e in events:
        if e["event"] == "tool-output-delta":
            deltas.setdefault(e["tool_call_id"], []).append(e["delta"])
    assert deltas == {"a": ["a1", "a2"], "b": ["b1", "b2"]}


def test_no_tools_events_unless_asked_and_emit_is_a_noop_then() -> None:
    graph = _graph(_calling(("shout", {"text": "a"}, "c1")), [shout])

    chunks = list(graph.stream({"messages": []}, stream_mode=["updates", "custom"]))

    assert all(mode != "tools" for mode, _ in chunks)
    assert graph.invoke({"messages": []})["messages"][-1].content == "A"


def test_tool_in_a_subgraph_streams_under_its_namespace() -> None:
    inner = _graph(_calling(("shout", {"text": "x"}, "c1")), [shout])
    outer = StateGraph(State).add_node("sub", inner).add_edge(START, "sub").compile()

    events = _tools_events(
        outer.stream({"messages": []}, stream_mode=["tools"], subgraphs=True)
    )

    assert len(events) == 3
    assert all(len(ns) == 1 and ns[0].startswith("sub:") for ns, _ in events)
    # without subgraphs=True the subgraph's events stay inside it
    assert list(outer.stream({"messages": []}, stream_mode="tools")) == []


def test_a_tool_invoked_by_hand_inside_a_node_is_reported() -> None:
    @tool
    def echo(text: str) -> str:
        """Echo."""
        return text

    def node(state: State) -> dict:
        echo.invoke({"text": "hi"})
        return {}

    graph = StateGraph(State).add_node("node", node).add_edge(START, "node").compile()

    events = list(graph.stream({"messages": []}, stream_mode="tools"))

    assert [e["event"] for e in events] == ["tool-started", "tool-finished"]
    assert events[0]["tool_name"] == "echo"
    assert events[1]["output"] == "hi"


def test_async_tools_mode() -> None:
    @tool
    async def ashout(text: str, runtime: ToolRuntime) -> str:
        """Async shout."""
        runtime.emit_output_delta(text)
        return text.upper()

    graph = _graph(_calling(("ashout", {"text": "hey"}, "c1")), [ashout])

    async def collect() -> list[dict]:
        return [e async for e in graph.astream({"messages": []}, stream_mode="tools")]

    events = asyncio.run(collect())

    assert [e["event"] for e in events] == ["tool-started", "tool-output-delta", "tool-finished"]
    assert events[1]["delta"] == "hey"


def test_unknown_stream_mode_still_refused() -> None:
    graph = _graph(_calling(("shout", {"text": "a"}, "c1")), [shout])
    with pytest.raises(ValueError, match="Unknown stream_mode 'tool'"):
        list(graph.stream({"messages": []}, stream_mode="tool"))


def test_stream_events_v3_projects_tool_calls() -> None:
    graph = _graph(_calling(("shout", {"text": "one two"}, "c1")), [shout])

    run = graph.stream_events({"messages": []}, version="v3", transformers=[ToolCallTransformer])

    seen = []
    for call in run.tool_calls:
        seen.append((call.tool_call_id, call.tool_name, list(call.output_deltas)))
        final = call
    assert seen == [("c1", "shout", ["one", "two"])]
    assert final.completed and final.error is None
    assert final.output == "ONE TWO"


@tool
def echo(text: str) -> str:
    """Echo."""
    return text


def _echoing_graph() -> Any:
    def node(state: State) -> dict:
        echo.invoke({"text": "hi"})
        return {}

    return StateGraph(State).add_node("node", node).add_edge(START, "node").compile()


def test_graph_run_on_its_own_thread_by_a_node_reports_to_the_caller() -> None:
    child = _echoing_graph()

    def node(state: State) -> dict:
        child.invoke({"messages": []}, {"configurable": {"thread_id": "child"}})
        return {}

    parent = StateGraph(State).add_node("node", node).add_edge(START, "node").compile()

    events = list(parent.stream({"messages": []}, stream_mode="tools"))

    assert [e["event"] for e in events] == ["tool-started", "tool-finished"]


def test_graph_a_node_streams_itself_keeps_its_tool_events() -> None:
    child = _echoing_graph()
    received: list = []

    def node(state: State) -> dict:
        received.extend(
            child.stream({"messages": []}, {"configurable": {"thread_id": "child"}},
                         stream_mode="tools")
        )
        return {}

    parent = StateGraph(State).add_node("node", node).add_edge(START, "node").compile()

    assert list(parent.stream({"messages": []}, stream_mode="tools")) == []
    assert [e["event"] for e in received] == ["tool-started", "tool-finished"]


def test_node_streaming_a_subgraph_gets_its_events_and_the_caller_does_not() -> None:
    child = _echoing_graph()
    received: list = []

    def node(state: State, config: Any) -> dict:
        received.extend(child.stream({"messages": []}, stream_mode=["tools", "updates"]))
        return {}

    parent = StateGraph(State).add_node("node", node).add_edge(START, "node").compile()

    assert list(parent.stream({"messages": []}, stream_mode="tools", subgraphs=True)) == []
    assert [(mode, data.get("event", "")) for mode, data in received] == [
        ("tools", "tool-started"), ("tools", "tool-finished"), ("updates", ""),
    ]
