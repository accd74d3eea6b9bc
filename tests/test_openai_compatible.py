"""create_react_agent with a real ``ChatOpenAI`` client against a local scripted server.

The server (tests/openai_server.py) speaks the Chat Completions API over real HTTP, so
this covers what a mock model cannot: request/response shapes, tool-call round trips,
and server-sent-event streaming surfacing as ``stream_mode="messages"`` tokens.
"""

from __future__ import annotations

import os

import pytest

try:
    from langchain_openai import ChatOpenAI
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(
        "langchain_openai is not installed (pip install langchain-openai); "
        "the OpenAI-compatible end-to-end tests need it.",
        allow_module_level=True,
    )

from langchain_core.messages import AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from openai_server import OpenAIStub, openai_server  # noqa: F401 - fixture

from threadloom.checkpoint.memory import MemorySaver
from threadloom.prebuilt import create_react_agent


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"It is sunny in {city}."


def chat(server: OpenAIStub) -> ChatOpenAI:
    return ChatOpenAI(base_url=server.base_url, api_key="test", model="gpt-4o-mini", max_retries=0)


CFG = {"configurable": {"thread_id": "openai-1"}}


def test_server_speaks_chat_completions(openai_server: OpenAIStub) -> None:  # noqa: F811
    openai_server.add(
        "Hello there",
        {"tool_calls": [{"name": "get_weather", "args": {"city": "Oslo"}}]},
        {"content": "Checking", "tool_calls": [{"name": "get_weather", "args": {"city": "Rome"}}]},
    )
    model = chat(openai_server)
    assert model.invoke("hi").content == "Hello there"
    message = model.bind_tools([get_weather]).invoke("weather in Oslo?")
    assert message.tool_calls == [
        {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_1", "type": "tool_call"}
    ]
    merged = None
    count = 0
    for chunk in model.bind_tools([get_weather]).stream("weather in Rome?"):
        merged = chunk if merged is None else merged + chunk
        count += 1
    assert count > 3
    assert merged is not None and merged.content == "Checking"
    assert merged.tool_calls[0]["args"] == {"city": "Rome"}
    assert openai_server.requests[2]["stream"] is True
    assert openai_server.requests[1]["tools"][0]["function"]["name"] == "get_weather"


def test_agent_round_trip_through_a_tool(openai_server: OpenAIStub) -> None:  # noqa: F811
    openai_server.add(
        {"tool_calls": [{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_w"}]},
        "It is sunny in Paris today.",
    )
    agent = create_react_agent(chat(openai_server), [get_weather], checkpointer=MemorySaver())
    result = agent.invoke({"messages": [HumanMessage("What's the weather in Paris?")]}, CFG)

    messages = result["messages"]
    assert [type(m).__name__ for m in messages] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    assert messages[2] == ToolMessage(
        content="It is sunny in Paris.",
        name="get_weather",
        tool_call_id="call_w",
        id=messages[2].id,
    )
    assert messages[-1].content == "It is sunny in Paris today."
    # The second request carried the tool result back with the call's id.
    second = openai_server.requests[1]["messages"]
    assert second[1]["tool_calls"][0]["id"] == "call_w"
    assert second[2] == {
        "role": "tool",
        "content": "It is sunny in Paris.",
        "tool_call_id": "call_w",
    }
    assert [t["function"]["name"] for t in openai_server.requests[0]["tools"]] == ["get_weather"]
    assert agent.get_state(CFG).values["messages"] == messages


def test_stream_messages_delivers_tokens_as_chunks(openai_server: OpenAIStub) -> None:  # noqa: F811
    openai_server.add(
        {"tool_calls": [{"name": "get_weather", "args": {"city": "Lima"}}]},
        "Sunny skies over Lima all day",
    )
    agent = create_react_agent(chat(openai_server), [get_weather], checkpointer=MemorySaver())
    items = list(
        agent.stream({"messages": [HumanMessage("Weather in Lima?")]}, CFG, stream_mode="messages")
    )
    agent_chunks = [
        m
        for m, meta in items
        if isinstance(m, AIMessageChunk) and meta.get("langgraph_node") == "agent"
    ]
    tokens = [m.content for m in agent_chunks if m.content]
    assert tokens == ["Sunny", " skies", " over", " Lima", " all", " day"]
    assert any(m.tool_call_chunks for m in agent_chunks)
    assert all(r.get("stream") is True for r in openai_server.requests)
    final = agent.get_state(CFG).values["messages"]
    assert final[-1].content == "Sunny skies over Lima all day"
    assert final[1].tool_calls[0]["args"] == {"city": "Lima"}


def test_approval_before_tools_with_a_real_client(openai_server: OpenAIStub) -> None:  # noqa: F811
    openai_server.add(
        {"tool_calls": [{"name": "get_weather", "args": {"city": "Kyiv"}}]},
        "Done.",
    )
    agent = create_react_agent(
        chat(openai_server), [get_weather], checkpointer=MemorySaver(), interrupt_before=["tools"]
    )
    agent.invoke({"messages": [HumanMessage("Weather in Kyiv?")]}, CFG)
    assert agent.get_state(CFG).next == ("tools",)
    assert len(openai_server.requests) == 1
    result = agent.invoke(None, CFG)
    assert result["messages"][-1].content == "Done."
    assert result["messages"][2].content == "It is sunny in Kyiv."


async def test_async_agent_round_trip(openai_server: OpenAIStub) -> None:  # noqa: F811
    openai_server.add(
        {"tool_calls": [{"name": "get_weather", "args": {"city": "Quito"}}]},
        "Quito is sunny.",
    )
    agent = create_react_agent(chat(openai_server), [get_weather], checkpointer=MemorySaver())
    result = await agent.ainvoke({"messages": [HumanMessage("Quito?")]}, CFG)
    assert result["messages"][-1].content == "Quito is sunny."
    assert result["messages"][2].content == "It is sunny in Quito."
