"""A compiled graph reports its context schema; the config-schema accessors are deprecated."""

from __future__ import annotations

import pytest
from typing_extensions import TypedDict

from threadloom.graph import START, StateGraph
from threadloom.warnings import LangGraphDeprecatedSinceV10


class _State(TypedDict):
    x: int


class _Context(TypedDict):
    model: str


def _graph():
    builder = StateGraph(_State, context_schema=_Context)
    return builder.add_node("n", lambda s: s).add_edge(START, "n").compile()


def test_context_schema_and_its_json_schema() -> None:
    graph = _graph()
    assert graph.context_schema is _Context
    assert graph.get_context_jsonschema()["properties"] == {
        "model": {"title": "Model", "type": "string"}
    }


def test_config_schema_accessors_warn() -> None:
    graph = _graph()
    with pytest.warns(LangGraphDeprecatedSinceV10, match="`config_schema` is deprecated"):
        assert graph.config_schema() is not None
    with pytest.warns(LangGraphDeprecatedSinceV10, match="`get_config_jsonschema` is deprecated"):
        assert isinstance(graph.get_config_jsonschema(), dict)
