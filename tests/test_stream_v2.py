"""stream(..., version="v2"): typed dict parts; GraphOutput's deprecated dict access."""

from __future__ import annotations

import operator
from typing import Annotated

import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict

from threadloom.checkpoint.memory import MemorySaver
from threadloom.graph import START, StateGraph
from threadloom.types import GraphOutput, Interrupt, interrupt
from threadloom.warnings import LangGraphDeprecatedSinceV11


class S(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def _graph(checkpointer=None):  # type: ignore[no-untyped-def]
    builder = StateGraph(S)
    builder.add_node("a", lambda s: {"log": ["a"]})
    builder.add_node("b", lambda s: {"log": [interrupt("ok?")]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    return builder.compile(checkpointer=checkpointer)


def test_v2_parts_have_type_ns_data_and_values_carry_interrupts() -> None:
    graph = _graph(MemorySaver())
    config = {"configurable": {"thread_id": "1"}}
    parts = list(graph.stream({"log": []}, config, stream_mode=["values", "updates"],
                              version="v2"))
    assert all({"type", "ns", "data"} <= p.keys() and p["ns"] == () for p in parts)
    values = [p for p in parts if p["type"] == "values"]
    assert all("__interrupt__" not in p["data"] for p in values)
    assert values[0]["interrupts"] == ()
    assert [i.value for i in values[-1]["interrupts"]] == ["ok?"]
    assert [p["data"] for p in parts if p["type"] == "updates"][0] == {"a": {"log": ["a"]}}
    assert graph.invoke({"log": []}, {"configurable": {"thread_id": "2"}},
                        stream_mode="updates", version="v2")[0]["type"] == "updates"


def test_v2_values_use_the_output_schema_type() -> None:
    class M(BaseModel):
        n: int = 0

    builder = StateGraph(M)
    builder.add_node("inc", lambda s: {"n": s.n + 1})
    builder.add_edge(START, "inc")
    parts = list(builder.compile().stream({"n": 1}, stream_mode="values", version="v2"))
    assert parts[-1]["data"] == M(n=2)


def test_graph_output_dict_access_is_deprecated() -> None:
    out = GraphOutput(value={"k": 1}, interrupts=(Interrupt("q", id="i"),))
    with pytest.warns(LangGraphDeprecatedSinceV11, match=r"result\[key\]"):
        assert out["k"] == 1
    with pytest.warns(LangGraphDeprecatedSinceV11, match="key in result"):
        assert "__interrupt__" in out


def test_checkpoint_during_maps_to_durability_with_a_warning() -> None:
    from threadloom.warnings import LangGraphDeprecatedSinceV10

    class D(TypedDict, total=False):
        durability: str

    builder = StateGraph(D)
    builder.add_node("n", lambda s, config: {
        "durability": config["configurable"]["__pregel_durability"]})
    builder.add_edge(START, "n")
    graph = builder.compile()
    assert graph.invoke({}, durability="sync") == {"durability": "sync"}
    for during, expected in ((True, "async"), (False, "exit")):
        with pytest.warns(LangGraphDeprecatedSinceV10, match="checkpoint_during"):
            assert graph.invoke({}, checkpoint_during=during) == {"durability": expected}


def test_deprecated_interrupt_id_and_previous_import() -> None:
    from threadloom.warnings import LangGraphDeprecatedSinceV10

    with pytest.warns(LangGraphDeprecatedSinceV10, match="`interrupt_id` is deprecated"):
        assert Interrupt("q", id="abc").interrupt_id == "abc"
    with pytest.warns(LangGraphDeprecatedSinceV10, match="PREVIOUS"):
        from threadloom.constants import PREVIOUS  # noqa: F401
