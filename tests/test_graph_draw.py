"""Drawing a compiled graph: ``get_graph()`` and ``get_graph(xray=...)``, as LangGraph
draws them (mermaid text compared whole)."""

from __future__ import annotations

import operator
from typing import Annotated

from typing_extensions import TypedDict

from threadloom.graph import END, START, StateGraph


class S(TypedDict):
    log: Annotated[list, operator.add]


def _node(name: str):
    def run(state: S) -> dict:
        return {"log": [name]}

    return run


def _cycle_child():
    child = StateGraph(S)
    child.add_node("c_one", _node("c_one"))
    child.add_node("c_two", _node("c_two"))
    child.add_edge(START, "c_one")
    child.add_edge("c_two", "c_one")
    child.add_conditional_edges("c_one", lambda s: "1", {"0": "c_two", "1": END})
    return child.compile()


def test_a_node_without_a_way_out_is_drawn_to_end() -> None:
    g = StateGraph(S)
    for name in ("up", "side", "other", "down"):
        g.add_node(name, _node(name))
    g.add_edge(START, "up")
    g.add_edge("up", "side")
    g.add_edge("up", "other")
    g.add_edge(["up", "side"], "down")
    g.add_edge("down", END)
    assert g.compile().get_graph().draw_mermaid(with_styles=False) == (
        "graph TD;\n"
        "\t__start__ --> up;\n"
        "\tside --> down;\n"
        "\tup --> down;\n"
        "\tup --> other;\n"
        "\tup --> side;\n"
        "\tdown --> __end__;\n"
        "\tother --> __end__;\n"
    )


def test_xray_draws_a_subgraph_inside_its_node() -> None:
    parent = StateGraph(S)
    parent.add_node("p_one", _node("p_one"))
    parent.add_node("p_two", _cycle_child())
    parent.add_edge(START, "p_one")
    parent.add_edge("p_two", "p_one")
    parent.add_conditional_edges("p_one", lambda s: "1", {"0": "p_two", "1": END})
    app = parent.compile()
    # without xray the subgraph is one node
    assert app.get_graph().draw_mermaid(with_styles=False) == (
        "graph TD;\n"
        "\t__start__ --> p_one;\n"
        "\tp_one -. &nbsp;1&nbsp; .-> __end__;\n"
        "\tp_one -. &nbsp;0&nbsp; .-> p_two;\n"
        "\tp_two --> p_one;\n"
    )
    # its __start__ and __end__ stay: no single node could take their place (a cycle)
    assert app.get_graph(xray=True).draw_mermaid(with_styles=False) == (
        "graph TD;\n"
        "\t__start__ --> p_one;\n"
        "\tp_one -. &nbsp;1&nbsp; .-> __end__;\n"
        "\tp_one -. &nbsp;0&nbsp; .-> p_two\\3a__start__;\n"
        "\tp_two\\3a__end__ --> p_one;\n"
        "\tsubgraph p_two\n"
        "\tp_two\\3a__start__ --> p_two\\3ac_one;\n"
        "\tp_two\\3ac_one -. &nbsp;1&nbsp; .-> p_two\\3a__end__;\n"
        "\tp_two\\3ac_one -. &nbsp;0&nbsp; .-> p_two\\3ac_two;\n"
        "\tp_two\\3ac_two --> p_two\\3ac_one;\n"
        "\tend\n"
    )


def test_xray_levels_and_a_subgraph_called_from_a_function() -> None:
    inner = StateGraph(S)
    inner.add_node("model", _node("model"))
    inner.add_node("tool", _node("tool"))
    inner.add_edge(START, "model")
    inner.add_edge("model", "tool")
    inner.add_edge("tool", END)
    compiled_inner = inner.compile(interrupt_before=["tool"])

    def calls_inner(state: S) -> dict:
        return compiled_inner.invoke(state)

    middle = StateGraph(S)
    middle.add_node("call", calls_inner)
    middle.add_edge(START, "call")
    outer = StateGraph(S)
    outer.add_node("first", _node("first"))
    outer.add_node("middle", middle.compile())
    outer.add_edge(START, "first")
    outer.add_edge("first", "middle")
    app = outer.compile()

    # one level: the middle graph drawn inside its node, the graph its function calls not
    one = app.get_graph(xray=1)
    assert sorted(one.nodes) == ["__end__", "__start__", "first", "middle:call"]
    # every level: a single-node start and end are left out, their edges go to the
    # first and from the last node; a node the subgraph pauses before says so
    drawn = app.get_graph(xray=True)
    assert [(e.source, e.target) for e in drawn.edges] == [
        ("__start__", "first"),
        ("first", "middle:call:model"),
        ("middle:call:tool", "__end__"),
        ("middle:call:model", "middle:call:tool"),
    ]
    assert drawn.nodes["middle:call:tool"].metadata == {"__interrupt": "before"}


def test_to_json_shows_each_node_as_a_runnable_named_by_its_id() -> None:
    # as LangGraph's drawings (and the Agent Server's /assistants/{id}/graph) show them:
    # every node but __end__ with type "runnable" and data.name; subgraph nodes under xray
    g = StateGraph(S)
    g.add_node("first", _node("first"))
    g.add_node("child", _cycle_child())
    g.add_edge(START, "first")
    g.add_edge("first", "child")
    compiled = g.compile()
    nodes = {n["id"]: n for n in compiled.get_graph().to_json()["nodes"]}
    assert nodes["__end__"] == {"id": "__end__"}
    for name in ("__start__", "first", "child"):
        assert nodes[name]["type"] == "runnable"
        assert nodes[name]["data"]["name"] == name
    xray = {n["id"]: n for n in compiled.get_graph(xray=True).to_json()["nodes"]}
    assert xray["child:c_one"]["type"] == "runnable"
    assert xray["child:c_one"]["data"]["name"] == "child:c_one"
