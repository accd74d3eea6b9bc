"""A graph a node streams itself: its messages reach the caller only with subgraphs=True."""

from __future__ import annotations

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
