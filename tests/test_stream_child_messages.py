"""A graph a node streams itself: its messages reach the caller only with subgraphs=True."""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import AIMessage

from threadloom.graph import START, MessagesState, StateGraph


def _outer():
    inner = (
        StateGraph(MessagesState)
        .add_node("speak", lambda s: {"messages": [AIMessage("from inside")]})
        .add_edge(START, "speak")
        .compile()
    )

    def node(state: MessagesState, config):
        said = ""
        for chunk, _meta in inner.stream({"messages": []}, config, stream_mode="messages"):
            said += chunk.content
        return {"messages": [AIMessage(said)]}

    return StateGraph(MessagesState).add_node("n", node).add_edge(START, "n").compile()


def test_child_messages_stay_out_without_subgraphs() -> None:
    graph = _outer()
    events = list(graph.stream({"messages": []}, stream_mode="messages"))
    assert [m.content for m, _ in events] == ["from inside"]  # the node's own output only
    # ... which is the outer node's returned message, at the root namespace
    assert events[0][1]["langgraph_node"] == "n"


def test_child_messages_reach_the_caller_with_subgraphs() -> None:
    graph = _outer()
    events = list(graph.stream({"messages": []}, stream_mode="messages", subgraphs=True))
    assert [(bool(ns), m.content) for ns, (m, _) in events] == [
        (True, "from inside"),
        (False, "from inside"),
    ]


def test_a_resumed_subgraph_does_not_stream_again_what_an_earlier_run_streamed() -> None:
    from pydantic import BaseModel, Field

    from threadloom.checkpoint.memory import InMemorySaver
    from threadloom.graph.message import add_messages
    from threadloom.types import Command, interrupt

    class State(BaseModel):  # a model state: its messages count as the nodes' input too
        messages: Annotated[list, add_messages] = Field(default_factory=list)

    def propose(state: State) -> dict:
        return {"messages": [AIMessage("Proposal", id="proposal")]}

    def approve(state: State) -> dict:
        return {"messages": [AIMessage(interrupt("ok?"), id="answer")]}

    saver = InMemorySaver()
    inner = (
        StateGraph(State).add_node("propose", propose).add_node("approve", approve)
        .add_edge(START, "propose").add_edge("propose", "approve").compile(checkpointer=saver)
    )
    graph = StateGraph(State).add_node("inner", inner).add_edge(START, "inner")
    graph = graph.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}}

    def ids(stream_input: Any) -> list[str]:
        return [m.id for _ns, (m, _) in graph.stream(
            stream_input, config, stream_mode="messages", subgraphs=True)]

    assert ids({"messages": []}) == ["proposal"]
    # the resumed run streams the answer (inside, then as the subgraph's output), not the
    # proposal again, although the subgraph's state handed back to the parent holds it
    assert ids(Command(resume="yes")) == ["answer"]


def test_a_graph_a_node_streams_keeps_message_chunks_under_a_v3_run_stream() -> None:
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.messages import AIMessageChunk
    from typing_extensions import TypedDict

    model = GenericFakeChatModel(messages=iter(["inner words"]))
    inner = (
        StateGraph(MessagesState)
        .add_node("call", lambda s: {"messages": model.invoke(s["messages"])})
        .add_edge(START, "call")
        .compile()
    )

    class Outer(TypedDict, total=False):
        kinds: list

    def node(state: Outer, config: Any) -> dict:
        parts = list(inner.stream({"messages": "hi"}, config, stream_mode="messages"))
        return {"kinds": sorted({type(payload).__name__ for payload, _meta in parts})}

    outer = StateGraph(Outer).add_node("n", node).add_edge(START, "n").compile()
    run = outer.stream_events({}, version="v3")
    assert run.output == {"kinds": [AIMessageChunk.__name__]}
