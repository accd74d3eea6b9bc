"""Renamed keyword arguments still work and warn with LangGraph's warning classes; a
node's ``config`` parameter annotated as something else than ``RunnableConfig`` warns."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from typing_extensions import TypedDict

from threadloom.func import entrypoint, task
from threadloom.graph import START, StateGraph
from threadloom.types import RetryPolicy
from threadloom.warnings import LangGraphDeprecatedSinceV05, LangGraphDeprecatedSinceV10


class S(TypedDict):
    x: int


def test_renamed_graph_arguments_warn_and_still_apply() -> None:
    with pytest.warns(LangGraphDeprecatedSinceV05, match="`input` is deprecated .* `input_schema`"):
        builder = StateGraph(S, input=S)
    assert builder.input_schema is S
    with pytest.warns(LangGraphDeprecatedSinceV05, match="`output` is deprecated .* `output_sch"):
        assert StateGraph(S, output=S).output_schema is S
    with pytest.warns(LangGraphDeprecatedSinceV10, match="`config_schema` is deprecated"):
        assert StateGraph(S, config_schema=S).context_schema is S
    policy = RetryPolicy(max_attempts=2)
    with pytest.warns(LangGraphDeprecatedSinceV05, match="`retry` is deprecated .* `retry_pol"):
        builder.add_node("n", lambda s: s, retry=policy)
    assert builder.nodes["n"].retry_policy == (policy,)
    with pytest.warns(LangGraphDeprecatedSinceV05, match="`input` is deprecated"):
        builder.add_node("m", lambda s: s, input=S)


def test_renamed_functional_arguments_warn() -> None:
    with pytest.warns(LangGraphDeprecatedSinceV05, match="`retry` is deprecated"):

        @task(retry=RetryPolicy())
        def double(x: int) -> int:
            return 2 * x

    with pytest.warns(LangGraphDeprecatedSinceV10, match="`config_schema` is deprecated"):

        @entrypoint(config_schema=S)
        def flow(x: int) -> int:
            return double(x).result()

    assert flow.context_schema is S
    with pytest.warns(LangGraphDeprecatedSinceV10, match="Use `get_context_jsonschema`"):
        assert flow.config_schema() is not None


def test_a_mistyped_config_parameter_warns_once_when_the_node_is_added() -> None:
    builder = StateGraph(S)

    def as_dict(state: S, config: dict) -> dict:
        return {}

    async def as_any(state: S, config: Any) -> dict:
        return {}

    with pytest.warns(UserWarning, match="not 'dict'"):
        builder.add_node(as_dict)
    with pytest.warns(UserWarning, match="not 'typing.Any'|not 'Any'"):
        builder.add_node(as_any)

    def typed(state: S, config: RunnableConfig) -> dict:
        return {}

    def optional(state: S, config: RunnableConfig | None) -> dict:
        return {}

    def untyped(state: S, config) -> dict:  # noqa: ANN001
        return {}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        builder.add_node(typed).add_node(optional).add_node(untyped)
    builder.add_edge(START, "typed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert builder.compile().invoke({"x": 1}) == {"x": 1}
