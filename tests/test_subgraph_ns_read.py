"""Reading a namespace whose node declares no subgraph (a graph invoked inside a node)."""

import operator
from typing import Annotated
from uuid import uuid4

import pytest
from typing_extensions import TypedDict

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import START, StateGraph


class S(TypedDict):
    items: Annotated[list, operator.add]


def _inner():
    inner = StateGraph(S).add_node("work", lambda s: {"items": ["inner"]})
    return inner.add_edge(START, "work").compile()


def _parent(tools):
    parent = StateGraph(S).add_node("tools", tools).add_edge(START, "tools")
    parent = parent.compile(checkpointer=InMemorySaver())
    thread = str(uuid4())
    namespaces = {
        ns[0]
        for ns, _ in parent.stream({"items": []}, {"configurable": {"thread_id": thread}},
                                   subgraphs=True)
        if ns
    }
    (ns,) = namespaces
    return parent, {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}


def _calls_a_graph_it_names():
    inner = _inner()

    def tools(state: S) -> dict:
        inner.invoke({"items": ["start"]})
        return {"items": ["tool"]}

    return _parent(tools)


def _builds_its_graph_inside():
    def tools(state: S) -> dict:
        _inner().invoke({"items": ["start"]})
        return {"items": ["tool"]}

    return _parent(tools)


@pytest.mark.parametrize("make", [_calls_a_graph_it_names, _builds_its_graph_inside])
def test_a_graph_run_inside_a_node_has_its_state_read_at_its_namespace(make):
    parent, config = make()
    assert parent.get_state(config).values == {"items": ["start", "inner"]}
    assert [s.values.get("items", []) for s in parent.get_state_history(config)] == [
        ["start", "inner"], ["start"], [],
    ]


def test_update_into_a_graph_the_node_names_edits_that_graphs_state():
    # as LangGraph: a node whose function reaches a graph by name is that graph's node
    parent, config = _calls_a_graph_it_names()
    parent.update_state(config, {"items": ["edit"]})
    assert parent.get_state(config).values == {"items": ["start", "inner", "edit"]}


def test_update_into_a_graph_the_node_builds_inside_raises():
    parent, config = _builds_its_graph_inside()
    with pytest.raises(ValueError, match="Subgraph tools not found"):
        parent.update_state(config, {"items": ["edit"]})


class M(TypedDict):
    log: Annotated[list, operator.add]


def test_two_stateful_graphs_in_one_node_keep_separate_state():
    def echo(label):
        g = StateGraph(M).add_node("echo", lambda s: {"log": [label]})
        return g.add_edge(START, "echo").compile(checkpointer=True)

    fruit, veggie = echo("fruit"), echo("veggie")
    seen = []

    def call_both(state: S) -> dict:
        seen.append((fruit.invoke({"log": []})["log"], veggie.invoke({"log": []})["log"]))
        return {"items": ["x"]}

    parent = StateGraph(S).add_node("call_both", call_both).add_edge(START, "call_both")
    parent = parent.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": str(uuid4())}}
    parent.invoke({"items": []}, config)
    parent.invoke({"items": []}, config)
    assert seen == [(["fruit"], ["veggie"]), (["fruit", "fruit"], ["veggie", "veggie"])]


def test_get_subgraphs_matches_whole_segments():
    def leaf():
        return StateGraph(M).add_node("w", lambda s: {}).add_edge(START, "w").compile()

    inner_review = leaf()
    research = StateGraph(M).add_node("review", inner_review).add_edge(START, "review")
    research = research.compile()
    rr, review = leaf(), leaf()
    parent = (
        StateGraph(M).add_node("research", research).add_node("research_review", rr)
        .add_node("review", review).add_edge(START, "research")
        .add_edge("research", "research_review").add_edge("research_review", "review")
        .compile()
    )
    assert list(parent.get_subgraphs()) == [
        ("research", research), ("research_review", rr), ("review", review),
    ]
    assert dict(parent.get_subgraphs(recurse=True))["research|review"] is inner_review
    for ns, graph in [("research", research), ("research|review", inner_review),
                      ("research_review", rr), ("review", review)]:
        assert list(parent.get_subgraphs(namespace=ns, recurse=True)) == [(ns, graph)]
    assert list(parent.get_subgraphs(namespace="research:abc|review:def", recurse=True)) == [
        ("research|review", inner_review)
    ]
