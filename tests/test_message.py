"""Tests for ``threadloom.graph.message``."""

from __future__ import annotations

import copy
import inspect
import typing
import uuid
from typing import Annotated

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    HumanMessageChunk,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)

from threadloom.graph.message import (
    REMOVE_ALL_MESSAGES,
    AnyMessage,
    MessagesState,
    add_messages,
)


def _ids(messages: list[BaseMessage]) -> list[str | None]:
    return [m.id for m in messages]


def _contents(messages: list[BaseMessage]) -> list[object]:
    return [m.content for m in messages]


# --- constants / signature -------------------------------------------------


def test_remove_all_constant() -> None:
    assert REMOVE_ALL_MESSAGES == "__remove_all__"


def test_signature_has_exactly_two_positional_params() -> None:
    params = list(inspect.signature(add_messages).parameters.values())
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    assert [p.name for p in positional] == ["left", "right"]
    assert not any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    fmt = inspect.signature(add_messages).parameters["format"]
    assert fmt.kind is inspect.Parameter.KEYWORD_ONLY
    assert fmt.default is None


def test_has_docstring() -> None:
    assert add_messages.__doc__
    assert "RemoveMessage" in add_messages.__doc__
    assert MessagesState.__doc__


# --- basic merging ---------------------------------------------------------


def test_append_new_messages() -> None:
    left = [HumanMessage(content="Hello", id="1")]
    right = [AIMessage(content="Hi there!", id="2")]
    result = add_messages(left, right)
    assert _ids(result) == ["1", "2"]
    assert _contents(result) == ["Hello", "Hi there!"]
    assert isinstance(result[0], HumanMessage)
    assert isinstance(result[1], AIMessage)


def test_empty_sides() -> None:
    msg = HumanMessage(content="x", id="1")
    assert add_messages([], []) == []
    assert add_messages([], [msg]) == [msg]
    assert add_messages([msg], []) == [msg]


def test_replace_in_place_keeps_position() -> None:
    left = [
        HumanMessage(content="a", id="1"),
        AIMessage(content="b", id="2"),
        HumanMessage(content="c", id="3"),
    ]
    right = [AIMessage(content="B!", id="2"), HumanMessage(content="d", id="4")]
    result = add_messages(left, right)
    assert _ids(result) == ["1", "2", "3", "4"]
    assert _contents(result) == ["a", "B!", "c", "d"]
    assert result[1] is right[0]


def test_duplicate_ids_within_right_last_wins() -> None:
    right = [HumanMessage(content="first", id="x"), HumanMessage(content="second", id="x")]
    result = add_messages([], right)
    assert _ids(result) == ["x"]
    assert _contents(result) == ["second"]


def test_single_message_not_in_list_is_wrapped() -> None:
    left = HumanMessage(content="a", id="1")
    right = AIMessage(content="b", id="2")
    result = add_messages(left, right)
    assert isinstance(result, list)
    assert _ids(result) == ["1", "2"]


def test_single_tuple_and_string_are_wrapped() -> None:
    result = add_messages("hello", ("ai", "hi"))
    assert [type(m) for m in result] == [HumanMessage, AIMessage]
    assert _contents(result) == ["hello", "hi"]


# --- id filling ------------------------------------------------------------


def test_missing_ids_are_filled_with_uuid_strings() -> None:
    left = [HumanMessage(content="a")]
    right = [AIMessage(content="b"), HumanMessage(content="c")]
    result = add_messages(left, right)
    assert len(result) == 3
    ids = _ids(result)
    for message_id in ids:
        assert isinstance(message_id, str)
        uuid.UUID(message_id)  # valid UUID text
    assert len(set(ids)) == 3


def test_existing_ids_are_kept() -> None:
    result = add_messages([HumanMessage(content="a", id="keep-me")], [])
    assert _ids(result) == ["keep-me"]


def test_messages_without_ids_are_always_appended() -> None:
    left = [HumanMessage(content="same")]
    result = add_messages(left, [HumanMessage(content="same")])
    assert _contents(result) == ["same", "same"]
    assert result[0].id != result[1].id


# --- coercion --------------------------------------------------------------


def test_tuple_coercion_roles() -> None:
    result = add_messages(
        [],
        [
            ("human", "h"),
            ("user", "u"),
            ("ai", "a"),
            ("assistant", "as"),
            ("system", "s"),
        ],
    )
    assert [type(m) for m in result] == [
        HumanMessage,
        HumanMessage,
        AIMessage,
        AIMessage,
        SystemMessage,
    ]
    assert _contents(result) == ["h", "u", "a", "as", "s"]
    assert all(isinstance(m.id, str) for m in result)


def test_dict_coercion_role_and_type_keys() -> None:
    result = add_messages(
        [{"role": "user", "content": "hi", "id": "u1"}],
        [
            {"role": "assistant", "content": "hello"},
            {"type": "human", "content": "typed"},
            {"role": "tool", "content": "42", "tool_call_id": "call-1"},
        ],
    )
    assert [type(m) for m in result] == [HumanMessage, AIMessage, HumanMessage, ToolMessage]
    assert result[0].id == "u1"
    assert _contents(result) == ["hi", "hello", "typed", "42"]
    tool_message = result[3]
    assert isinstance(tool_message, ToolMessage)
    assert tool_message.tool_call_id == "call-1"


def test_dict_with_id_replaces_existing_message() -> None:
    left = [HumanMessage(content="old", id="1"), AIMessage(content="x", id="2")]
    result = add_messages(left, {"role": "user", "content": "new", "id": "1"})
    assert _ids(result) == ["1", "2"]
    assert _contents(result) == ["new", "x"]


def test_string_coercion_to_human_message() -> None:
    result = add_messages(["one"], ["two", "three"])
    assert all(type(m) is HumanMessage for m in result)
    assert _contents(result) == ["one", "two", "three"]


def test_mixed_representations() -> None:
    result = add_messages(
        [HumanMessage(content="obj", id="1")],
        ["str", ("ai", "tuple"), {"role": "system", "content": "dict"}],
    )
    assert [type(m) for m in result] == [HumanMessage, HumanMessage, AIMessage, SystemMessage]
    assert _contents(result) == ["obj", "str", "tuple", "dict"]


def test_chunks_are_converted_to_full_messages() -> None:
    ai_chunk = AIMessageChunk(
        content="partial",
        id="c1",
        tool_call_chunks=[{"name": "search", "args": '{"q": "x"}', "id": "call-1", "index": 0}],
    )
    human_chunk = HumanMessageChunk(content="hey", id="c2")
    result = add_messages([human_chunk], ai_chunk)
    assert [type(m) for m in result] == [HumanMessage, AIMessage]
    assert _ids(result) == ["c2", "c1"]
    ai = result[1]
    assert isinstance(ai, AIMessage)
    assert not isinstance(ai, AIMessageChunk)
    assert ai.content == "partial"
    assert ai.tool_calls[0]["name"] == "search"
    assert ai.tool_calls[0]["args"] == {"q": "x"}
    assert ai.tool_calls[0]["id"] == "call-1"


def test_chunk_replaces_full_message_with_same_id() -> None:
    left = [AIMessage(content="old", id="a")]
    result = add_messages(left, [AIMessageChunk(content="new", id="a")])
    assert len(result) == 1
    assert type(result[0]) is AIMessage
    assert result[0].content == "new"


# --- removal ---------------------------------------------------------------


def test_remove_message() -> None:
    left = [
        HumanMessage(content="a", id="1"),
        AIMessage(content="b", id="2"),
        HumanMessage(content="c", id="3"),
    ]
    result = add_messages(left, [RemoveMessage(id="2")])
    assert _ids(result) == ["1", "3"]
    assert not any(isinstance(m, RemoveMessage) for m in result)


def test_remove_message_added_in_same_update() -> None:
    left = [HumanMessage(content="a", id="1")]
    right = [AIMessage(content="b", id="2"), RemoveMessage(id="2")]
    assert _ids(add_messages(left, right)) == ["1"]


def test_remove_then_readd_same_id_keeps_message() -> None:
    left = [HumanMessage(content="a", id="1"), AIMessage(content="b", id="2")]
    right = [RemoveMessage(id="1"), HumanMessage(content="a2", id="1")]
    result = add_messages(left, right)
    assert _ids(result) == ["1", "2"]
    assert _contents(result) == ["a2", "b"]


def test_remove_unknown_id_raises() -> None:
    left = [HumanMessage(content="a", id="1")]
    with pytest.raises(ValueError) as excinfo:
        add_messages(left, [RemoveMessage(id="nope")])
    assert str(excinfo.value) == (
        "Attempting to delete a message with an ID that doesn't exist ('nope')"
    )


def test_remove_all_messages() -> None:
    left = [HumanMessage(content="a", id="1"), AIMessage(content="b", id="2")]
    result = add_messages(left, [RemoveMessage(id=REMOVE_ALL_MESSAGES)])
    assert result == []


def test_remove_all_with_messages_before_and_after_marker() -> None:
    left = [HumanMessage(content="a", id="1"), AIMessage(content="b", id="2")]
    right = [
        HumanMessage(content="before", id="3"),
        AIMessage(content="replaces b but is dropped", id="2"),
        RemoveMessage(id=REMOVE_ALL_MESSAGES),
        SystemMessage(content="after-1", id="4"),
        HumanMessage(content="after-2", id="5"),
    ]
    result = add_messages(left, right)
    assert _ids(result) == ["4", "5"]
    assert _contents(result) == ["after-1", "after-2"]
    assert not any(isinstance(m, RemoveMessage) for m in result)


def test_remove_all_uses_last_marker() -> None:
    right = [
        HumanMessage(content="x", id="1"),
        RemoveMessage(id=REMOVE_ALL_MESSAGES),
        HumanMessage(content="y", id="2"),
        RemoveMessage(id=REMOVE_ALL_MESSAGES),
        HumanMessage(content="z", id="3"),
    ]
    result = add_messages([HumanMessage(content="w", id="0")], right)
    assert _ids(result) == ["3"]


def test_remove_all_messages_after_marker_get_ids() -> None:
    result = add_messages(
        [HumanMessage(content="a", id="1")],
        [RemoveMessage(id=REMOVE_ALL_MESSAGES), "fresh"],
    )
    assert len(result) == 1
    assert result[0].content == "fresh"
    assert isinstance(result[0].id, str)


# --- immutability ----------------------------------------------------------


def test_left_list_not_mutated() -> None:
    left = [HumanMessage(content="a", id="1"), AIMessage(content="b", id="2")]
    snapshot = copy.deepcopy(left)
    left_ref = list(left)
    right = [
        AIMessage(content="B", id="2"),
        HumanMessage(content="c", id="3"),
        RemoveMessage(id="1"),
    ]
    result = add_messages(left, right)

    assert result is not left
    assert left == snapshot
    assert all(a is b for a, b in zip(left, left_ref, strict=True))
    assert _contents(left) == ["a", "b"]
    assert _ids(result) == ["2", "3"]
    assert _contents(result) == ["B", "c"]


def test_left_list_not_mutated_by_remove_all() -> None:
    left = [HumanMessage(content="a", id="1")]
    add_messages(left, [RemoveMessage(id=REMOVE_ALL_MESSAGES)])
    assert _ids(left) == ["1"]


def test_result_is_new_list_even_without_changes() -> None:
    left = [HumanMessage(content="a", id="1")]
    result = add_messages(left, [])
    assert result == left
    assert result is not left
    result.append(HumanMessage(content="b", id="2"))
    assert len(left) == 1


def test_large_merge_is_linear_enough() -> None:
    left = [HumanMessage(content=str(i), id=str(i)) for i in range(20_000)]
    right = [AIMessage(content=f"new {i}", id=str(i)) for i in range(0, 20_000, 2)]
    right += [HumanMessage(content="tail", id="tail")]
    result = add_messages(left, right)
    assert len(result) == 20_001
    assert result[0].content == "new 0"
    assert result[1].content == "1"
    assert result[-1].id == "tail"


# --- argument validation ---------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right", "missing"),
    [
        (None, [HumanMessage(content="a")], "left"),
        ([HumanMessage(content="a")], None, "right"),
        (None, None, "left"),
    ],
)
def test_none_side_raises(left: object, right: object, missing: str) -> None:
    with pytest.raises(ValueError, match=missing):
        add_messages(left, right)  # type: ignore[arg-type]


def test_only_one_side_given_raises() -> None:
    with pytest.raises(ValueError, match="right"):
        add_messages([HumanMessage(content="a")])  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="left"):
        add_messages(right=[HumanMessage(content="a")])  # type: ignore[call-overload]


def test_bad_format_raises_naming_allowed_values() -> None:
    with pytest.raises(ValueError) as excinfo:
        add_messages([], [], format="anthropic")  # type: ignore[arg-type]
    message = str(excinfo.value)
    assert "anthropic" in message
    assert "langchain-openai" in message
    assert "None" in message


def test_bad_format_raises_when_configuring_reducer() -> None:
    with pytest.raises(ValueError, match="langchain-openai"):
        add_messages(format="bogus")  # type: ignore[call-overload]


# --- configured reducer / format -------------------------------------------


def test_keyword_only_call_returns_reducer() -> None:
    reducer = add_messages(format=None)
    assert callable(reducer)
    result = reducer([HumanMessage(content="a", id="1")], [AIMessage(content="b", id="2")])
    assert _ids(result) == ["1", "2"]


def test_no_argument_call_returns_reducer() -> None:
    reducer = add_messages()
    assert callable(reducer)
    assert _contents(reducer(["a"], ["b"])) == ["a", "b"]


def test_configured_openai_reducer_formats_content() -> None:
    reducer = add_messages(format="langchain-openai")
    params = list(inspect.signature(reducer).parameters)
    assert params == ["left", "right"]
    left = [HumanMessage(content="hi", id="1")]
    right = [
        AIMessage(
            content="",
            id="2",
            tool_calls=[{"name": "f", "args": {"a": 1}, "id": "call-1"}],
        ),
        ToolMessage(content="result", tool_call_id="call-1", id="3"),
        SystemMessage(content="sys", id="4"),
    ]
    result = reducer(left, right)
    assert _ids(result) == ["1", "2", "3", "4"]
    assert [type(m) for m in result] == [HumanMessage, AIMessage, ToolMessage, SystemMessage]
    assert result[0].content == "hi"  # plain text stays a string, as OpenAI reads it
    ai = result[1]
    assert isinstance(ai, AIMessage)
    assert ai.tool_calls[0]["name"] == "f"
    assert ai.tool_calls[0]["args"] == {"a": 1}
    tool = result[2]
    assert isinstance(tool, ToolMessage)
    assert tool.tool_call_id == "call-1"
    assert tool.content == "result"
    assert result[3].content == "sys"
    # the input messages themselves are left untouched
    assert left[0].content == "hi"


def test_openai_format_keeps_block_content() -> None:
    blocks = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    result = add_messages([], [HumanMessage(content=blocks, id="1")], format="langchain-openai")
    assert result[0].content == blocks
    assert result[0].id == "1"


def test_default_format_leaves_string_content() -> None:
    result = add_messages([], [HumanMessage(content="plain", id="1")])
    assert result[0].content == "plain"


# --- MessagesState ----------------------------------------------------------


def test_messages_state_annotation() -> None:
    hints = typing.get_type_hints(MessagesState, include_extras=True)
    assert set(hints) == {"messages"}
    annotated = hints["messages"]
    assert typing.get_origin(annotated) is Annotated
    base, *metadata = typing.get_args(annotated)
    assert typing.get_origin(base) is list
    assert typing.get_args(base) == (AnyMessage,)
    assert metadata == [add_messages]


def test_messages_state_subclass_adds_keys() -> None:
    class State(MessagesState):
        documents: list[str]

    hints = typing.get_type_hints(State, include_extras=True)
    assert set(hints) == {"messages", "documents"}
    state: State = {"messages": [], "documents": ["d"]}
    reducer = typing.get_args(hints["messages"])[1]
    state["messages"] = reducer(state["messages"], ("user", "hello"))
    assert _contents(state["messages"]) == ["hello"]


def test_openai_format_reads_anthropic_style_tool_blocks_as_openai_does() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                         "data": "1234"}}
    right = [
        AIMessage(content=[{"type": "tool_use", "name": "f", "input": {"a": 1}, "id": "t1"}],
                  id="ai"),
        HumanMessage(content=[{"type": "tool_result", "tool_use_id": "t1", "is_error": False,
                               "content": [image]}], id="h"),
    ]
    ai, tool = add_messages([], right, format="langchain-openai")
    assert isinstance(ai, AIMessage) and ai.id == "ai" and ai.content == ""
    assert [(c["name"], c["args"], c["id"]) for c in ai.tool_calls] == [("f", {"a": 1}, "t1")]
    assert isinstance(tool, ToolMessage) and tool.tool_call_id == "t1"
    assert tool.content == [{"type": "image_url",
                             "image_url": {"url": "data:image/jpeg;base64,1234"}}]
