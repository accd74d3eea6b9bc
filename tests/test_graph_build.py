"""StateGraph building: schemas, reducers, nodes, edges, compile-time validation, drawing.

Pins LangGraph's documented behaviour (spec: ../shared/reference/langgraph-api.md §1.1).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Literal, NotRequired, TypedDict

import pytest
from pydantic import BaseModel

from threadloom.channels import EphemeralValue
from threadloom.checkpoint.memory import InMemorySaver, MemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.graph.state import StateGraph as StateGraphFromState
from threadloom.managed import RemainingSteps
from threadloom.types import Command

# -- schemas -----------------------------------------------------------------------


class LogState(TypedDict):
    x: int
    log: Annotated[list, operator.add]


def test_graph_module_exports() -> None:
    assert START == "__start__"
    assert END == "__end__"
    assert StateGraph is StateGraphFromState
    assert MemorySaver is InMemorySaver or issubclass(MemorySaver, InMemorySaver)


def test_typeddict_state_last_value_and_reducer() -> None:
    def a(state: LogState) -> dict:
        return {"x": state["x"] + 1, "log": ["a"]}

    def b(state: LogState) -> dict:
        return {"x": state["x"] * 10, "log": ["b"]}

    g = StateGraph(LogState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", END)
    app = g.compile()
    assert app.invoke({"x": 1, "log": ["in"]}) == {"x": 20, "log": ["in", "a", "b"]}


def test_reducer_initial_value_is_type_default() -> None:
    # Annotated[list, add] starts as [] so the first write is just appended.
    class S(TypedDict):
        log: Annotated[list, operator.add]
        total: Annotated[int, operator.add]

    g = StateGraph(S)
    g.add_node("a", lambda s: {"log": ["a"], "total": 5})
    g.add_edge(START, "a")
    assert g.compile().invoke({}) == {"log": ["a"], "total": 5}


def test_typeddict_total_false_missing_keys_absent() -> None:
    class S(TypedDict, total=False):
        x: int
        y: str

    seen = []

    def a(state: S) -> dict:
        seen.append(dict(state))
        return {"x": 2}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_edge(START, "a")
    out = g.compile().invoke({})
    assert seen == [{}]
    assert out == {"x": 2}


def test_typeddict_notrequired_key() -> None:
    class S(TypedDict):
        x: int
        note: NotRequired[str]

    g = StateGraph(S)
    g.add_node("a", lambda s: {"note": f"x={s['x']}"})
    g.add_edge(START, "a")
    assert g.compile().invoke({"x": 3}) == {"x": 3, "note": "x=3"}


def test_dataclass_state_node_gets_instance_and_output_is_dict() -> None:
    @dataclass
    class D:
        x: int = 0
        y: str = "d"
        items: Annotated[list, operator.add] = field(default_factory=list)

    seen = []

    def a(state: D) -> dict:
        seen.append(state)
        return {"x": state.x + 1, "items": ["a"]}

    g = StateGraph(D)
    g.add_node("a", a)
    g.add_edge(START, "a")
    out = g.compile().invoke(D(x=1))
    assert isinstance(seen[0], D)
    assert seen[0].x == 1
    assert isinstance(out, dict)
    assert out["x"] == 2
    assert out["items"] == ["a"]
    assert "y" not in out or out["y"] == "d"


def test_dataclass_state_keys_never_written_are_absent() -> None:
    # §2.19: StateGraph(D) with defaults returns {'x': 2} only (v1).
    @dataclass
    class D:
        x: int = 0
        y: str = "d"

    g = StateGraph(D)
    g.add_node("a", lambda s: {"x": 2})
    g.add_edge(START, "a")
    assert g.compile().invoke({}) == {"x": 2}


def test_pydantic_state() -> None:
    class P(BaseModel):
        x: int = 0
        log: Annotated[list, operator.add] = []

    seen = []

    def a(state: P) -> dict:
        seen.append(state)
        return {"x": state.x + 1, "log": ["a"]}

    g = StateGraph(P)
    g.add_node("a", a)
    g.add_edge(START, "a")
    out = g.compile().invoke({"x": 5})
    assert isinstance(seen[0], P)
    assert seen[0].x == 5
    assert out == {"x": 6, "log": ["a"]}


def test_pydantic_state_validates_input() -> None:
    from pydantic import ValidationError

    class P(BaseModel):
        x: int

    g = StateGraph(P)
    g.add_node("a", lambda s: {"x": s.x + 1})
    g.add_edge(START, "a")
    with pytest.raises(ValidationError):
        g.compile().invoke({"x": "not-an-int"})


def test_root_type_state() -> None:
    g = StateGraph(int)
    g.add_node("inc", lambda x: x + 1)
    g.add_node("double", lambda x: x * 2)
    g.add_edge(START, "inc")
    g.add_edge("inc", "double")
    assert g.compile().invoke(3) == 8


def test_root_annotated_reducer_state() -> None:
    g = StateGraph(Annotated[list, operator.add])
    g.add_node("a", lambda s: ["a"])
    g.add_node("b", lambda s: ["b"])
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    assert g.compile().invoke(["in"]) == ["in", "a", "b"]


def test_root_state_stream_updates() -> None:
    g = StateGraph(int)
    g.add_node("inc", lambda x: x + 1)
    g.add_edge(START, "inc")
    assert list(g.compile().stream(1, stream_mode="updates")) == [{"inc": 2}]


def _three_arg_reducer(a, b, c):  # noqa: ANN001, ANN202
    return a


class BadReducerState(TypedDict):
    x: Annotated[list, _three_arg_reducer]


def test_invalid_reducer_arity_raises_at_construction() -> None:
    with pytest.raises(ValueError, match="Invalid reducer"):
        StateGraph(BadReducerState)


def test_invalid_reducer_one_arg_raises() -> None:
    class S(TypedDict):
        x: Annotated[list, lambda a: a]

    with pytest.raises(ValueError, match="Invalid reducer signature"):
        StateGraph(S)


_reducer_calls: list[tuple[int, int]] = []


def _keep_max(old: int, new: int) -> int:
    _reducer_calls.append((old, new))
    return max(old, new)


class MaxState(TypedDict):
    m: Annotated[int, _keep_max]


def test_custom_reducer_receives_old_and_new() -> None:
    _reducer_calls.clear()
    calls = _reducer_calls
    g = StateGraph(MaxState)
    g.add_node("a", lambda s: {"m": 3})
    g.add_node("b", lambda s: {"m": 1})
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    assert g.compile().invoke({"m": 2}) == {"m": 3}
    assert calls[-2:] == [(2, 3), (3, 1)]


class ConflictA(TypedDict):
    k: Annotated[list, operator.add]


class ConflictB(TypedDict):
    k: Annotated[list, EphemeralValue]


def test_conflicting_reducer_channels_raise() -> None:
    with pytest.raises(ValueError, match="already exists with a different type"):
        StateGraph(ConflictA, input_schema=ConflictB, output_schema=ConflictA)


def test_later_schema_may_redeclare_key_as_plain() -> None:
    class PlainK(TypedDict):
        k: list

    g = StateGraph(ConflictA, input_schema=PlainK)
    g.add_node("a", lambda s: {"k": ["a"]})
    g.add_edge(START, "a")
    assert g.compile().invoke({"k": ["in"]}) == {"k": ["in", "a"]}


# -- input / output schemas and private keys ----------------------------------------


class In(TypedDict):
    question: str


class Out(TypedDict):
    answer: str


class Overall(TypedDict):
    question: str
    answer: str
    notes: str


class Private(TypedDict):
    secret: str


def test_input_output_schemas_and_private_channel() -> None:
    seen: dict[str, object] = {}

    def first(state: In) -> Private:
        seen["first"] = dict(state)
        return {"secret": state["question"].upper()}

    def second(state: Private) -> dict:
        seen["second"] = dict(state)
        return {"answer": f"answer to {state['secret']}", "notes": "n"}

    g = StateGraph(Overall, input_schema=In, output_schema=Out)
    g.add_node("first", first)
    g.add_node("second", second)
    g.add_edge(START, "first")
    g.add_edge("first", "second")
    app = g.compile()
    out = app.invoke({"question": "why", "ignored": 1})
    assert out == {"answer": "answer to WHY"}
    assert seen["first"] == {"question": "why"}
    assert seen["second"] == {"secret": "WHY"}


def test_input_schema_filters_input_keys() -> None:
    seen = []

    def node(state: Overall) -> dict:
        seen.append(dict(state))
        return {"answer": "a"}

    g = StateGraph(Overall, input_schema=In)
    g.add_node("node", node)
    g.add_edge(START, "node")
    out = g.compile().invoke({"question": "q", "notes": "should be dropped"})
    assert seen == [{"question": "q"}]
    assert out == {"question": "q", "answer": "a"}


def test_explicit_node_input_schema() -> None:
    seen = []

    def node(state: dict) -> dict:
        seen.append(dict(state))
        return {"answer": "a"}

    g = StateGraph(Overall)
    g.add_node("node", node, input_schema=In)
    g.add_edge(START, "node")
    g.compile().invoke({"question": "q", "notes": "n"})
    assert seen == [{"question": "q"}]


def test_deprecated_input_output_kwargs_still_work() -> None:
    g = StateGraph(Overall, input=In, output=Out)
    g.add_node("n", lambda s: {"answer": s["question"] + "!"})
    g.add_edge(START, "n")
    assert g.compile().invoke({"question": "hi"}) == {"answer": "hi!"}


def test_node_return_keys_outside_schema_are_dropped() -> None:
    g = StateGraph(LogState)
    g.add_node("a", lambda s: {"x": 1, "unknown": 2})
    g.add_edge(START, "a")
    assert g.compile().invoke({"x": 0}) == {"x": 1, "log": []}


# -- add_node -------------------------------------------------------------------------


def test_add_node_infers_name_from_function() -> None:
    def my_node(state: LogState) -> dict:
        return {"log": ["my_node"]}

    g = StateGraph(LogState)
    g.add_node(my_node)
    g.add_edge(START, "my_node")
    app = g.compile()
    assert "my_node" in app.nodes
    assert app.invoke({"x": 0})["log"] == ["my_node"]


def test_add_node_infers_name_from_runnable() -> None:
    from langchain_core.runnables import RunnableLambda

    r = RunnableLambda(lambda s: {"log": ["r"]}, name="my_runnable")
    g = StateGraph(LogState)
    g.add_node(r)
    g.add_edge(START, "my_runnable")
    assert g.compile().invoke({"x": 0})["log"] == ["r"]


def test_add_node_returns_builder_for_chaining() -> None:
    g = StateGraph(LogState)
    assert g.add_node("a", lambda s: None) is g
    assert g.add_edge(START, "a") is g
    assert g.add_conditional_edges("a", lambda s: END) is g


def test_add_node_duplicate_name() -> None:
    g = StateGraph(LogState)
    g.add_node("a", lambda s: None)
    with pytest.raises(ValueError, match="Node `a` already present"):
        g.add_node("a", lambda s: None)


@pytest.mark.parametrize("name", [START, END])
def test_add_node_reserved_names(name: str) -> None:
    g = StateGraph(LogState)
    with pytest.raises(ValueError, match=f"Node `{name}` is reserved"):
        g.add_node(name, lambda s: None)


@pytest.mark.parametrize("name", ["a:b", "a|b"])
def test_add_node_reserved_characters(name: str) -> None:
    g = StateGraph(LogState)
    char = ":" if ":" in name else "|"
    with pytest.raises(ValueError, match=f"'{char}' is a reserved character"):
        g.add_node(name, lambda s: None)


# -- edges ----------------------------------------------------------------------------


def _log_node(name: str):  # noqa: ANN202
    def node(state: LogState) -> dict:
        return {"log": [name]}

    return node


def test_add_edge_end_as_source_and_start_as_target() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    with pytest.raises(ValueError, match="END cannot be a start node"):
        g.add_edge(END, "a")
    with pytest.raises(ValueError, match="START cannot be an end node"):
        g.add_edge("a", START)


def test_add_edge_list_source_requires_known_nodes_immediately() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_node("c", _log_node("c"))
    with pytest.raises(ValueError, match="Need to add_node `b` first"):
        g.add_edge(["a", "b"], "c")
    # single-source edges to/from unknown nodes are only checked at compile
    g.add_edge("zzz", "c")


def test_add_edge_list_source_barrier_waits_for_all() -> None:
    # a2 finishes one superstep after b; c runs exactly once, after both.
    calls = []

    def c(state: LogState) -> dict:
        calls.append(list(state["log"]))
        return {"log": ["c"]}

    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_node("a2", _log_node("a2"))
    g.add_node("b", _log_node("b"))
    g.add_node("c", c)
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge("a", "a2")
    g.add_edge(["a2", "b"], "c")
    out = g.compile().invoke({"x": 0})
    assert len(calls) == 1
    assert calls[0] == ["a", "b", "a2"]
    assert out["log"] == ["a", "b", "a2", "c"]


def test_add_conditional_edges_path_map_dict() -> None:
    def route(state: LogState) -> str:
        return "go_left" if state["x"] < 0 else "go_right"

    g = StateGraph(LogState)
    g.add_node("start", _log_node("start"))
    g.add_node("left", _log_node("left"))
    g.add_node("right", _log_node("right"))
    g.add_edge(START, "start")
    g.add_conditional_edges("start", route, {"go_left": "left", "go_right": "right"})
    app = g.compile()
    assert app.invoke({"x": -1})["log"] == ["start", "left"]
    assert app.invoke({"x": 1})["log"] == ["start", "right"]


def test_add_conditional_edges_path_map_list() -> None:
    g = StateGraph(LogState)
    g.add_node("start", _log_node("start"))
    g.add_node("left", _log_node("left"))
    g.add_node("right", _log_node("right"))
    g.add_edge(START, "start")
    g.add_conditional_edges("start", lambda s: "left" if s["x"] < 0 else "right",
                            ["left", "right"])
    app = g.compile()
    assert app.invoke({"x": -1})["log"] == ["start", "left"]
    assert app.invoke({"x": 1})["log"] == ["start", "right"]


def test_add_conditional_edges_path_map_unknown_key_is_keyerror() -> None:
    g = StateGraph(LogState)
    g.add_node("start", _log_node("start"))
    g.add_node("left", _log_node("left"))
    g.add_edge(START, "start")
    g.add_conditional_edges("start", lambda s: "nope", {"l": "left"})
    with pytest.raises(KeyError):
        g.compile().invoke({"x": 0})


def test_add_conditional_edges_returning_none_is_invalid() -> None:
    g = StateGraph(LogState)
    g.add_node("start", _log_node("start"))
    g.add_edge(START, "start")
    g.add_conditional_edges("start", lambda s: None)
    with pytest.raises(ValueError, match="Branch did not return a valid destination"):
        g.compile().invoke({"x": 0})


def test_add_conditional_edges_unknown_node_is_dropped_with_warning(caplog) -> None:  # noqa: ANN001
    g = StateGraph(LogState)
    g.add_node("start", _log_node("start"))
    g.add_edge(START, "start")
    g.add_conditional_edges("start", lambda s: "zzz")
    with caplog.at_level("WARNING"):
        out = g.compile().invoke({"x": 0})
    assert out["log"] == ["start"]
    assert "branch:to:zzz" in caplog.text


def test_add_conditional_edges_literal_return_used_for_drawing() -> None:
    def route(state: LogState) -> Literal["left", "__end__"]:
        return "left"

    g = StateGraph(LogState)
    g.add_node("start", _log_node("start"))
    g.add_node("left", _log_node("left"))
    g.add_node("right", _log_node("right"))
    g.add_edge(START, "start")
    g.add_conditional_edges("start", route)
    app = g.compile()
    assert app.invoke({"x": 0})["log"] == ["start", "left"]
    edges = {(e.source, e.target): e.conditional for e in app.get_graph().edges}
    assert edges[("start", "left")] is True
    assert edges[("start", END)] is True
    assert ("start", "right") not in edges


def test_two_lambda_branches_on_one_source_conflict() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_conditional_edges("a", lambda s: END)
    with pytest.raises(ValueError, match="already exists for node `a`"):
        g.add_conditional_edges("a", lambda s: END)


def test_two_named_branches_on_one_source_both_fire() -> None:
    def r1(state: LogState) -> str:
        return "b"

    def r2(state: LogState) -> str:
        return "c"

    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_node("b", _log_node("b"))
    g.add_node("c", _log_node("c"))
    g.add_edge(START, "a")
    g.add_conditional_edges("a", r1)
    g.add_conditional_edges("a", r2)
    assert g.compile().invoke({"x": 0})["log"] == ["a", "b", "c"]


def test_conditional_edge_path_may_take_config() -> None:
    def route(state: LogState, config) -> str:  # noqa: ANN001
        return config["configurable"]["target"]

    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_node("b", _log_node("b"))
    g.add_node("c", _log_node("c"))
    g.add_edge(START, "a")
    g.add_conditional_edges("a", route, ["b", "c"])
    app = g.compile()
    assert app.invoke({"x": 0}, {"configurable": {"target": "c"}})["log"] == ["a", "c"]


def test_conditional_entry_point() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_node("b", _log_node("b"))
    g.set_conditional_entry_point(lambda s: "b" if s["x"] else "a", ["a", "b"])
    app = g.compile()
    assert app.invoke({"x": 1})["log"] == ["b"]
    assert app.invoke({"x": 0})["log"] == ["a"]


def test_add_sequence_with_callables_and_tuples() -> None:
    def one(state: LogState) -> dict:
        return {"log": ["one"]}

    g = StateGraph(LogState)
    g.add_sequence([one, ("two", _log_node("two")), ("three", _log_node("three"))])
    g.add_edge(START, "one")
    app = g.compile()
    assert set(app.nodes) >= {"one", "two", "three"}
    assert app.invoke({"x": 0})["log"] == ["one", "two", "three"]


def test_add_sequence_does_not_add_start_edge() -> None:
    g = StateGraph(LogState)
    g.add_sequence([("a", _log_node("a"))])
    with pytest.raises(ValueError, match="entrypoint"):
        g.compile()


def test_add_sequence_errors() -> None:
    g = StateGraph(LogState)
    with pytest.raises(ValueError, match="Sequence requires at least one node"):
        g.add_sequence([])
    with pytest.raises(ValueError):
        g.add_sequence([("a", _log_node("a")), ("a", _log_node("a"))])


def test_set_entry_and_finish_point() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.set_entry_point("a")
    g.set_finish_point("a")
    app = g.compile()
    assert app.invoke({"x": 0}) == {"x": 0, "log": ["a"]}
    assert {(e.source, e.target) for e in app.get_graph().edges} == {
        (START, "a"),
        ("a", END),
    }


def test_node_without_outgoing_edge_ends_its_branch() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_node("unreachable", _log_node("u"))
    g.add_edge(START, "a")
    assert g.compile().invoke({"x": 0})["log"] == ["a"]


def test_defer_node_runs_after_all_branches() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_node("a2", _log_node("a2"))
    g.add_node("b", _log_node("b"))
    g.add_node("final", _log_node("final"), defer=True)
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge("a", "a2")
    g.add_edge("a2", "final")
    g.add_edge("b", "final")
    out = g.compile().invoke({"x": 0})
    assert out["log"] == ["a", "b", "a2", "final"]


# -- compile validation ---------------------------------------------------------------


def test_compile_requires_entrypoint() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    with pytest.raises(ValueError, match="Graph must have an entrypoint"):
        g.compile()


def test_compile_unknown_edge_source() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_edge(START, "a")
    g.add_edge("ghost", "a")
    with pytest.raises(ValueError, match="Found edge starting at unknown node 'ghost'"):
        g.compile()


def test_compile_unknown_edge_target() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_edge(START, "a")
    g.add_edge("a", "ghost")
    with pytest.raises(ValueError, match="Found edge ending at unknown node `ghost`"):
        g.compile()


def test_compile_unknown_branch_source() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_edge(START, "a")
    g.add_conditional_edges("ghost", lambda s: END)
    with pytest.raises(ValueError, match="unknown node 'ghost'"):
        g.compile()


def test_compile_unknown_path_map_target() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_edge(START, "a")
    g.add_conditional_edges("a", lambda s: "x", {"x": "ghost"})
    with pytest.raises(ValueError, match="At 'a' node, 'condition' branch found unknown target "
                                         "'ghost'"):
        g.compile()


@pytest.mark.parametrize("kind", ["interrupt_before", "interrupt_after"])
def test_compile_unknown_interrupt_node(kind: str) -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_edge(START, "a")
    with pytest.raises(ValueError, match="Interrupt node `ghost` not found"):
        g.compile(**{kind: ["ghost"]})


def test_compile_interrupt_star_is_accepted() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_edge(START, "a")
    g.compile(interrupt_before="*", interrupt_after="*")


@pytest.mark.parametrize("bad", [object(), "memory", {}])
def test_compile_invalid_checkpointer(bad: object) -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_edge(START, "a")
    with pytest.raises(TypeError, match="Invalid checkpointer provided"):
        g.compile(checkpointer=bad)


@pytest.mark.parametrize("ok", [None, True, False])
def test_compile_valid_checkpointer_values(ok: object) -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_edge(START, "a")
    g.compile(checkpointer=ok)


def test_compiled_graph_attributes() -> None:
    saver = InMemorySaver()
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_edge(START, "a")
    app = g.compile(checkpointer=saver, interrupt_before=["a"], name="my_graph")
    assert app.builder is g
    assert app.name == "my_graph"
    assert app.checkpointer is saver
    assert "__start__" in app.nodes and "a" in app.nodes
    assert app.stream_mode == "updates"
    assert list(app.interrupt_before_nodes) == ["a"]
    assert g.compile().name == "LangGraph"


def test_adding_node_after_compile_does_not_change_compiled_graph() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_edge(START, "a")
    app = g.compile()
    g.add_node("late", _log_node("late"))
    g.add_edge("a", "late")
    assert "late" not in app.nodes
    assert app.invoke({"x": 0})["log"] == ["a"]


# -- drawing --------------------------------------------------------------------------


def test_draw_mermaid_contains_nodes_and_dotted_conditional_edge() -> None:
    def route(state: LogState) -> str:
        return "b"

    g = StateGraph(LogState)
    g.add_node("alpha", _log_node("alpha"))
    g.add_node("b", _log_node("b"))
    g.add_node("c", _log_node("c"))
    g.add_edge(START, "alpha")
    g.add_conditional_edges("alpha", route, {"to_b": "b", "to_c": "c"})
    g.add_edge("b", END)
    g.add_edge("c", END)
    mermaid = g.compile().get_graph().draw_mermaid()
    for name in ("alpha", "b", "c", "__start__", "__end__"):
        assert name in mermaid
    assert "-.->" in mermaid or "-. " in mermaid
    assert "__start__ --> alpha" in mermaid


def test_get_graph_edges_flag_conditional() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log_node("a"))
    g.add_node("b", _log_node("b"))
    g.add_edge(START, "a")
    g.add_conditional_edges("a", lambda s: "b", ["b", END])
    graph = g.compile().get_graph()
    assert set(graph.nodes) >= {START, "a", "b", END}
    cond = {(e.source, e.target) for e in graph.edges if e.conditional}
    plain = {(e.source, e.target) for e in graph.edges if not e.conditional}
    assert cond == {("a", "b"), ("a", END)}
    assert (START, "a") in plain


def test_draw_mermaid_shows_path_map_labels() -> None:
    g = StateGraph(LogState)
    g.add_node("alpha", _log_node("alpha"))
    g.add_node("b", _log_node("b"))
    g.add_edge(START, "alpha")
    g.add_conditional_edges("alpha", lambda s: "to_b", {"to_b": "b", "stop": END})
    mermaid = g.compile().get_graph().draw_mermaid()
    assert "to_b" in mermaid
    assert "stop" in mermaid


def _goto_b_or_c(state: LogState) -> Command[Literal["b", "c"]]:
    return Command(goto="b")


def test_command_return_hint_records_destinations_for_drawing() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _goto_b_or_c)
    g.add_node("b", _log_node("b"))
    g.add_node("c", _log_node("c"))
    g.add_edge(START, "a")
    app = g.compile()
    assert app.invoke({"x": 0})["log"] == ["b"]
    cond = {(e.source, e.target) for e in app.get_graph().edges if e.conditional}
    assert cond == {("a", "b"), ("a", "c")}


def test_explicit_destinations_for_drawing() -> None:
    g = StateGraph(LogState)
    g.add_node("a", lambda s: Command(goto="b"), destinations=("b", "c"))
    g.add_node("b", _log_node("b"))
    g.add_node("c", _log_node("c"))
    g.add_edge(START, "a")
    cond = {(e.source, e.target) for e in g.compile().get_graph().edges if e.conditional}
    assert cond == {("a", "b"), ("a", "c")}


class ManagedInput(TypedDict):
    x: int
    remaining_steps: RemainingSteps


def test_managed_value_not_allowed_in_input_schema() -> None:
    with pytest.raises(ValueError):
        StateGraph(LogState, input_schema=ManagedInput)


def test_deprecated_config_schema_kwarg() -> None:
    from threadloom.runtime import Runtime

    @dataclass
    class Ctx:
        user: str

    def a(state: LogState, runtime: Runtime) -> dict:
        return {"log": [runtime.context.user]}

    g = StateGraph(LogState, config_schema=Ctx)
    g.add_node("a", a)
    g.add_edge(START, "a")
    assert g.compile().invoke({"x": 0}, context={"user": "u"})["log"] == ["u"]


def test_builder_node_runnable_wraps_the_callable() -> None:
    """``builder.nodes[name].runnable`` is a Runnable whose ``.func`` is the callable given
    to ``add_node``; a node given as a Runnable is exposed as is."""
    from langchain_core.runnables import Runnable, RunnableLambda

    class Counter:
        def __init__(self) -> None:
            self.ticks = 0

        def __call__(self, state: LogState) -> dict:
            self.ticks += 1
            return {"log": ["c"]}

    counter = Counter()
    lam = RunnableLambda(lambda s: {"log": ["l"]})
    builder = StateGraph(LogState)
    builder.add_node("c", counter)
    builder.add_node("l", lam)
    builder.add_edge(START, "c")
    builder.add_edge("c", "l")
    graph = builder.compile()
    assert graph.invoke({"x": 1, "log": []}) == {"x": 1, "log": ["c", "l"]}
    spec = builder.nodes["c"]
    assert isinstance(spec.runnable, Runnable)
    assert spec.runnable.func is counter
    assert spec.runnable.func.ticks == 1
    assert builder.nodes["l"].runnable is lam


def test_a_compiled_nodes_copy_replaces_the_attributes_given() -> None:
    from threadloom.types import RetryPolicy

    graph = (StateGraph(LogState).add_node("a", lambda s: {"log": ["a"]})
             .add_edge(START, "a").compile())
    node = graph.nodes["a"]
    policy = (RetryPolicy(max_attempts=5),)
    copied = node.copy({"retry_policy": policy})
    assert copied is not node and copied.retry_policy == policy
    assert node.retry_policy != policy and copied.name == node.name
    assert node.copy({}) == node
    with pytest.raises(TypeError, match="unknown attribute"):
        node.copy({"colour": "red"})
