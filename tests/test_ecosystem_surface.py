"""What LangChain v1 agents and the LangGraph agent libraries need of threadloom's API:
graph-level stream transformers, ``omit_payload``, type parameters for annotations and the
older ``utils`` import paths."""

from __future__ import annotations

import operator
from typing import Annotated, Any

import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict

from threadloom.checkpoint.base import BaseCheckpointSaver
from threadloom.graph import END, START, StateGraph
from threadloom.graph.state import CompiledStateGraph
from threadloom.prebuilt import InjectedState, ToolNode, ToolRuntime
from threadloom.pregel import Pregel
from threadloom.stream import CustomTransformer, UpdatesTransformer
from threadloom.types import omit_payload


class WeatherArgs(BaseModel):
    city: str


def weather(city: str, state: Annotated[Any, InjectedState], runtime: ToolRuntime) -> str:
    return f"{city}: {len(state['messages'])} message(s), call {runtime.tool_call_id}"


class State(TypedDict):
    value: str
    items: Annotated[list[str], operator.add]


def _graph(**compile_kwargs: Any):
    def node(state: State) -> dict[str, Any]:
        from threadloom.config import get_stream_writer

        get_stream_writer()({"status": "working"})
        return {"value": state["value"] + "A", "items": ["A"]}

    return (
        StateGraph(State).add_node("a", node).add_edge(START, "a").add_edge("a", END)
        .compile(**compile_kwargs)
    )


def test_compile_transformers_reach_every_v3_event_stream():
    graph = _graph(transformers=[CustomTransformer])
    run = graph.stream_events({"value": "", "items": []}, version="v3")
    assert list(run.custom) == [{"status": "working"}]
    # per-call transformers come on top of the graph's own
    run = graph.stream_events({"value": "", "items": []}, version="v3",
                              transformers=[UpdatesTransformer])
    seen = list(run.interleave("custom", "updates"))
    assert ("custom", {"status": "working"}) in seen
    assert ("updates", {"a": {"value": "A", "items": ["A"]}}) in seen


def test_compile_refuses_a_wrong_transformer_at_once():
    with pytest.raises(TypeError, match="transformers="):
        _graph(transformers=[42])


def test_without_compile_transformers_custom_is_not_projected():
    run = _graph().stream_events({"value": "", "items": []}, version="v3")
    with pytest.raises(AttributeError):
        run.custom  # noqa: B018


def test_omit_payload_records_nothing():
    assert omit_payload({"messages": ["secret"]}) == {}


def test_type_parameters_serve_annotations():
    from threadloom.typing import ContextT, StateT

    assert BaseCheckpointSaver[str] is not None
    assert CompiledStateGraph[Any, None, Any, Any] is not None
    assert Pregel[Any] is not None  # the other parameters have defaults
    assert ContextT.__default__ is None and StateT.__name__ == "StateT"


def test_older_utils_paths_and_private_names():
    from threadloom._internal._runnable import RunnableCallable, RunnableLike
    from threadloom._internal._typing import DeprecatedKwargs
    from threadloom.utils import config as utils_config
    from threadloom.utils.runnable import RunnableCallable as Old

    assert Old is RunnableCallable and RunnableLike is not None
    assert DeprecatedKwargs.__annotations__ == {}
    assert callable(utils_config.patch_configurable) and callable(utils_config.get_config)


def test_tool_node_settings_under_their_private_names():
    node = ToolNode([], handle_tool_errors=False, messages_key="history")
    assert node._handle_tool_errors is False
    assert node._messages_key == "history"


def test_an_argument_named_runtime_gets_the_tool_runtime():
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool

    from threadloom.prebuilt import ToolRuntime

    seen = {}

    @tool
    def probe(x: int, runtime: Any) -> str:
        """Look at the runtime."""
        seen["runtime"] = runtime
        return f"got {x}"

    node = ToolNode([probe])
    call = {"name": "probe", "args": {"x": 42}, "id": "c1", "type": "tool_call"}
    out = node.invoke({"messages": [AIMessage("", tool_calls=[call])]})
    assert out["messages"][0].content == "got 42"
    assert isinstance(seen["runtime"], ToolRuntime) and seen["runtime"].tool_call_id == "c1"


def test_injections_found_in_the_function_when_args_schema_leaves_them_out():
    from langchain_core.messages import AIMessage
    from langchain_core.tools import StructuredTool

    node = ToolNode([StructuredTool.from_function(
        func=weather, name="weather", description="Weather.", args_schema=WeatherArgs,
        infer_schema=False)])
    call = {"name": "weather", "args": {"city": "Oslo"}, "id": "c9", "type": "tool_call"}
    out = node.invoke({"messages": [AIMessage("", tool_calls=[call])]})
    assert out["messages"][0].content == "Oslo: 1 message(s), call c9"
