"""The compiled graph behaves as a langchain_core Runnable: events, batch, composition."""

from __future__ import annotations

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableLambda

from threadloom.graph import START, MessagesState, StateGraph
from threadloom.prebuilt import ScriptedChatModel


def chat_graph():
    model = ScriptedChatModel(["hello there"], when_exhausted="cycle")

    async def llm(state: MessagesState) -> dict:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("llm", llm)
    builder.add_edge(START, "llm")
    return builder.compile()


async def test_astream_events_show_graph_node_and_model_tokens() -> None:
    events = [
        (e["event"], e["name"], e.get("metadata", {}).get("langgraph_node"))
        async for e in chat_graph().astream_events({"messages": [("user", "hi")]},
                                                   version="v2")
    ]
    assert events[0] == ("on_chain_start", "LangGraph", None)
    assert ("on_chain_start", "llm", "llm") in events
    assert ("on_chat_model_start", "ScriptedChatModel", "llm") in events
    tokens = [e for e in events if e[0] == "on_chat_model_stream"]
    assert len(tokens) >= 2
    assert events[-1] == ("on_chain_end", "LangGraph", None)


def test_no_callbacks_means_no_callback_runs() -> None:
    class Counter(BaseCallbackHandler):
        starts = 0

        def on_chain_start(self, *args: object, **kwargs: object) -> None:
            Counter.starts += 1

    builder = StateGraph(MessagesState)
    builder.add_node("n", lambda s: {"messages": [("ai", "x")]})
    builder.add_edge(START, "n")
    graph = builder.compile()
    graph.invoke({"messages": []})
    assert Counter.starts == 0
    graph.invoke({"messages": []}, {"callbacks": [Counter()]})
    assert Counter.starts == 2  # the graph run and the node run


def test_batch_with_config_and_composition() -> None:
    builder = StateGraph(MessagesState)
    builder.add_node("n", lambda s: {"messages": [("ai", f"{len(s['messages'])}")]})
    builder.add_edge(START, "n")
    graph = builder.compile()
    results = graph.batch([{"messages": [("user", "a")]}, {"messages": []}])
    assert [r["messages"][-1].content for r in results] == ["1", "0"]
    tagged = graph.with_config({"tags": ["t"]})
    assert tagged.invoke({"messages": []})["messages"][-1].content == "0"
    chain = graph | RunnableLambda(lambda s: s["messages"][-1].content.upper())
    assert chain.invoke({"messages": [("user", "a")]}) == "1"
