"""Drawing: the builder's nodes and edges as a langchain_core ``Graph``.

``Graph`` brings ``draw_mermaid()``, ``draw_ascii()`` and ``to_json()``; conditional edges
are drawn dotted, to every target of their ``path_map`` (or to every node without one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.runnables.graph import Graph

from threadloom.constants import END, START

if TYPE_CHECKING:
    from threadloom.graph.state import StateGraph


def draw_graph(builder: StateGraph, *, xray: int | bool = False) -> Graph:
    graph = Graph()
    nodes: dict[str, Any] = {START: graph.add_node(None, START)}
    for name, spec in builder.nodes.items():
        nodes[name] = graph.add_node(None, name, metadata=spec.metadata or None)
    ends_used = False

    def target(name: str) -> Any:
        nonlocal ends_used
        if name == END:
            ends_used = True
            if END not in nodes:
                nodes[END] = graph.add_node(None, END)
        return nodes[name]

    for src, dst in sorted(builder.edges):
        graph.add_edge(nodes[src], target(dst))
    for srcs, dst in sorted(builder.waiting_edges):
        for src in srcs:
            graph.add_edge(nodes[src], target(dst))
    for src, branches in builder.branches.items():
        for branch in branches.values():
            if branch.ends is not None:
                targets = {str(label): dst for label, dst in branch.ends.items()}
            else:
                targets = {n: n for n in [*builder.nodes, END] if n != src}
            for label, dst in targets.items():
                graph.add_edge(nodes[src], target(dst),
                               data=label if label != dst else None, conditional=True)
    if not ends_used:
        nodes[END] = graph.add_node(None, END)
        for name in builder.nodes:
            has_out = any(s == name for s, _ in builder.edges) or name in builder.branches
            has_out = has_out or any(name in srcs for srcs, _ in builder.waiting_edges)
            if not has_out:
                graph.add_edge(nodes[name], nodes[END])
    return graph
