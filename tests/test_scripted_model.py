"""ScriptedChatModel: the deterministic chat model used by tests, demos and offline runs."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from threadloom.prebuilt import ScriptedChatModel
from threadloom.prebuilt.scripted_model import ScriptExhaustedError


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def test_plays_script_in_order_and_errors_when_exhausted() -> None:
    model = ScriptedChatModel(["one", AIMessage(content="two"), {"content": "three"}])
    assert [model.invoke("x").content for _ in range(3)] == ["one", "two", "three"]
    with pytest.raises(ScriptExhaustedError, match="called 4 times .* 3 responses"):
        model.invoke("x")


def test_cycle_and_repeat_last() -> None:
    cycling = ScriptedChatModel(["a", "b"], when_exhausted="cycle")
    assert [cycling.invoke("x").content for _ in range(5)] == ["a", "b", "a", "b", "a"]
    repeating = ScriptedChatModel(["a", "b"], when_exhausted="repeat_last")
    assert [repeating.invoke("x").content for _ in range(4)] == ["a", "b", "b", "b"]


def test_keyword_construction_and_reset() -> None:
    model = ScriptedChatModel(responses=["a"])
    assert model.invoke("x").content == "a"
    model.reset()
    assert model.invoke("x").content == "a"
    assert len(model.calls) == 1


def test_callable_responder_sees_messages() -> None:
    def respond(messages: list) -> str:
        return f"you said {messages[-1].content}"

    model = ScriptedChatModel(respond)
    assert model.invoke([HumanMessage("hi")]).content == "you said hi"
    assert model.invoke("yo").content == "you said yo"
    assert [m[-1].content for m in model.calls] == ["hi", "yo"]


def test_tool_calls_get_deterministic_ids() -> None:
    model = ScriptedChatModel(
        [
            {"tool_calls": [{"name": "add", "args": {"a": 1, "b": 2}}, {"name": "add"}]},
            {"tool_calls": [{"name": "add", "args": {}, "id": "mine"}]},
            AIMessage(content="", tool_calls=[{"name": "add", "args": {}, "id": None}]),
        ]
    )
    first = model.invoke("x")
    assert [c["id"] for c in first.tool_calls] == ["call_1", "call_2"]
    assert first.tool_calls[0]["args"] == {"a": 1, "b": 2}
    assert first.tool_calls[1]["args"] == {}
    assert model.invoke("x").tool_calls[0]["id"] == "mine"
    assert model.invoke("x").tool_calls[0]["id"] == "call_3"


def test_script_entries_are_not_mutated() -> None:
    scripted = AIMessage(content="same")
    model = ScriptedChatModel([scripted], when_exhausted="cycle")
    out = model.invoke("x")
    out.name = "changed"
    assert scripted.name is None
    assert model.invoke("x").name is None


def test_bad_entries_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        ScriptedChatModel([{"text": "x"}]).invoke("x")
    with pytest.raises(TypeError, match="AIMessage, a str or a dict"):
        ScriptedChatModel([42]).invoke("x")
    with pytest.raises(ValueError, match="'name' and 'args'"):
        ScriptedChatModel([{"tool_calls": [{"args": {}}]}]).invoke("x")


def test_bind_tools_records_tools_and_passes_them_as_kwargs() -> None:
    model = ScriptedChatModel(["ok"])
    bound = model.bind_tools([add], tool_choice="any")
    assert [t["function"]["name"] for t in model.bound_tools] == ["add"]
    assert bound.kwargs["tools"][0]["function"]["name"] == "add"  # type: ignore[attr-defined]
    assert bound.kwargs["tool_choice"] == "any"  # type: ignore[attr-defined]
    assert bound.invoke("x").content == "ok"


def test_with_structured_output_works_through_bind_tools() -> None:
    class Weather(BaseModel):
        city: str
        degrees: int

    model = ScriptedChatModel(
        [{"tool_calls": [{"name": "Weather", "args": {"city": "Paris", "degrees": 21}}]}]
    )
    assert model.with_structured_output(Weather).invoke("q") == Weather(city="Paris", degrees=21)


def test_stream_yields_word_tokens_and_last_chunk() -> None:
    model = ScriptedChatModel(["Hello there, world"])
    chunks = list(model.stream("x"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert [c.content for c in chunks] == ["Hello", " there,", " world", ""]
    assert chunks[-1].chunk_position == "last"
    assert len({c.id for c in chunks}) == 1


def test_stream_rebuilds_tool_calls_from_chunks() -> None:
    model = ScriptedChatModel(
        [{"content": "Let me add", "tool_calls": [{"name": "add", "args": {"a": 1, "b": 2}}]}]
    )
    merged = None
    count = 0
    for chunk in model.stream("x"):
        merged = chunk if merged is None else merged + chunk
        count += 1
    assert count > 3
    assert merged is not None
    assert merged.content == "Let me add"
    assert merged.tool_calls == [
        {"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1", "type": "tool_call"}
    ]


async def test_async_invoke_and_stream() -> None:
    model = ScriptedChatModel(["one two", "three"])
    assert (await model.ainvoke("x")).content == "one two"
    tokens = [c.content async for c in model.astream("x")]
    assert tokens == ["three", ""]


def test_invoke_with_streaming_callback_uses_stream() -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    tokens: list[str] = []

    class Collect(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: object) -> None:
            tokens.append(token)

    model = ScriptedChatModel(["a b c"], streaming=True)
    message = model.invoke("x", {"callbacks": [Collect()]})
    assert message.content == "a b c"
    assert tokens[:3] == ["a", " b", " c"]
